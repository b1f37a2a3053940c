"""InfoGAN on MNIST (Chen et al., 2016).

    python train_infogan.py --data-root ../shared/data --epochs 10

G(z, c) gets incompressible noise z, a one-hot categorical code and continuous codes. D and Q share
one body: D says real/fake, Q recovers the codes from G's images. Maximising the mutual information
I(c; G(z, c)) (through Q's cross-entropy and Gaussian likelihood) makes the codes mean something:
the categorical code picks the digit, the continuous codes its style.

Three departures from the paper, on by default (README: the measured effect; --lambda-aug 0
--lr-g 1e-3 --g-ema 0 is the paper's InfoGAN): Q must also recover the categorical code from G's
images after a random change of style (slant, rotation, width, height, shift, stroke thickness),
which steers the code to the digit instead of a style (--lambda-aug 2); G and Q learn at twice the
paper's rate (--lr-g 2e-3); and a moving average of G's weights, which wobbles less than G, is what
draws the grids, gets judged and goes into g.pt (--g-ema 0.999).

Every epoch the run folder gets ckpt.pt (resume), g.pt (for sample.py), fixed-noise grids,
losses.csv, curves.png and the code->digit accuracy.
"""
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch.distributions import Categorical

import training as T
from data import load_mnist, to_float
from models import (INFOGAN_ARCHS, INFOGAN_IMG_SIZE, DigitClassifier, build_infogan, infogan_grid_latent,
                    infogan_latent, infogan_noise)

MODEL_KEYS = ("arch", "noise_dim", "n_cat", "n_cont", "noise", "noise_scale")  # what rebuilds G; fixed on --resume
LOSS_COLUMNS = ("loss_d", "loss_g", "loss_q", "d_real", "d_fake_before", "d_fake_after")


def get_parser():
    p = T.ArgumentParser(description=__doc__, formatter_class=T.HelpFormatter)
    g = p.add_argument_group("data and output")
    g.add_argument("--data-root", default="./data", help="folder with MNIST/raw/ (downloaded there when missing)")
    g.add_argument("--out", default="runs/infogan", help="run folder: checkpoints, grids, losses.csv, curves.png")
    g.add_argument("--resume", default=None, metavar="PATH", help="continue a run: its folder or its ckpt.pt")
    g = p.add_argument_group("latent code")
    g.add_argument("--noise-dim", type=int, default=62, help="incompressible noise dimensions (62 paper; 52, 56 common)")
    g.add_argument("--n-cat", type=int, default=10, help="values of the categorical code")
    g.add_argument("--n-cont", type=int, default=2, help="continuous codes, each ~ U(-1, 1) (0: discrete-only InfoGAN)")
    g.add_argument("--noise", choices=("uniform", "normal"), default="uniform", help="distribution of z: U(-1,1) or N(0,1)")
    g.add_argument("--noise-scale", type=float, default=1.0,
                   help="z is multiplied by this; below 1 the categorical code dominates G's input at the start "
                        "(ClusterGAN uses N(0, 0.1^2) noise so the latent space has one cluster per value)")
    g = p.add_argument_group("model")
    g.add_argument("--arch", choices=INFOGAN_ARCHS, default="paper",
                   help="paper: the InfoGAN paper's 28x28 nets; dcgan: 64x64 transposed convs; "
                        "upsample: 64x64 upsample+conv G (no checkerboard) and spectral-norm D")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=20, help="epochs to train (in total, counting resumed ones)")
    g.add_argument("--batch-size", type=int, default=64, help="images per step")
    g.add_argument("--lr-d", type=float, default=2e-4, help="Adam learning rate of D")
    g.add_argument("--lr-g", type=float, default=2e-3,
                   help="Adam learning rate of G and the Q head (the paper: 1e-3; 2e-3 with --g-ema reached "
                        "0.90 code->digit accuracy sooner, README: measured)")
    g.add_argument("--beta1", type=float, default=0.5, help="Adam beta1")
    g.add_argument("--beta2", type=float, default=0.999, help="Adam beta2")
    g.add_argument("--g-loss", choices=("nonsaturating", "minimax"), default="nonsaturating",
                   help="G minimises -log D(G(z)) (non-saturating) or log(1 - D(G(z))) (minimax)")
    g.add_argument("--lambda-cat", type=float, default=1.0, help="weight of Q's categorical cross-entropy")
    g.add_argument("--lambda-cont", type=float, default=0.1, help="weight of Q's Gaussian NLL of the continuous codes")
    g.add_argument("--q-std", choices=("learned", "fixed"), default="learned",
                   help="Q's Gaussian for the continuous codes: learned log-variance, or fixed std 1 "
                        "(the paper's code; the NLL is then half the squared error)")
    g.add_argument("--info-warmup", type=int, default=0, metavar="ITERS",
                   help="ramp the information loss linearly from 0 over the first ITERS iterations (0: full from the start)")
    g.add_argument("--cont-warmup", type=int, default=0, metavar="ITERS",
                   help="ramp the continuous codes' loss linearly from 0 over the first ITERS iterations, so the "
                        "categorical code claims the digit identity first (0: full from the start)")
    g.add_argument("--info-in-d", type=int, choices=(0, 1), default=0,
                   help="1: the information loss also trains the shared body in D's step (as the paper's code "
                        "does); 0: only G and the Q head minimise it (faster per step, and better here: see README)")
    g.add_argument("--lambda-aug", type=float, default=2.0,
                   help="weight of Q's categorical cross-entropy on G's images after a random slant, rotation, "
                        "width, height, shift and stroke-thickness change, so the categorical code must carry what "
                        "those leave unchanged, the digit (trains G and the Q head, also with --info-in-d 1 never "
                        "D's body; after Elastic-InfoGAN's invariance idea; 0: the paper's loss)")
    g.add_argument("--lambda-real", type=float, default=0.0,
                   help="weight of a clustering term on real images: Q must sort a batch of real digits "
                        "confidently (low entropy per image) and evenly (high entropy of the batch's mean) over the "
                        "categorical values, the mutual-information objective of RIM/IMSAT; it trains the Q head "
                        "only and is meant to steer G, through Q, away from codes that split one digit and merge "
                        "two others (README: tried at 1, not a default; 0: off, as in the paper)")
    g.add_argument("--g-ema", type=float, default=0.999, metavar="DECAY",
                   help="keep an exponential moving average of G's weights (decay min(DECAY, (1+t)/(10+t)) at "
                        "step t) and use it for the grids, the accuracy and g.pt; it wobbles less than G "
                        "(README: measured). 0: off, as in the paper")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-samples", type=int, default=100, help="images per categorical value for code->digit accuracy")
    g.add_argument("--no-eval", action="store_true", help="skip the code->digit accuracy (needs no classifier)")
    g = p.add_argument_group("machine")
    g.add_argument("--seed", type=int, default=1, help="random seed (same seed, machine and thread count = same run)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to train")
    g.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 autocast where the hardware has it (CUDA, AMX/AVX512-BF16 CPUs), else fp32")
    g.add_argument("--compile", action="store_true", help="torch.compile the networks (slow start, faster steps)")
    g.add_argument("--log-every", type=int, default=25, help="steps between progress-bar updates (host syncs)")
    return p


def validate(args):
    T.check(args.noise_dim > 0, f"--noise-dim must be > 0 (got {args.noise_dim})")
    T.check(args.noise_scale > 0, f"--noise-scale must be > 0 (got {args.noise_scale})")
    T.check(args.n_cat >= 2, f"--n-cat must be >= 2 (got {args.n_cat})")
    T.check(args.n_cont >= 0, f"--n-cont must be >= 0 (got {args.n_cont})")
    T.check(args.batch_size > 0, f"--batch-size must be > 0 (got {args.batch_size})")
    T.check(args.epochs >= 1, f"--epochs must be >= 1 (got {args.epochs})")
    T.check(args.eval_samples > 0, f"--eval-samples must be > 0 (got {args.eval_samples})")
    for name in ("info_warmup", "cont_warmup", "lambda_aug", "lambda_real"):
        T.check(getattr(args, name) >= 0, f"--{name.replace('_', '-')} must be >= 0 (got {getattr(args, name)})")
    T.check(0 <= args.g_ema < 1, f"--g-ema must be in [0, 1) (got {args.g_ema})")
    T.check(args.log_every > 0, f"--log-every must be > 0 (got {args.log_every})")
    for name in ("lr_d", "lr_g"):
        T.check(getattr(args, name) > 0, f"--{name.replace('_', '-')} must be > 0")
    T.check(0 <= args.beta1 < 1 and 0 <= args.beta2 < 1, "--beta1 and --beta2 must be in [0, 1)")


# ---------------------------------------------------------------------------- code -> digit accuracy

def load_digit_classifier(data_root, images, labels, device, cache_dir):
    """A small CNN trained once on the real training split and cached beside the data
    (or in the run folder when the data folder is read-only)."""
    for folder in (data_root, cache_dir):
        path = os.path.join(folder, "mnist_classifier.pt")
        if os.path.isfile(path):
            try:
                with T.isolated_rng():
                    net = DigitClassifier()
                net.load_state_dict(torch.load(path, map_location="cpu"))
                return net.to(device).eval()
            except Exception:
                print(f"warning: ignoring unreadable classifier cache {path}", file=sys.stderr)
    net = train_digit_classifier(images, labels, device)
    for folder in (data_root, cache_dir):
        try:
            T.save_checkpoint(net.state_dict(), os.path.join(folder, "mnist_classifier.pt"))
            break
        except OSError:
            continue
    return net.eval()


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
    rows, cols = linear_sum_assignment(counts, maximize=True)
    accuracy, mapping = counts[rows, cols].sum() / counts.sum(), {int(r): int(c) for r, c in zip(rows, cols)}
    return (accuracy, mapping, counts) if return_counts else (accuracy, mapping)


# ---------------------------------------------------------------------------- training

def ramp(iteration, iters):
    """Linear warm-up factor: 0 at iteration 0, 1 from `iters` on (always 1 when iters is 0)."""
    return min(1.0, iteration / iters) if iters else 1.0


def info_loss(q_out, cat_code, cont_code, args, iteration=0, cat_logits_jittered=None, cat_logits_real=None):
    """-lambda * L_I: Q's cross-entropy on the categorical code plus its Gaussian negative
    log-likelihood of the continuous codes (a lower bound on the mutual information, up to H(c)),
    each ramped up over its warm-up; plus, given Q's logits on style-jittered copies of the same
    images, --lambda-aug x their cross-entropy, and given Q's logits on real images, --lambda-real x
    the clustering term of real_cluster_loss (both under the same warm-up)."""
    cat_logits, cont_mean, cont_logvar = q_out
    loss = args.lambda_cat * F.cross_entropy(cat_logits.float(), cat_code)
    if cont_code.shape[1]:
        var = cont_logvar.float().exp() if args.q_std == "learned" else torch.ones_like(cont_code)
        nll = F.gaussian_nll_loss(cont_mean.float(), cont_code, var, reduction="none")
        loss = loss + ramp(iteration, args.cont_warmup) * args.lambda_cont * nll.sum(1).mean()
    if cat_logits_jittered is not None:
        loss = loss + args.lambda_aug * F.cross_entropy(cat_logits_jittered.float(), cat_code)
    if cat_logits_real is not None:
        loss = loss + args.lambda_real * real_cluster_loss(cat_logits_real.float())
    return ramp(iteration, args.info_warmup) * loss


def real_cluster_loss(cat_logits):
    """log K - I(x; c) over a batch of real images, where Q's categorical output p(c|x) defines the
    mutual information I = H(mean_x p(c|x)) - mean_x H(p(c|x)): zero when each image gets one value
    with certainty and the values are used equally, log K at most (I = 0: Q unsure of every image,
    or every image in one value)."""
    q = Categorical(logits=cat_logits)
    return np.log(cat_logits.size(1)) - Categorical(probs=q.probs.mean(0)).entropy() + q.entropy().mean()


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


def train_step(real, G, D, netD, optD, optGQ, config, args, amp_dtype, iteration=0):
    """One InfoGAN iteration on a batch of real images; returns the statistics of LOSS_COLUMNS
    as tensors (not read here, so a GPU never waits). G, D may be torch.compile'd netG, netD."""
    bs, n_cat, n_cont, device = real.size(0), config["n_cat"], config["n_cont"], real.device
    bce, d_params = F.binary_cross_entropy_with_logits, [*netD.body.parameters(), *netD.d_head.parameters()]
    ones, zeros = torch.ones(bs, device=device), torch.zeros(bs, device=device)
    noise = infogan_noise(bs, config, device)
    cat_code = torch.randint(n_cat, (bs,), device=device)
    cont_code = torch.rand(bs, n_cont, device=device) * 2 - 1
    z = infogan_latent(noise, cat_code, cont_code, n_cat)

    # (1) D: real -> 1, G(z) -> 0. The fake batch is detached so D's step leaves G alone.
    with torch.autocast(device.type, amp_dtype, enabled=amp_dtype is not None):
        fake = G(z)
        d_real, features_real = D(real)
        d_fake, features_fake = D(fake.detach())
        q_out_d = netD.q(features_fake) if args.info_in_d else None
    loss_d = bce(d_real.float(), ones) + bce(d_fake.float(), zeros)
    if args.info_in_d:
        loss_d = loss_d + info_loss(q_out_d, cat_code, cont_code, args, iteration)
    optD.zero_grad(set_to_none=True)
    loss_d.backward()
    optD.step()

    # (2) G and Q: fool the updated D and let Q recover the codes. D's own weights are frozen
    # for this pass (they are not being trained here, so their gradients would be wasted work).
    for p in d_params:
        p.requires_grad_(False)
    with torch.autocast(device.type, amp_dtype, enabled=amp_dtype is not None):
        d_fake_after, features = D(fake)
        q_out = netD.q(features)
    if args.g_loss == "nonsaturating":
        loss_g = bce(d_fake_after.float(), ones)
    else:
        loss_g = -bce(d_fake_after.float(), zeros)
    cat_logits_jittered = None
    if args.lambda_aug:
        # With the paper's loss alone the categorical code can settle early on a partition by style
        # (two values for 1s, one for 4s and 9s together; README) that Q reads as well as one by digit,
        # so nothing moves it. Asking Q to read the code through style changes rules such partitions out.
        with torch.autocast(device.type, amp_dtype, enabled=amp_dtype is not None):
            _, features_jittered = D(style_jitter(fake))
            cat_logits_jittered = netD.q(features_jittered)[0]
    cat_logits_real = None
    if args.lambda_real:
        # A code that splits one digit over two values and merges two others into one can satisfy Q
        # completely on G's images; on real digits it shows as an uneven use of the values.
        with torch.autocast(device.type, amp_dtype, enabled=amp_dtype is not None):
            cat_logits_real = netD.q(features_real.detach())[0]
    loss_q = info_loss(q_out, cat_code, cont_code, args, iteration, cat_logits_jittered, cat_logits_real)
    optGQ.zero_grad(set_to_none=True)
    (loss_g + loss_q).backward()
    optGQ.step()
    for p in d_params:
        p.requires_grad_(True)

    return (loss_d, loss_g, loss_q, torch.sigmoid(d_real.float()).mean(),
            torch.sigmoid(d_fake.float()).mean(), torch.sigmoid(d_fake_after.float()).mean())


def main():
    args = get_parser().parse_args()
    validate(args)
    device = T.pick_device(args.device)
    ckpt = T.load_checkpoint(args.resume, kind="infogan") if args.resume else None
    if ckpt:
        args = T.resume_args(args, ckpt, get_parser(), MODEL_KEYS)
        validate(args)
        config = ckpt["config"]
    else:
        config = {k: getattr(args, k) for k in MODEL_KEYS}
        config["img_size"] = INFOGAN_IMG_SIZE[args.arch]
    out = T.make_run_dir(args.out)
    os.makedirs(os.path.join(out, "grids"), exist_ok=True)
    T.seed_everything(args.seed)

    # -- data: the whole split in memory (on the GPU when there is one), batched by indexing
    images, labels = load_mnist(args.data_root, train=True, img_size=config["img_size"])
    T.check(len(images) >= args.batch_size, f"--batch-size {args.batch_size} is larger than the data set ({len(images)} images)")
    images = images.to(device)
    steps_per_epoch = len(images) // args.batch_size  # drop the ragged last batch: static shapes

    # -- models and optimisers: D (body + real/fake head) and G + Q head
    netG, netD = build_infogan(config)
    netG, netD = netG.to(device), netD.to(device)
    if device.type == "cuda":
        netG, netD = netG.to(memory_format=torch.channels_last), netD.to(memory_format=torch.channels_last)
    d_params = list(netD.body.parameters()) + list(netD.d_head.parameters())
    optD = torch.optim.Adam(d_params, lr=args.lr_d, betas=(args.beta1, args.beta2))
    optGQ = torch.optim.Adam(list(netG.parameters()) + list(netD.q_head.parameters()),
                             lr=args.lr_g, betas=(args.beta1, args.beta2))
    amp_dtype = T.autocast_dtype(device, args.precision)
    G, D = (torch.compile(netG), torch.compile(netD)) if args.compile else (netG, netD)
    # the averaged G is what gets judged, drawn and saved: its weights wobble less than the trained G's
    netG_ema = T.make_ema(netG, args.g_ema)
    netG_eval = netG_ema if netG_ema is not None else netG

    fixed_noise = infogan_noise(max(config["n_cat"], 10), config)
    state = {"epoch": 0, "step": 0, "perm": None, "history": [], "accuracy": [], "code_to_digit": None,
             "best": {"accuracy": -1.0, "epoch": None}}
    if ckpt:
        state = T.restore(ckpt, state, {"netG": netG, "netD": netD},
                          {"optD": (optD, args.lr_d), "optGQ": (optGQ, args.lr_g)}, (args.beta1, args.beta2))
        fixed_noise = ckpt["fixed_noise"]
        if netG_ema is not None:  # a run that had no average yet starts it from the current G
            netG_ema.load_state_dict(ckpt.get("netG_ema") or netG.state_dict())

    classifier = None
    if not args.no_eval:
        classifier = load_digit_classifier(args.data_root, *load_mnist(args.data_root, train=True),
                                           device=device, cache_dir=out)

    def save(final_step_of_epoch):
        """ckpt.pt (everything, to resume) and g.pt (what sample.py needs), both atomically."""
        full = dict(kind="infogan", config=config, args=vars(args), netG=netG.state_dict(), netD=netD.state_dict(),
                    optD=optD.state_dict(), optGQ=optGQ.state_dict(), fixed_noise=fixed_noise, rng=T.rng_state(),
                    netG_ema=netG_ema.state_dict() if netG_ema is not None else None, **state)
        T.save_checkpoint(full, os.path.join(out, T.CHECKPOINT))
        if final_step_of_epoch:
            T.save_checkpoint(dict(kind="infogan", config=config, netG=netG_eval.state_dict(), fixed_noise=fixed_noise,
                                   epoch=state["epoch"], code_to_digit=state["code_to_digit"]),
                              os.path.join(out, T.GENERATOR))

    stop = T.StopRequest()

    def step_fn(idx, step):
        iteration = state["epoch"] * steps_per_epoch + step
        stats = train_step(to_float(images[idx]), G, D, netD, optD, optGQ, config, args, amp_dtype, iteration)
        if netG_ema is not None:
            T.ema_update(netG_ema, netG, args.g_ema, num_updates=iteration + 1)
        return stats

    for epoch in range(state["epoch"], args.epochs):
        t0 = time.time()
        rows = T.train_epoch(state, epoch, len(images), step_fn, LOSS_COLUMNS, args, stop, device,
                             out, save_partial=lambda: (save(final_step_of_epoch=False), write_logs(out, state)))

        # -- end of epoch: grids, accuracy, checkpoint, logs
        epoch_time = time.time() - t0
        state.update(epoch=epoch + 1, perm=None)
        save_grids(netG_eval, config, fixed_noise, out, epoch + 1, device)
        summary, acc = "", None
        if classifier is not None:
            acc, mapping = code_digit_accuracy(netG_eval, classifier, config, args.eval_samples, device)
            state["accuracy"].append([epoch + 1, acc])
            state["code_to_digit"] = mapping
            summary = f" | code->digit acc {acc:.3f}"
        T.end_epoch(out, state, epoch + 1, acc, save, write_logs)
        m = np.mean(rows, axis=0)
        print(T.epoch_line(epoch + 1, args.epochs, epoch_time, len(rows) * args.batch_size) +
              f" | D {m[0]:.3f} G {m[1]:.3f} Q {m[2]:.3f} D(x) {m[3]:.2f} D(G(z)) {m[4]:.2f}/{m[5]:.2f}{summary}", flush=True)
        T.stop_after_epoch(stop, out, epoch + 1, steps_per_epoch)

    T.make_gif(sorted(p for p in (os.path.join(out, "grids", f) for f in os.listdir(os.path.join(out, "grids")))
                      if p.endswith("_c1.png" if config["n_cont"] else "_noise.png")), os.path.join(out, "progress.gif"))
    print(f"done: {out}/g.pt; sample with: python sample.py --ckpt {out}/g.pt --grid", flush=True)
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
    """losses.csv (one row per iteration) and curves.png (losses, D's outputs, accuracy)."""
    T.write_csv(os.path.join(out, "losses.csv"), ("epoch", "iteration") + LOSS_COLUMNS, state["history"])
    if not state["history"]:
        return
    h = np.asarray(state["history"], dtype=float)
    it = h[:, 1]
    panels = [("losses", "iteration", {"D": (it, h[:, 2]), "G (adversarial)": (it, h[:, 3]), "Q (info)": (it, h[:, 4])}),
              ("discriminator output", "iteration", {"D(x)": (it, h[:, 5]), "D(G(z)) before G step": (it, h[:, 6]),
                                                     "D(G(z)) after G step": (it, h[:, 7])})]
    if state["accuracy"]:
        a = np.asarray(state["accuracy"], dtype=float)
        panels.append(("code->digit accuracy", "epoch", {"accuracy": (a[:, 0], a[:, 1])}))
    T.plot_curves(os.path.join(out, "curves.png"), panels)


if __name__ == "__main__":
    T.run_cli(main)
