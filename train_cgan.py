"""Conditional GAN on i-CLEVR: G(z, y) draws a scene with the objects in the multi-hot condition y.

    python train_cgan.py                                  # synthetic i-CLEVR, made once in data/iclevr-synth
    python train_cgan.py --data-root ~/iclevr --evaluator checkpoint.pth    # the real data and evaluator
    python train_cgan.py --loss wgan-gp --cond concat --g-cond concat --no-g-upsample --g-ema 0 --no-augment --aux-weight 0 --img-size 64 --g-width 64 --d-width 64 --batch-size 128
                                                          # the WGAN-GP with concatenated conditions of coursework reports

The defaults: hinge loss, projection D with an auxiliary multi-label classifier (--aux-weight) on
a body of its own, D seeing real and generated scenes mirrored and shifted alike
(--augment), G with nearest-upsample convolutions and conditional BatchNorm, a moving average of G,
and G/D learning rates 4e-4/8e-4 (figures per data set and CPU: docs/results.md). The image size
follows the device: 64 px on a GPU, 32 px on a CPU (upsampled to the evaluator's 64 px, as the
coursework did). A CPU trains networks of half the width (cheaper epochs, so its hour holds more of
them: at 32 px 2x the epochs of widths 48, 3x those of widths 64), and at 64 px DCGAN's transposed-conv G,
whose hour there reads higher and draws more compact objects.
Every epoch: ckpt.pt / g.pt, grids of the 32 test.json and new_test.json conditions (8 per row), the
evaluator's top-k accuracy on both (mean +- std over noise draws), g_best.pt, losses.csv, curves.png
and report.md.
"""
import training as T  # first: it sets up the Apple-silicon fallback before torch loads

import argparse
import functools
import math
import os
import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from data import SPEC_DIR, flip_and_shift, iclevr_image_dir, load_conditions, load_iclevr_cached, make_iclevr, to_float
from evaluate import evaluator_for, generator_accuracy
from models import build_cgan

MODEL_KEYS = ("img_size", "noise_dim", "g_width", "d_width", "g_upsample", "g_cond", "cond", "d_norm")  # fixed on --resume
# --resume of a run older than a flag: what it did (no augmentation before --augment)
FLAGS_BEFORE = {"augment": False}
LOSS_COLUMNS = ("loss_d", "loss_g", "d_real", "d_fake")
LOSS_DEFAULTS = {  # (n_critic, lr_g, lr_d, beta1, beta2, d_norm) per loss
    "wgan-gp": (5, 2e-4, 2e-4, 0.0, 0.9, "instance"),   # seed 002 / Gulrajani et al.
    "hinge": (1, 4e-4, 8e-4, 0.0, 0.9, "spectral"),     # Miyato et al. (SN-GAN, projection D); rates measured
    "bce": (1, 2e-4, 2e-4, 0.5, 0.999, "batch"),        # DCGAN
}
SYNTH_ROOT = os.path.join("data", "iclevr-synth")
SYNTH_N = 18009  # as many images as the real i-CLEVR
# The default length, in real images shown to D: 110 epochs of 10,000 images, 61 of the real 18,009. At 32 px on a
# CPU (widths 32) a 2-core EPYC in bf16 ends them in 31 minutes of training loop, and an hour at the slower EPYC's
# pace (one fp32 thread of the EPYC standing in) holds 89-103 of them (g_best.pt kept). Against 80 epochs (widths
# 48): set F's best epoch came at 97, sets E and G kept theirs (65, 80; docs/results.md). A fixed epoch count would
# stop a small set's run early and keep a large set's run past the hour.
DEFAULT_IMAGES = 1_100_000


def get_parser():
    p = T.ArgumentParser(description=__doc__, formatter_class=T.HelpFormatter)
    g = p.add_argument_group("data and output")
    g.add_argument("--data-root", default=None, help=f"i-CLEVR folder in the real layout (default: synthetic, in {SYNTH_ROOT})")
    T.add_output_flags(g, "cgan", "decoded images and the evaluator")
    g = p.add_argument_group("model")
    g.add_argument("--img-size", type=int, choices=(32, 64), default=None, help="image size (default: 64 on a GPU, 32 on a CPU)")
    g.add_argument("--noise-dim", type=int, default=100, help="noise dimensions")
    g.add_argument("--g-width", type=int, default=None,
                   help="G's channel multiplier, DCGAN's ngf (default: 64 on a GPU, 32 on a CPU: at 32 px 103 epochs against 51 "
                        "(widths 48) and 33 (widths 64) in an hour on one fp32 thread: docs/results.md)")
    g.add_argument("--d-width", type=int, default=None,
                   help="channels of D's first layer, DCGAN's ndf (default: 64 on a GPU, 32 on a CPU)")
    g.add_argument("--g-upsample", action=argparse.BooleanOptionalAction, default=None,
                   help="G with nearest-upsample + conv layers (no checkerboard); --no-g-upsample: DCGAN's "
                        "transposed convs (default: upsample; transposed at 64 px on a CPU, a better hour there)")
    g.add_argument("--g-cond", choices=("concat", "cbn"), default="cbn",
                   help="G sees y concatenated to z (as coursework reports do), or also through conditional BatchNorm (cbn)")
    g.add_argument("--cond", choices=("projection", "concat"), default="projection",
                   help="D sees y through a projection, or as an extra image channel (concat, as coursework reports do)")
    g.add_argument("--d-norm", choices=("auto", "batch", "instance", "spectral", "none"), default="auto",
                   help="normalisation in D; auto: instance for wgan-gp, spectral for hinge, batch for bce")
    g = p.add_argument_group("loss and optimisation")
    g.add_argument("--loss", choices=tuple(LOSS_DEFAULTS), default="hinge", help="adversarial loss")
    g.add_argument("--aux-weight", type=float, default=1.0,
                   help="weight of D's and G's multi-label classifier loss (0: off); the D and G losses printed include it")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="D sees real and generated scenes mirrored and shifted alike (DiffAugment)")
    g.add_argument("--spectral-weight", type=float, default=0.0, metavar="W",
                   help="weight of Durall et al.'s spectral loss on G (the log power of its images per radius of the "
                        "spectrum against the real batch's): takes the transposed convs' checker texture out at 64 px, "
                        "but the CPU hour there reads lower with it (weights 1 and 0.3 measured; docs/results.md); default 0: off")
    g.add_argument("--n-critic", type=int, default=None, help="D steps per G step (default: 5 for wgan-gp, else 1)")
    g.add_argument("--gp-weight", type=float, default=10.0, help="gradient-penalty weight (wgan-gp)")
    g.add_argument("--lr-g", type=float, default=None, help="Adam learning rate of G (default: 4e-4 hinge, 2e-4 others)")
    g.add_argument("--lr-d", type=float, default=None, help="Adam learning rate of D (default: 8e-4 hinge, 2e-4 others)")
    g.add_argument("--beta1", type=float, default=None, help="Adam beta1 (default: 0 for wgan-gp/hinge, 0.5 for bce)")
    g.add_argument("--beta2", type=float, default=None, help="Adam beta2 (default: 0.9 for wgan-gp/hinge, 0.999 for bce)")
    g.add_argument("--batch-size", type=int, default=64, help="images per step")
    g.add_argument("--epochs", type=int, default=None,
                   help=f"epochs to train, in total, counting resumed ones (default: as many as show D "
                        f"{DEFAULT_IMAGES:,} real images: 110 of 10,000, 61 of 18,009)")
    g.add_argument("--g-ema", type=float, default=0.999, metavar="DECAY",
                   help="moving average of G's weights for grids, accuracy and g.pt; at G's n-th step "
                   "the decay is at most (1+n)/(10+n), so it follows G from the start (0: off)")
    g = p.add_argument_group("evaluation")
    g.add_argument("--evaluator", default=None, help="evaluator checkpoint.pth (default: trained once on the data, cached)")
    g.add_argument("--eval-draws", type=int, default=5, help="noise draws per condition file for the accuracy")
    g.add_argument("--no-eval", action="store_true", help="skip the evaluator")
    T.add_machine_flags(p)
    return p


def validate(args, ckpt=None):
    n_critic, lr_g, lr_d, beta1, beta2, d_norm = LOSS_DEFAULTS[args.loss]
    args.n_critic = n_critic if args.n_critic is None else args.n_critic
    args.lr_g = lr_g if args.lr_g is None else args.lr_g
    args.lr_d = lr_d if args.lr_d is None else args.lr_d
    args.beta1 = beta1 if args.beta1 is None else args.beta1
    args.beta2 = beta2 if args.beta2 is None else args.beta2
    args.d_norm = ckpt["config"]["d_norm"] if ckpt else d_norm if args.d_norm == "auto" else args.d_norm
    on_cpu = T.pick_device(args.device).type == "cpu"
    if args.img_size is None:  # a GPU trains at the evaluator's 64 px; a CPU at 32 px, where the hour's figure was measured
        args.img_size = ckpt["config"]["img_size"] if ckpt else 32 if on_cpu else 64
    cpu_at_64 = on_cpu and args.img_size == 64  # transposed convs: a better hour there (docs/results.md)
    for name in ("g_width", "d_width"):  # cheaper epochs: more of them in a CPU's hour (docs/results.md)
        if getattr(args, name) is None:
            setattr(args, name, ckpt["config"][name] if ckpt else 32 if on_cpu else 64)
    if args.g_upsample is None:  # transposed convs: faster epochs, and the hour reads higher
        args.g_upsample = ckpt["config"].get("g_upsample", False) if ckpt else not cpu_at_64
    T.check(not (args.loss == "wgan-gp" and args.d_norm == "batch"),
            "--loss wgan-gp needs a D without batch norm (the gradient penalty is per sample): use --d-norm instance")
    for name in ("noise_dim", "g_width", "d_width", "batch_size", "n_critic", "eval_draws"):
        T.check(getattr(args, name) > 0, f"--{name.replace('_', '-')} must be > 0 (got {getattr(args, name)})")
    T.check(args.epochs is None or args.epochs >= 1, f"--epochs must be >= 1 (got {args.epochs})")
    T.check(args.lr_g > 0 and args.lr_d > 0, "--lr-g and --lr-d must be > 0")
    T.check(0 <= args.beta1 < 1 and 0 <= args.beta2 < 1, "--beta1 and --beta2 must be in [0, 1)")
    T.check(all(0 <= w < math.inf for w in (args.aux_weight, args.gp_weight, args.spectral_weight)),
            "--aux-weight, --gp-weight and --spectral-weight must be finite and >= 0")
    T.check(0 <= args.g_ema < 1, f"--g-ema must be in [0, 1) (got {args.g_ema})")
    if args.data_root is not None:  # before the run folder is made: a typo leaves no empty run behind
        iclevr_image_dir(args.data_root)


def model_config(args):
    """The architecture a new run records in its checkpoints (fixed on --resume). D's classifier has a
    body of its own, without spectral norm and with a 3x3 convolution between its downsamplings
    (aux_refine): on D's body it learns the objects slowly (docs/results.md). Without the classifier
    term (--aux-weight 0) there is no such body: it would run in every step, untrained."""
    config = {**{k: getattr(args, k) for k in MODEL_KEYS}, "n_classes": 24,
              "aux_body": "separate" if args.aux_weight else "shared"}
    config["aux_refine"] = config["aux_body"] == "separate"  # absent from older checkpoints: a body without them
    return config


@dataclass(frozen=True)
class Losses:
    """The loss settings of a run (from its flags)."""
    loss: str = "hinge"        # adversarial loss: hinge, wgan-gp or bce
    aux_weight: float = 1.0    # multi-label classifier loss on D's features, for D (real images) and G
    gp_weight: float = 10.0    # WGAN-GP's gradient penalty
    n_critic: int = 1          # D steps per G step
    max_shift: int = 0         # D sees every scene mirrored half the time and moved by up to this many pixels
    spectral_weight: float = 0.0  # G's spectrum against the real batch's

    @classmethod
    def from_args(cls, args, img_size):
        return cls(args.loss, args.aux_weight, args.gp_weight, args.n_critic, img_size // 8 if args.augment else 0,
                   args.spectral_weight)

    def d_view(self, x):
        """What D sees of a scene: with augmentation, a mirrored and shifted copy. Both real and generated
        scenes pass through it and G's gradient through it, so D's classifier must learn the objects
        rather than memorise the training images, and G gains nothing by drawing moved scenes."""
        return flip_and_shift(x, self.max_shift) if self.max_shift else x


def d_loss_fn(loss, d_real, d_fake):
    if loss == "hinge":
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    if loss == "wgan-gp":
        return d_fake.mean() - d_real.mean()
    return F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + \
        F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))


def g_loss_fn(loss, d_fake):
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    return -d_fake.mean()


def aux_loss(logits, y):
    """Multi-label BCE summed over the classes, averaged over images: the per-class mean would
    divide each object's signal by 24 and leave the condition a whisper next to the GAN loss."""
    return F.binary_cross_entropy_with_logits(logits.float(), y, reduction="sum") / y.size(0)


@functools.lru_cache(maxsize=4)
def radius_bins(h, w, device):
    """Each frequency's whole radius in an h x w spectrum, and how many frequencies share each radius;
    computed once, not in every G step (on a GPU its length would wait for the device)."""
    fy, fx = torch.fft.fftfreq(h, device=device) * h, torch.fft.fftfreq(w, device=device) * w
    radius = (fy[:, None] ** 2 + fx[None, :] ** 2).sqrt().round().long().flatten()
    return radius, torch.bincount(radius).float()


def spectrum_profile(images):
    """log of a batch's mean power (over images and colour channels) at each whole radius of the 2-D
    spectrum, out to its corners, where a transposed conv's 2-px checker lies."""
    images = images.float()
    h, w = images.shape[-2:]
    power = torch.fft.fft2(images).abs().pow(2).mean((0, 1)) / (h * w)
    radius, count = radius_bins(h, w, images.device)
    per_radius = torch.zeros(len(count), device=images.device).index_add_(0, radius, power.flatten())
    return torch.log(per_radius / count + 1e-10)


def spectral_loss(fake, real):
    """Durall et al. (2020): a G of up-convolutions puts too much power at the highest frequencies,
    which D's downsampling barely sees; G is asked to match the real batch's spectrum per radius."""
    return F.mse_loss(spectrum_profile(fake), spectrum_profile(real))


def gradient_penalty(netD, real, fake, y):
    """WGAN-GP: (||grad_x D(x_hat, y)|| - 1)^2 at random points between real and fake, in fp32."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    score, _ = netD(x_hat, y, with_aux=False)
    grad, = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def train_step(real, y, netG, netD, optG, optD, losses, amp, g_step):
    """One D step, plus a G step when g_step (every n_critic-th iteration); returns (loss_d, loss_g
    or None when G did not step, mean D(real), mean D(fake)) as tensors."""
    z = torch.randn(real.size(0), netG.noise_dim, device=real.device)

    # (1) D step on every batch: real (x, y) high, fake (G(z, y), y) low, plus the
    # auxiliary loss that makes D's features know which objects a real image holds.
    with amp.autocast():
        fake = netG(z, y)
        d_real, aux_real = netD(losses.d_view(real), y)
        d_fake, _ = netD(losses.d_view(fake.detach()), y, with_aux=False)
    loss_d = d_loss_fn(losses.loss, d_real.float(), d_fake.float())
    if losses.aux_weight:
        loss_d = loss_d + losses.aux_weight * aux_loss(aux_real, y)
    if losses.loss == "wgan-gp":
        loss_d = loss_d + losses.gp_weight * gradient_penalty(netD, real, fake.detach().float(), y)
    amp.step(loss_d, optD)

    # (2) G step every n_critic D steps, with D frozen: fool D and make the objects recognisable.
    loss_g = None
    if g_step:
        for p in netD.parameters():
            p.requires_grad_(False)
        with amp.autocast():
            d_gen, aux_gen = netD(losses.d_view(fake), y)
        loss_g = g_loss_fn(losses.loss, d_gen.float())
        if losses.aux_weight:
            loss_g = loss_g + losses.aux_weight * aux_loss(aux_gen, y)
        if losses.spectral_weight:
            loss_g = loss_g + losses.spectral_weight * spectral_loss(fake, real)
        amp.step(loss_g, optG)
        for p in netD.parameters():
            p.requires_grad_(True)
        loss_g = loss_g.detach()

    return loss_d.detach(), loss_g, d_real.float().mean(), d_fake.float().mean()


def main():
    args, ckpt, device, machine = T.start_run("cgan", get_parser, validate, MODEL_KEYS, os.path.join("runs", "cgan"),
                                              FLAGS_BEFORE)
    config = ckpt["config"] if ckpt else model_config(args)
    print(f"image size: {config['img_size']} px" + (" (upsampled to the evaluator's 64 px)" if config["img_size"] != 64 else ""),
          flush=True)

    # -- data: the synthetic set unless a real one is given; whole set in memory as uint8
    if args.data_root is None:
        args.data_root = SYNTH_ROOT
        if not os.path.isfile(os.path.join(SYNTH_ROOT, "train.json")):
            print(f"no --data-root: rendering a synthetic i-CLEVR of {SYNTH_N} images in {SYNTH_ROOT} "
                  f"(once; python data.py make-iclevr does the same)", file=sys.stderr)
            T.make_run_dir(SYNTH_ROOT)
            make_iclevr(SYNTH_ROOT, SYNTH_N, seed=0)
    images, conditions, objects = load_iclevr_cached(args.data_root, config["img_size"], args.cache_dir)
    T.check(len(objects) == config["n_classes"], f"{args.data_root}/objects.json has {len(objects)} objects, expected 24")
    T.check(len(images) >= args.batch_size, f"--batch-size {args.batch_size} is larger than the data set ({len(images)} images)")
    if args.epochs is None:
        args.epochs = max(1, round(DEFAULT_IMAGES / len(images)))
        print(f"epochs: {args.epochs} ({args.epochs * len(images):,} images; --epochs sets another length)", flush=True)
    spec = args.data_root if os.path.isfile(os.path.join(args.data_root, "test.json")) else SPEC_DIR
    eval_sets = {name: load_conditions(os.path.join(spec, f"{name}.json"), objects) for name in ("test", "new_test")}
    images, conditions = images.to(device), conditions.to(device)

    evaluator, judge = None, None
    if not args.no_eval:
        evaluator, judge_acc, judge_acc_32 = evaluator_for(args.evaluator, args.data_root, device, cache_dir=args.cache_dir)
        if judge_acc is not None:
            print(f"evaluator held-out top-k accuracy: {judge_acc:.4f}", flush=True)
        # which judge the accuracies come from, for the report: the course's file, or one trained here
        judge = {"file": os.path.abspath(args.evaluator)} if args.evaluator else \
            {"trained_on": args.data_root, "heldout_accuracy": judge_acc, "heldout_accuracy_32px": judge_acc_32}

    # -- models and optimisers
    netG, netD = T.to_device(build_cgan(config), device, channels_last_on_cpu=True)
    optG = torch.optim.Adam(netG.parameters(), lr=args.lr_g, betas=(args.beta1, args.beta2))
    optD = torch.optim.Adam(netD.parameters(), lr=args.lr_d, betas=(args.beta1, args.beta2))
    losses = Losses.from_args(args, config["img_size"])
    run = T.Run("cgan", args, config, device, machine, ckpt, nets={"netG": netG, "netD": netD},
                optimizers={"optG": (optG, args.lr_g), "optD": (optD, args.lr_d)},
                state={"last_loss_g": torch.zeros(()), "breakdown": None},  # G's loss between G steps
                extra={"objects": objects, "data_root": args.data_root, "judge": judge}, g_keys=("objects", "data_root"),
                g_ema=args.g_ema)

    def step_fn(idx, iteration):
        g_step = (iteration + 1) % losses.n_critic == 0
        loss_d, loss_g, d_real, d_fake = train_step(to_float(images[idx]), conditions[idx], netG, netD, optG, optD,
                                                    losses, run.amp, g_step)
        if g_step:
            run.state["last_loss_g"] = loss_g
            if run.netG_ema is not None:
                T.ema_update(run.netG_ema, netG, args.g_ema, num_updates=(iteration + 1) // losses.n_critic)
        return loss_d, run.state["last_loss_g"].to(device), d_real, d_fake

    def end_of_epoch(epoch, m):
        """Grids of test.json and new_test.json and, with an evaluator, their accuracy."""
        summary, accs, breakdown = f" | D {m[0]:.3f} G {m[1]:.3f}", [], {}
        for name, y_eval in eval_sets.items():
            if evaluator is not None:
                mean, std, grid, found = generator_accuracy(run.netG_eval, config["noise_dim"], evaluator, y_eval,
                                                            args.eval_draws, device=device)
                accs += [mean, std]
                breakdown[name] = {"found": found.tolist(), "asked": (y_eval.sum(0) * args.eval_draws).tolist()}
                summary += f" | {name} {mean:.3f}+-{std:.3f}"
            else:
                grid = sample_images(run.netG_eval, config["noise_dim"], y_eval, device)
            T.save_grid(grid, os.path.join(args.out, "grids", f"epoch{epoch:03d}_{name}.png"), nrow=8)
            T.save_grid(grid, os.path.join(args.out, f"grid_{name}.png"), nrow=8)
        if not accs:
            return None, summary
        run.state["accuracy"].append([epoch] + accs)
        run.state["breakdown"] = breakdown
        return (accs[0] + accs[2]) / 2, summary

    grids = os.path.join(args.out, "grids")
    run.fit(len(images), LOSS_COLUMNS, step_fn, end_of_epoch, write_logs,
            gif_frames=lambda: sorted(os.path.join(grids, f) for f in os.listdir(grids) if f.endswith("_test.png")
                                      and "new_test" not in f))
    best = run.state["best"]
    sample_args = ["--json", os.path.join(spec, "test.json")] + (["--evaluator", args.evaluator] if args.evaluator else [])
    print(f"done: {args.out}/g.pt" + (f"; best mean accuracy {best['accuracy']:.3f} at epoch {best['epoch']} (g_best.pt)"
                                      if best["epoch"] else "")
          + f"; sample with: {T.sample_command(f'{args.out}/g.pt', *sample_args)}", flush=True)
    return 0


@torch.no_grad()
def sample_images(netG, noise_dim, y, device, seed=0):
    """One image per condition, from a fixed noise draw (the grids of a run without an evaluator)."""
    was_training = netG.training
    netG.eval()
    images = netG(torch.randn(len(y), noise_dim, generator=torch.Generator().manual_seed(seed)).to(device),
                  y.to(device)).float().cpu()
    netG.train(was_training)
    return images


def write_logs(out, state):
    T.write_logs(out, state, LOSS_COLUMNS, ("epoch", "test_mean", "test_std", "new_test_mean", "new_test_std"),
                 curve_panels)


def curve_panels(it, h, a):
    """The losses, D's mean scores on real and fake images, and the evaluator's accuracy per epoch."""
    panels = [("losses", "iteration", {"D": (it, h[:, 2]), "G": (it, h[:, 3])}),
              ("D output (mean score)", "iteration", {"real": (it, h[:, 4]), "fake": (it, h[:, 5])})]
    if a is not None:
        panels.append(("evaluator top-k accuracy", "epoch", {"test.json": (a[:, 0], a[:, 1]),
                                                             "new_test.json": (a[:, 0], a[:, 3])}))
    return panels


if __name__ == "__main__":
    T.run_cli(main)
