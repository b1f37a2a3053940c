"""Conditional GAN on i-CLEVR: G(z, y) draws a scene with the objects in the multi-hot condition y.

    python train_cgan.py                                  # synthetic i-CLEVR, made once in data/iclevr-synth
    python train_cgan.py --data-root ~/iclevr --evaluator checkpoint.pth    # the real data and evaluator
    python train_cgan.py --img-size 32 --g-upsample --g-cond cbn --g-ema 0.999 --lr-g 4e-4 --lr-d 8e-4 --epochs 60
                                                          # on a CPU: >= 0.80 on both test files within the hour (README)

D sees the condition either as an extra image channel (--cond concat, seed 002) or through a
projection (--cond projection); --aux-weight adds a multi-label classification loss on D's features.
Every epoch: ckpt.pt / g.pt, grids of the 32 test.json and new_test.json conditions (8 per row), the
evaluator's top-k accuracy on both (mean +- std over noise draws), g_best.pt, losses.csv, curves.png.
"""
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import training as T
from data import SPEC_DIR, load_conditions, load_iclevr_cached, make_iclevr, to_float
from evaluate import evaluator_for, generator_accuracy
from models import build_cgan

MODEL_KEYS = ("img_size", "noise_dim", "g_width", "d_width", "g_upsample", "g_cond", "cond", "d_norm")  # fixed on --resume
LOSS_COLUMNS = ("loss_d", "loss_g", "d_real", "d_fake")
LOSS_DEFAULTS = {  # (n_critic, lr_g, lr_d, beta1, beta2, d_norm) per loss
    "wgan-gp": (5, 2e-4, 2e-4, 0.0, 0.9, "instance"),   # seed 002 / Gulrajani et al.
    "hinge": (1, 2e-4, 2e-4, 0.0, 0.9, "spectral"),     # Miyato et al. (SN-GAN, projection D)
    "bce": (1, 2e-4, 2e-4, 0.5, 0.999, "batch"),        # DCGAN
}
SYNTH_ROOT = os.path.join("data", "iclevr-synth")


def get_parser():
    p = T.ArgumentParser(description=__doc__, formatter_class=T.HelpFormatter)
    g = p.add_argument_group("data and output")
    g.add_argument("--data-root", default=None,
                   help=f"i-CLEVR folder in the real layout; default: a synthetic set, made once in {SYNTH_ROOT}")
    g.add_argument("--synthetic-n", type=int, default=18009, help="images in the synthetic set when it is made")
    g.add_argument("--out", default="runs/cgan", help="run folder")
    g.add_argument("--resume", default=None, metavar="PATH", help="continue a run: its folder or its ckpt.pt")
    g = p.add_argument_group("model")
    g.add_argument("--img-size", type=int, choices=(32, 64), default=64, help="image size (32: quick CPU runs)")
    g.add_argument("--noise-dim", type=int, default=100, help="noise dimensions")
    g.add_argument("--g-width", type=int, default=64, help="channels of G's last hidden layer (DCGAN ngf)")
    g.add_argument("--d-width", type=int, default=64, help="channels of D's first layer (DCGAN ndf)")
    g.add_argument("--g-upsample", action="store_true",
                   help="G with nearest-upsample + conv layers instead of transposed convs (no checkerboard artifacts)")
    g.add_argument("--g-cond", choices=("concat", "cbn"), default="concat",
                   help="how G sees the condition: concatenated to the noise (seed 002), or also through "
                        "conditional BatchNorm in every layer (cbn)")
    g.add_argument("--cond", choices=("projection", "concat"), default="projection",
                   help="how D sees the condition: projection D, or concat as an extra image channel (seed 002)")
    g.add_argument("--d-norm", choices=("auto", "batch", "instance", "spectral", "none"), default="auto",
                   help="normalisation in D; auto: instance for wgan-gp, spectral for hinge, batch for bce")
    g = p.add_argument_group("loss and optimisation")
    g.add_argument("--loss", choices=tuple(LOSS_DEFAULTS), default="hinge", help="adversarial loss")
    g.add_argument("--aux-weight", type=float, default=1.0, help="weight of the auxiliary multi-label loss (BCE summed over the 24 classes) for D, and for G unless --aux-weight-g is given (0: off)")
    g.add_argument("--aux-weight-g", type=float, default=None, metavar="WEIGHT",
                   help="weight of the auxiliary loss in G's objective, when it should differ from D's "
                        "(default: %(default)s, i.e. the value of --aux-weight)")
    g.add_argument("--aux-fake", type=float, default=0.0, metavar="WEIGHT",
                   help="weight of a second auxiliary term for D that labels G's images as holding none of "
                        "the objects, so G cannot satisfy D's classifier with images that only look right to it "
                        "(0: off; D's classifier then learns from real images only, as in AC-GAN)")
    g.add_argument("--n-critic", type=int, default=None, help="D steps per G step (default: 5 for wgan-gp, else 1)")
    g.add_argument("--gp-weight", type=float, default=10.0, help="gradient-penalty weight (wgan-gp)")
    g.add_argument("--lr-g", type=float, default=None, help="Adam learning rate of G (default by loss: 2e-4)")
    g.add_argument("--lr-d", type=float, default=None, help="Adam learning rate of D (default by loss: 2e-4)")
    g.add_argument("--beta1", type=float, default=None, help="Adam beta1 (default: 0 for wgan-gp/hinge, 0.5 for bce)")
    g.add_argument("--beta2", type=float, default=None, help="Adam beta2 (default: 0.9 for wgan-gp/hinge, 0.999 for bce)")
    g.add_argument("--batch-size", type=int, default=64, help="images per step")
    g.add_argument("--epochs", type=int, default=30, help="epochs to train (in total, counting resumed ones)")
    g.add_argument("--g-ema", type=float, default=0.0, metavar="DECAY",
                   help="keep an exponential moving average of G's weights with this decay (e.g. 0.999, as in "
                        "BigGAN/StyleGAN) and use it for the grids, the accuracy, g.pt and g_best.pt (0: off)")
    g = p.add_argument_group("evaluation")
    g.add_argument("--evaluator", default=None, help="evaluator checkpoint.pth (default: trained once on the data and cached)")
    g.add_argument("--eval-draws", type=int, default=5, help="noise draws per condition file for the accuracy")
    g.add_argument("--no-eval", action="store_true", help="skip the evaluator")
    g = p.add_argument_group("machine")
    g.add_argument("--seed", type=int, default=1, help="random seed")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to train")
    g.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto", help="as in train_infogan.py")
    g.add_argument("--compile", action="store_true", help="torch.compile the networks")
    g.add_argument("--log-every", type=int, default=25, help="steps between progress-bar updates (host syncs)")
    return p


def validate(args):
    n_critic, lr_g, lr_d, beta1, beta2, d_norm = LOSS_DEFAULTS[args.loss]
    args.n_critic = n_critic if args.n_critic is None else args.n_critic
    args.lr_g = lr_g if args.lr_g is None else args.lr_g
    args.lr_d = lr_d if args.lr_d is None else args.lr_d
    args.beta1 = beta1 if args.beta1 is None else args.beta1
    args.beta2 = beta2 if args.beta2 is None else args.beta2
    args.d_norm = d_norm if args.d_norm == "auto" else args.d_norm
    T.check(not (args.loss == "wgan-gp" and args.d_norm == "batch"),
            "--loss wgan-gp needs a D without batch norm (the gradient penalty is per sample): use --d-norm instance")
    for name in ("noise_dim", "g_width", "d_width", "batch_size", "n_critic", "eval_draws", "log_every", "synthetic_n"):
        T.check(getattr(args, name) > 0, f"--{name.replace('_', '-')} must be > 0 (got {getattr(args, name)})")
    T.check(args.epochs >= 1, f"--epochs must be >= 1 (got {args.epochs})")
    T.check(args.lr_g > 0 and args.lr_d > 0, "--lr-g and --lr-d must be > 0")
    T.check(0 <= args.beta1 < 1 and 0 <= args.beta2 < 1, "--beta1 and --beta2 must be in [0, 1)")
    T.check(min(args.aux_weight, aux_weight_g(args), args.aux_fake, args.gp_weight) >= 0,
            "--aux-weight, --aux-weight-g, --aux-fake and --gp-weight must be >= 0")
    T.check(args.aux_weight > 0 or not (aux_weight_g(args) or args.aux_fake),
            "--aux-weight-g and --aux-fake need D's classifier, which only --aux-weight > 0 trains")
    T.check(0 <= args.g_ema < 1, f"--g-ema must be in [0, 1) (got {args.g_ema})")


def aux_weight_g(args):
    """G's auxiliary weight: --aux-weight-g, else --aux-weight (resolved here, not stored, so that a
    resumed run given a new --aux-weight moves G's weight with it)."""
    return args.aux_weight if args.aux_weight_g is None else args.aux_weight_g


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


def gradient_penalty(netD, real, fake, y):
    """WGAN-GP: (||grad_x D(x_hat, y)|| - 1)^2 at random points between real and fake, in fp32."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    score, _ = netD(x_hat, y)
    grad, = torch.autograd.grad(score.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def train_step(real, y, iteration, G, D, netD, optG, optD, config, args, amp_dtype, last_loss_g):
    """One D step, plus a G step every n_critic iterations (counted over the whole run); returns
    (loss_d, loss_g, mean D(real), mean D(fake)) as tensors (last_loss_g when G does not step)."""
    bs, device, d_params, loss_g = real.size(0), real.device, list(netD.parameters()), last_loss_g
    autocast = lambda: torch.autocast(device.type, amp_dtype, enabled=amp_dtype is not None)  # noqa: E731
    z = torch.randn(bs, config["noise_dim"], device=device)

    # (1) D step on every batch: real (x, y) high, fake (G(z, y), y) low, plus the
    # auxiliary loss that makes D's features know which objects a real image holds.
    with autocast():
        fake = G(z, y)
        d_real, aux_real = D(real, y)
        d_fake, aux_fake = D(fake.detach(), y)
    loss_d = d_loss_fn(args.loss, d_real.float(), d_fake.float())
    if args.aux_weight:
        loss_d = loss_d + args.aux_weight * aux_loss(aux_real, y)
    if args.aux_fake:
        loss_d = loss_d + args.aux_fake * aux_loss(aux_fake, torch.zeros_like(y))
    if args.loss == "wgan-gp":
        loss_d = loss_d + args.gp_weight * gradient_penalty(netD, real, fake.detach().float(), y)
    optD.zero_grad(set_to_none=True)
    loss_d.backward()
    optD.step()

    # (2) G step every n_critic D steps, with D frozen: fool D and make the objects recognisable.
    if (iteration + 1) % args.n_critic == 0:
        for p in d_params:
            p.requires_grad_(False)
        with autocast():
            d_gen, aux_gen = D(fake, y)
        loss_g = g_loss_fn(args.loss, d_gen.float())
        weight_g = aux_weight_g(args)
        if weight_g:
            loss_g = loss_g + weight_g * aux_loss(aux_gen, y)
        optG.zero_grad(set_to_none=True)
        loss_g.backward()
        optG.step()
        for p in d_params:
            p.requires_grad_(True)

    return loss_d.detach(), loss_g.detach(), d_real.float().mean(), d_fake.float().mean()


def main():
    args = get_parser().parse_args()
    ckpt = T.load_checkpoint(args.resume, kind="cgan") if args.resume else None
    if ckpt:
        args = T.resume_args(args, ckpt, get_parser(), MODEL_KEYS)
        args.d_norm = ckpt["config"]["d_norm"]
    validate(args)
    device = T.pick_device(args.device)
    if ckpt:
        config = ckpt["config"]
    else:
        config = {k: getattr(args, k) for k in MODEL_KEYS}
        config["n_classes"] = 24
    out = T.make_run_dir(args.out)
    os.makedirs(os.path.join(out, "grids"), exist_ok=True)
    T.seed_everything(args.seed)

    # -- data: the synthetic set unless a real one is given; whole set in memory as uint8
    if args.data_root is None:
        args.data_root = SYNTH_ROOT
        if not os.path.isfile(os.path.join(SYNTH_ROOT, "train.json")):
            print(f"no --data-root: rendering a synthetic i-CLEVR of {args.synthetic_n} images in {SYNTH_ROOT} "
                  f"(once; python data.py make-iclevr does the same)", file=sys.stderr)
            T.make_run_dir(SYNTH_ROOT)
            make_iclevr(SYNTH_ROOT, args.synthetic_n, seed=0)
    images, conditions, objects = load_iclevr_cached(args.data_root, config["img_size"])
    T.check(len(objects) == config["n_classes"], f"{args.data_root}/objects.json has {len(objects)} objects, expected 24")
    T.check(len(images) >= args.batch_size, f"--batch-size {args.batch_size} is larger than the data set ({len(images)} images)")
    spec = args.data_root if os.path.isfile(os.path.join(args.data_root, "test.json")) else SPEC_DIR
    eval_sets = {name: load_conditions(os.path.join(spec, f"{name}.json"), objects) for name in ("test", "new_test")}
    images, conditions = images.to(device), conditions.to(device)
    steps_per_epoch = len(images) // args.batch_size

    evaluator = None
    if not args.no_eval:
        evaluator = evaluator_for(args.evaluator, args.data_root, device)[0]

    # -- models and optimisers
    netG, netD = build_cgan(config)
    netG, netD = netG.to(device), netD.to(device)
    if device.type == "cuda":
        netG, netD = netG.to(memory_format=torch.channels_last), netD.to(memory_format=torch.channels_last)
    optG = torch.optim.Adam(netG.parameters(), lr=args.lr_g, betas=(args.beta1, args.beta2))
    optD = torch.optim.Adam(netD.parameters(), lr=args.lr_d, betas=(args.beta1, args.beta2))
    amp_dtype = T.autocast_dtype(device, args.precision)
    G, D = (torch.compile(netG), torch.compile(netD)) if args.compile else (netG, netD)
    # the averaged G is what gets judged and saved: its weights wobble less than the trained G's
    netG_ema = T.make_ema(netG, args.g_ema)
    netG_eval = netG_ema if netG_ema is not None else netG

    state = {"epoch": 0, "step": 0, "perm": None, "history": [], "accuracy": [],
             "best": {"accuracy": -1.0, "epoch": None}, "last_loss_g": torch.zeros(())}  # G's loss between G steps
    if ckpt:
        state = T.restore(ckpt, state, {"netG": netG, "netD": netD},
                          {"optG": (optG, args.lr_g), "optD": (optD, args.lr_d)}, (args.beta1, args.beta2))
        if netG_ema is not None:  # a run that had no average yet starts it from the current G
            netG_ema.load_state_dict(ckpt.get("netG_ema") or netG.state_dict())

    def save(final_step_of_epoch):
        full = dict(kind="cgan", config=config, args=vars(args), objects=objects, netG=netG.state_dict(),
                    netD=netD.state_dict(), optG=optG.state_dict(), optD=optD.state_dict(), rng=T.rng_state(),
                    netG_ema=netG_ema.state_dict() if netG_ema is not None else None, **state)
        T.save_checkpoint(full, os.path.join(out, T.CHECKPOINT))
        if final_step_of_epoch:
            T.save_checkpoint(dict(kind="cgan", config=config, objects=objects, netG=netG_eval.state_dict(),
                                   epoch=state["epoch"], data_root=args.data_root), os.path.join(out, T.GENERATOR))

    stop = T.StopRequest()

    def step_fn(idx, step):
        iteration = state["epoch"] * steps_per_epoch + step
        loss_d, state["last_loss_g"], d_real, d_fake = train_step(
            to_float(images[idx]), conditions[idx], iteration, G, D, netD, optG, optD, config, args, amp_dtype,
            state["last_loss_g"].to(device))
        if netG_ema is not None and (iteration + 1) % args.n_critic == 0:
            T.ema_update(netG_ema, netG, args.g_ema)
        return loss_d, state["last_loss_g"], d_real, d_fake

    for epoch in range(state["epoch"], args.epochs):
        t0 = time.time()
        rows = T.train_epoch(state, epoch, len(images), step_fn, LOSS_COLUMNS, args, stop, device, out,
                             save_partial=lambda: (save(final_step_of_epoch=False), write_logs(out, state)))

        # -- end of epoch: grids and accuracy on test.json / new_test.json, checkpoints, logs
        epoch_time = time.time() - t0
        state.update(epoch=epoch + 1, perm=None)
        summary, accs = "", []
        for name, y_eval in eval_sets.items():
            if evaluator is not None:
                mean, std, grid, _ = generator_accuracy(netG_eval, config["noise_dim"], evaluator, y_eval, args.eval_draws,
                                                     device=device)
                accs += [mean, std]
                summary += f" | {name} {mean:.3f}+-{std:.3f}"
            else:
                was_training = netG_eval.training
                netG_eval.eval()
                with torch.no_grad():
                    grid = netG_eval(torch.randn(len(y_eval), config["noise_dim"],
                                                 generator=torch.Generator().manual_seed(0)).to(device),
                                     y_eval.to(device)).float().cpu()
                netG_eval.train(was_training)
            T.save_grid(grid, os.path.join(out, "grids", f"epoch{epoch + 1:03d}_{name}.png"), nrow=8)
            T.save_grid(grid, os.path.join(out, f"grid_{name}.png"), nrow=8)
        if accs:
            state["accuracy"].append([epoch + 1] + accs)
        T.end_epoch(out, state, epoch + 1, (accs[0] + accs[2]) / 2 if accs else None, save, write_logs)
        m = np.mean(rows, axis=0)
        print(T.epoch_line(epoch + 1, args.epochs, epoch_time, len(rows) * args.batch_size) +
              f" | D {m[0]:.3f} G {m[1]:.3f}{summary}", flush=True)
        T.stop_after_epoch(stop, out, epoch + 1, steps_per_epoch)

    T.make_gif(sorted(os.path.join(out, "grids", f) for f in os.listdir(os.path.join(out, "grids")) if f.endswith("_test.png")
                      and "new_test" not in f), os.path.join(out, "progress.gif"))
    best = state["best"]
    print(f"done: {out}/g.pt" + (f"; best mean accuracy {best['accuracy']:.3f} at epoch {best['epoch']} (g_best.pt)"
                                 if best["epoch"] else ""), flush=True)
    return 0


def write_logs(out, state):
    T.write_csv(os.path.join(out, "losses.csv"), ("epoch", "iteration") + LOSS_COLUMNS, state["history"])
    if state["accuracy"]:
        T.write_csv(os.path.join(out, "accuracy.csv"), ("epoch", "test_mean", "test_std", "new_test_mean", "new_test_std"),
                    state["accuracy"])
    if not state["history"]:
        return
    h = np.asarray(state["history"], dtype=float)
    it = h[:, 1]
    panels = [("losses", "iteration", {"D": (it, h[:, 2]), "G": (it, h[:, 3])}),
              ("D output (mean score)", "iteration", {"real": (it, h[:, 4]), "fake": (it, h[:, 5])})]
    if state["accuracy"]:
        a = np.asarray(state["accuracy"], dtype=float)
        panels.append(("evaluator top-k accuracy", "epoch", {"test.json": (a[:, 0], a[:, 1]),
                                                             "new_test.json": (a[:, 0], a[:, 3])}))
    T.plot_curves(os.path.join(out, "curves.png"), panels)


if __name__ == "__main__":
    T.run_cli(main)
