"""InfoGAN on MNIST (Chen et al., 2016).

    python train_infogan.py --epochs 10      # MNIST from ./data (downloaded there when missing)

G(z, c) gets incompressible noise z, a one-hot categorical code and continuous codes. D and Q share
one body: D says real/fake, Q recovers the codes from G's images. Maximising the mutual information
I(c; G(z, c)) (through Q's cross-entropy and Gaussian likelihood) makes the codes mean something:
the categorical code picks the digit, the continuous codes its style.

Three departures from the paper, on by default (docs/results.md: the measured effect; --lambda-aug 0
--lr-g 1e-3 --g-ema 0 is the paper's InfoGAN): Q must also recover the categorical code from G's
images after a random change of style (slant, rotation, width, height, shift, stroke thickness),
which steers the code to the digit instead of a style (--lambda-aug 2); G and Q learn at twice the
paper's rate (--lr-g 2e-3); and a moving average of G's weights, which wobbles less than G, is what
draws the grids, gets judged and goes into g.pt (--g-ema 0.999).

Every epoch the run folder gets ckpt.pt (resume), g.pt (for sample.py), fixed-noise grids,
losses.csv, curves.png, the code->digit accuracy and report.md (everything, ready to hand in).
"""
import training as T  # first: it sets up the Apple-silicon fallback before torch loads

import os
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from data import load_mnist, mnist_fingerprint, to_float
from models import (INFOGAN_ARCHS, INFOGAN_IMG_SIZE, DigitClassifier, build_infogan, infogan_grid_latent,
                    infogan_latent, infogan_noise)

MODEL_KEYS = ("arch", "noise_dim", "n_cat", "n_cont", "noise")  # what rebuilds G; fixed on --resume
LOSS_COLUMNS = ("loss_d", "loss_g", "loss_q", "d_real", "d_fake_before", "d_fake_after")


def get_parser():
    p = T.ArgumentParser(description=__doc__, formatter_class=T.HelpFormatter)
    g = p.add_argument_group("data and output")
    g.add_argument("--data-root", default="./data", help="folder with MNIST/raw/ (downloaded there when missing)")
    T.add_output_flags(g, "infogan", "the digit classifier and its data")
    g = p.add_argument_group("latent code")
    g.add_argument("--noise-dim", type=int, default=62, help="incompressible noise dimensions (62 paper; 52, 56 common)")
    g.add_argument("--n-cat", type=int, default=10, help="values of the categorical code")
    g.add_argument("--n-cont", type=int, default=2, help="continuous codes, each ~ U(-1, 1) (0: discrete-only InfoGAN)")
    g.add_argument("--noise", choices=("uniform", "normal"), default="uniform", help="distribution of z: U(-1,1) or N(0,1)")
    g = p.add_argument_group("model")
    g.add_argument("--arch", choices=INFOGAN_ARCHS, default="paper",
                   help="paper: 28x28 nets of the paper; dcgan: 64x64 transposed convs; upsample: 64x64 upsample+conv G")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=20, help="epochs to train (in total, counting resumed ones)")
    g.add_argument("--batch-size", type=int, default=64, help="images per step")
    g.add_argument("--lr-d", type=float, default=2e-4, help="Adam learning rate of D")
    g.add_argument("--lr-g", type=float, default=2e-3, help="Adam learning rate of G and the Q head (the paper: 1e-3)")
    g.add_argument("--beta1", type=float, default=0.5, help="Adam beta1")
    g.add_argument("--beta2", type=float, default=0.999, help="Adam beta2")
    g.add_argument("--g-loss", choices=("nonsaturating", "minimax"), default="nonsaturating",
                   help="G minimises -log D(G(z)) (non-saturating) or log(1 - D(G(z))) (minimax)")
    g.add_argument("--lambda-cat", type=float, default=1.0, help="weight of Q's categorical cross-entropy")
    g.add_argument("--lambda-cont", type=float, default=0.1, help="weight of Q's Gaussian NLL of the continuous codes")
    g.add_argument("--q-std", choices=("learned", "fixed"), default="learned",
                   help="Q's Gaussian: learned log-variance, or std 1 as in the paper's code")
    g.add_argument("--lambda-aug", type=float, default=2.0,
                   help="weight of Q's cross-entropy on style-jittered copies of G's images (0: the paper's loss)")
    g.add_argument("--g-ema", type=float, default=0.999, metavar="DECAY",
                   help="moving average of G's weights for grids, accuracy and g.pt; at G's n-th step "
                   "the decay is at most (1+n)/(10+n), so it follows G from the start (0: off, as in the paper)")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-samples", type=int, default=100, help="images per categorical value for code->digit accuracy")
    g.add_argument("--no-eval", action="store_true", help="skip the code->digit accuracy (needs no classifier)")
    T.add_machine_flags(p, "random seed (same seed, machine and thread count = same run)")
    return p


def validate(args, ckpt=None):
    T.check(args.noise_dim > 0, f"--noise-dim must be > 0 (got {args.noise_dim})")
    T.check(args.n_cat >= 2, f"--n-cat must be >= 2 (got {args.n_cat})")
    T.check(args.n_cont >= 0, f"--n-cont must be >= 0 (got {args.n_cont})")
    T.check(args.batch_size > 0, f"--batch-size must be > 0 (got {args.batch_size})")
    T.check(args.epochs >= 1, f"--epochs must be >= 1 (got {args.epochs})")
    T.check(args.eval_samples > 0, f"--eval-samples must be > 0 (got {args.eval_samples})")
    T.check(args.lambda_aug >= 0, f"--lambda-aug must be >= 0 (got {args.lambda_aug})")
    T.check(0 <= args.g_ema < 1, f"--g-ema must be in [0, 1) (got {args.g_ema})")
    for name in ("lr_d", "lr_g"):
        T.check(getattr(args, name) > 0, f"--{name.replace('_', '-')} must be > 0")
    T.check(0 <= args.beta1 < 1 and 0 <= args.beta2 < 1, "--beta1 and --beta2 must be in [0, 1)")


# ---------------------------------------------------------------------------- code -> digit accuracy

def load_digit_classifier(data_root, images, labels, device, cache_dir):
    """A small CNN trained once on the real training split, cached in the user's cache folder
    (keyed by the MNIST files it was trained on) and loaded from there without running code."""
    with T.isolated_rng():
        net = DigitClassifier()
    data = T.cached(cache_dir, f"mnist_classifier_{T.folder_key(data_root)}.pt", mnist_fingerprint(data_root),
                    lambda: {"model": train_digit_classifier(images, labels, device).cpu().state_dict()},
                    "digit-classifier cache")
    try:
        net.load_state_dict(data["model"])
    except (RuntimeError, KeyError, TypeError) as e:
        raise T.UserError(f"the digit-classifier cache in {cache_dir} does not hold the classifier ({type(e).__name__}); "
                          f"delete it to retrain") from None
    return net.to(device).eval()


def train_digit_classifier(images, labels, device, epochs=2, batch_size=128, seed=0):
    print(f"training the digit classifier for code->digit accuracy ({len(images)} images, {epochs} epochs)...",
          file=sys.stderr)
    # a forked RNG: whether the classifier was cached or trained must not change the GAN's random stream
    with T.isolated_rng():
        torch.manual_seed(seed)
        net = DigitClassifier().to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        x_all, y_all = images.to(device), labels.to(device)
        for _ in range(epochs):
            for idx in torch.randperm(len(x_all)).split(batch_size):
                idx = idx.to(device)
                loss = F.cross_entropy(net(to_float(x_all[idx])), y_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return net


@torch.no_grad()
def code_digit_accuracy(netG, classifier, config, n_per_code=100, device="cpu", seed=1234, return_counts=False):
    """Generate n_per_code images for every categorical value, read their digits with the classifier,
    match values to digits one-to-one (Hungarian) and return (accuracy, {value: digit}), plus the
    (value, digit) count matrix with return_counts."""
    gen = torch.Generator(device=device).manual_seed(seed)
    n_cat, counts = config["n_cat"], np.zeros((config["n_cat"], 10))
    was_training = netG.training
    netG.eval()
    for code in range(n_cat):
        noise = infogan_noise(n_per_code, config, device, gen)
        cont = torch.rand(n_per_code, config["n_cont"], device=device, generator=gen) * 2 - 1
        cat = torch.full((n_per_code,), code, device=device, dtype=torch.long)
        digits = classifier(netG(infogan_latent(noise, cat, cont, n_cat)).float()).argmax(1)
        counts[code] += np.bincount(digits.cpu().numpy(), minlength=10)
    netG.train(was_training)
    from scipy.optimize import linear_sum_assignment  # here, not on top: --help and bad flags skip its 0.4 s
    rows, cols = linear_sum_assignment(counts, maximize=True)
    accuracy, mapping = counts[rows, cols].sum() / counts.sum(), {int(r): int(c) for r, c in zip(rows, cols)}
    return (accuracy, mapping, counts) if return_counts else (accuracy, mapping)


# ---------------------------------------------------------------------------- training

@dataclass(frozen=True)
class Losses:
    """The loss settings of a run (from its flags): G's adversarial loss and the weights of the
    information loss L_I and of the jitter term."""
    g_loss: str = "nonsaturating"  # or "minimax"
    lambda_cat: float = 1.0
    lambda_cont: float = 0.1
    lambda_aug: float = 2.0
    q_std: str = "learned"  # "fixed": std 1, as in the paper's code (the NLL is then half the squared error)

    @classmethod
    def from_args(cls, args):
        return cls(args.g_loss, args.lambda_cat, args.lambda_cont, args.lambda_aug, args.q_std)

    def info(self, q_out, cat_code, cont_code):
        """The paper's L_I, a lower bound on I(c; G(z, c)) up to H(c): Q's cross-entropy on the
        categorical code plus lambda_cont x its Gaussian negative log-likelihood of the continuous codes."""
        cat_logits, cont_mean, cont_logvar = q_out
        loss = self.lambda_cat * F.cross_entropy(cat_logits.float(), cat_code)
        if cont_code.shape[1]:
            var = cont_logvar.float().exp() if self.q_std == "learned" else torch.ones_like(cont_code)
            nll = F.gaussian_nll_loss(cont_mean.float(), cont_code, var, reduction="none")
            loss = loss + self.lambda_cont * nll.sum(1).mean()
        return loss

    def jitter(self, cat_logits_jittered, cat_code):
        """Q's cross-entropy on style-jittered copies of G's images (see style_jitter)."""
        return self.lambda_aug * F.cross_entropy(cat_logits_jittered.float(), cat_code)


def style_jitter(x, shear=0.3, rotate_deg=10.0, width=0.2, height=0.1, shift=0.1):
    """Each image (in [-1, 1], background -1) gets its own random slant (shear), rotation, width and
    height scale and shift (a fraction of the half-width: 0.1 is 1.4 px at 28 px), then is kept,
    thickened (3x3 max-pool) or thinned and dimmed (averaged with its 3x3 min-pool, which turns
    edge pixels grey). These change a digit's style, not which digit it is."""
    n = x.size(0)

    def uniform(a):  # one value per image in [-a, a]
        return (torch.rand(n, device=x.device) * 2 - 1) * a

    angle, sh, sx, sy = uniform(rotate_deg * np.pi / 180), uniform(shear), 1 + uniform(width), 1 + uniform(height)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # theta = scale @ rotation @ shear, mapping output to input coordinates (affine_grid's convention);
    # it is built in x's dtype, so under bf16 autocast positions are exact to about 0.1 px
    theta = torch.stack([torch.stack([sx * cos, sx * (sh * cos - sin), uniform(shift)], 1),
                         torch.stack([sy * sin, sy * (sh * sin + cos), uniform(shift)], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    x = F.grid_sample(x + 1, grid, align_corners=False) - 1  # background -1 outside the image
    thick, thin = F.max_pool2d(x, 3, 1, 1), (x - F.max_pool2d(-x, 3, 1, 1)) / 2
    pick = torch.randint(3, (n, 1, 1, 1), device=x.device)
    return torch.where(pick == 0, x, torch.where(pick == 1, thick, thin))


def train_step(real, netG, netD, optD, optGQ, config, losses, amp):
    """One InfoGAN iteration on a batch of real images; returns the statistics of LOSS_COLUMNS
    as tensors (not read here, so a GPU never waits)."""
    bs, n_cat, n_cont, device = real.size(0), config["n_cat"], config["n_cont"], real.device
    bce, d_params = F.binary_cross_entropy_with_logits, [*netD.body.parameters(), *netD.d_head.parameters()]
    ones, zeros = torch.ones(bs, device=device), torch.zeros(bs, device=device)
    noise = infogan_noise(bs, config, device)
    cat_code = torch.randint(n_cat, (bs,), device=device)
    cont_code = torch.rand(bs, n_cont, device=device) * 2 - 1
    z = infogan_latent(noise, cat_code, cont_code, n_cat)

    # (1) D: real -> 1, G(z) -> 0. The fake batch is detached so D's step leaves G alone.
    with amp.autocast():
        fake = netG(z)
        d_real, _ = netD(real)
        d_fake, _ = netD(fake.detach())
    loss_d = bce(d_real.float(), ones) + bce(d_fake.float(), zeros)
    amp.step(loss_d, optD)

    # (2) G and Q: fool the updated D and let Q recover the codes. D's own weights are frozen
    # for this pass (they are not being trained here, so their gradients would be wasted work).
    for p in d_params:
        p.requires_grad_(False)
    with amp.autocast():
        d_fake_after, features = netD(fake)
        q_out = netD.q(features)
        if losses.lambda_aug:
            # With the paper's loss alone the categorical code can settle early on a partition by style
            # (two values for 1s, one for 4s and 9s together) that Q reads as well as one by digit, so
            # nothing moves it. Asking Q to read the code through style changes rules such partitions out.
            cat_logits_jittered = netD.q(netD(style_jitter(fake))[1])[0]
    if losses.g_loss == "nonsaturating":
        loss_g = bce(d_fake_after.float(), ones)             # -log D(G(z))
    else:
        loss_g = -bce(d_fake_after.float(), zeros)           # log(1 - D(G(z)))
    loss_q = losses.info(q_out, cat_code, cont_code)         # L_I
    if losses.lambda_aug:
        loss_q = loss_q + losses.jitter(cat_logits_jittered, cat_code)
    amp.step(loss_g + loss_q, optGQ)
    for p in d_params:
        p.requires_grad_(True)

    return (loss_d, loss_g, loss_q, torch.sigmoid(d_real.float()).mean(),
            torch.sigmoid(d_fake.float()).mean(), torch.sigmoid(d_fake_after.float()).mean())


def main():
    args, ckpt, device, machine = T.start_run("infogan", get_parser, validate, MODEL_KEYS, os.path.join("runs", "infogan"))
    config = ckpt["config"] if ckpt else {**{k: getattr(args, k) for k in MODEL_KEYS}, "img_size": INFOGAN_IMG_SIZE[args.arch]}

    # -- data: the whole split in memory (on the GPU when there is one), batched by indexing
    images, _ = load_mnist(args.data_root, train=True, img_size=config["img_size"])
    T.check(len(images) >= args.batch_size, f"--batch-size {args.batch_size} is larger than the data set ({len(images)} images)")
    images = images.to(device)

    # -- models and optimisers: D (body + real/fake head) and G + Q head
    netG, netD = T.to_device(build_infogan(config), device)
    optD = torch.optim.Adam([*netD.body.parameters(), *netD.d_head.parameters()], lr=args.lr_d,
                            betas=(args.beta1, args.beta2))
    optGQ = torch.optim.Adam([*netG.parameters(), *netD.q_head.parameters()], lr=args.lr_g, betas=(args.beta1, args.beta2))
    losses = Losses.from_args(args)
    fixed_noise = ckpt["fixed_noise"] if ckpt else infogan_noise(max(config["n_cat"], 10), config)
    run = T.Run("infogan", args, config, device, machine, ckpt, nets={"netG": netG, "netD": netD},
                optimizers={"optD": (optD, args.lr_d), "optGQ": (optGQ, args.lr_g)}, state={"code_to_digit": None},
                extra={"fixed_noise": fixed_noise}, g_keys=("fixed_noise", "code_to_digit"), g_ema=args.g_ema)

    classifier = None
    if not args.no_eval:
        classifier = load_digit_classifier(args.data_root, *load_mnist(args.data_root, train=True), device,
                                           T.user_cache_dir(args.cache_dir))

    def step_fn(idx, iteration):
        stats = train_step(to_float(images[idx]), netG, netD, optD, optGQ, config, losses, run.amp)
        if run.netG_ema is not None:
            T.ema_update(run.netG_ema, netG, args.g_ema, num_updates=iteration + 1)
        return stats

    def end_of_epoch(epoch, m):
        save_grids(run.netG_eval, config, fixed_noise, args.out, epoch, device)
        summary = f" | D {m[0]:.3f} G {m[1]:.3f} Q {m[2]:.3f} D(x) {m[3]:.2f} D(G(z)) {m[4]:.2f}/{m[5]:.2f}"
        if classifier is None:
            return None, summary
        acc, mapping = code_digit_accuracy(run.netG_eval, classifier, config, args.eval_samples, device)
        run.state["accuracy"].append([epoch, float(acc)])
        run.state["code_to_digit"] = mapping
        return acc, summary + f" | code->digit acc {acc:.3f}"

    grids = os.path.join(args.out, "grids")
    frame = "_c1.png" if config["n_cont"] else "_noise.png"
    run.fit(len(images), LOSS_COLUMNS, step_fn, end_of_epoch, write_logs,
            gif_frames=lambda: sorted(os.path.join(grids, f) for f in os.listdir(grids) if f.endswith(frame)))
    print(f"done: {args.out}/g.pt; sample with: {T.sample_command(f'{args.out}/g.pt', '--grid')}", flush=True)
    return 0


def save_grids(netG, config, fixed_noise, out, epoch, device):
    """One grid per continuous code (rows: categorical values; columns: the code swept over
    [-2, 2]), or with no continuous codes one grid of 10 fixed noise vectors per value."""
    names = [f"c{j + 1}" for j in range(config["n_cont"])] or ["noise"]
    was_training = netG.training
    netG.eval()
    with torch.no_grad():
        for j, name in enumerate(names):
            z = infogan_grid_latent(config, fixed_noise, sweep_code=j if config["n_cont"] else None).to(device)
            images = netG(z)
            T.save_grid(images, os.path.join(out, "grids", f"epoch{epoch:03d}_{name}.png"), nrow=10)
            T.save_grid(images, os.path.join(out, f"grid_{name}.png"), nrow=10)
    netG.train(was_training)


def write_logs(out, state):
    T.write_logs(out, state, LOSS_COLUMNS, ("epoch", "code_digit_accuracy"), curve_panels)


def curve_panels(it, h, a):
    """The losses, D's probabilities D(x) and D(G(z)), and the code->digit accuracy per epoch."""
    panels = [("losses", "iteration", {"D": (it, h[:, 2]), "G (adversarial)": (it, h[:, 3]), "Q (info)": (it, h[:, 4])}),
              ("discriminator output", "iteration", {"D(x)": (it, h[:, 5]), "D(G(z)) before G step": (it, h[:, 6]),
                                                     "D(G(z)) after G step": (it, h[:, 7])})]
    if a is not None:
        panels.append(("code->digit accuracy", "epoch", {"accuracy": (a[:, 0], a[:, 1])}))
    return panels


if __name__ == "__main__":
    T.run_cli(main)
