"""Training-throughput benchmark: this toolkit's training step against the textbook loop, side by side.

    python bench.py                       # InfoGAN (every --arch) and the cGAN at 32/64 px, MNIST from ./data
    python bench.py --precision fp32      # the same without bf16 autocast
    python bench.py --time-to-quality     # wall time to code->digit accuracy 0.90
    python bench.py --smoke               # under a minute: does this GPU (or CPU) train, how fast

For every row both loops train the same networks (same init, same batch) and the same losses (the
InfoGAN paper's: --lambda-aug 0 --lr-g 1e-3 --g-ema 0; the cGAN's hinge and classifier losses without
--augment, which the textbook loop lacks; one more row per model times this
toolkit's default flags alone) in this one process:
  fast       the trainers' own train_step: data resident as one uint8 tensor and batched by indexing,
             D frozen during the G step, bf16 autocast per --precision (auto: where the hardware has it), no host syncs
  reference  the way the reports train: torchvision DataLoader with per-image ToTensor/Normalize,
             float32, separate real and fake backward passes, D's gradients computed in the G step,
             losses read with .item() every step
Images/s is the batch size over the median time of the timed iterations (after warm-up), data
loading included.
"""
import training as T  # first: it sets up the Apple-silicon fallback before torch loads

import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

from data import load_iclevr, load_mnist, make_iclevr, to_float
from models import INFOGAN_ARCHS, INFOGAN_IMG_SIZE, build_cgan, build_infogan, infogan_latent, sample_noise


def timed(step, warmup, iters, sync):
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        step()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def infogan_args(**kw):
    import train_infogan
    return train_infogan.get_parser().parse_args([f"--{k.replace('_', '-')}={v}" for k, v in kw.items()])


# ---------------------------------------------------------------------------- InfoGAN

# the side-by-side rows train the paper's InfoGAN, as the reference loop does
PAPER_FLAGS = dict(lambda_aug=0, lr_g=1e-3, g_ema=0)


def bench_infogan_fast(arch, images, bs, device, precision, warmup, iters, flags=PAPER_FLAGS):
    from train_infogan import Losses, train_step
    args = infogan_args(arch=arch, batch_size=bs, precision=precision, **flags)
    config = dict(arch=arch, noise_dim=62, n_cat=10, n_cont=2, noise="uniform")
    torch.manual_seed(0)
    netG, netD = T.to_device(build_infogan(config), device)  # as the trainer places them
    d_params = list(netD.body.parameters()) + list(netD.d_head.parameters())
    optD = torch.optim.Adam(d_params, lr=args.lr_d, betas=(args.beta1, args.beta2))
    optGQ = torch.optim.Adam(list(netG.parameters()) + list(netD.q_head.parameters()), lr=args.lr_g,
                             betas=(args.beta1, args.beta2))
    amp, losses = T.Amp(device, T.pick_precision(device, precision)), Losses.from_args(args)
    netG_ema = T.make_ema(netG, args.g_ema)
    images = images.to(device)
    perm = torch.randperm(len(images), device=device)
    pos = [0]

    def step():
        idx = perm[pos[0] * bs % (len(images) - bs):][:bs]
        pos[0] += 1
        train_step(to_float(images[idx]), netG, netD, optD, optGQ, config, losses, amp)
        if netG_ema is not None:
            T.ema_update(netG_ema, netG, args.g_ema, num_updates=pos[0])
    return timed(step, warmup, iters, sync(device))


def bench_infogan_reference(arch, data_root, bs, device, warmup, iters):
    """The textbook loop of the reports (seed 003's structure), same networks."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms
    size = INFOGAN_IMG_SIZE[arch]
    tf = [transforms.Resize(size)] if size != 28 else []
    ds = datasets.MNIST(data_root, train=True, download=False,
                        transform=transforms.Compose(tf + [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]))
    loader = DataLoader(ds, batch_size=bs, shuffle=True, drop_last=True)
    config = dict(arch=arch, noise_dim=62, n_cat=10, n_cont=2, noise="uniform")
    torch.manual_seed(0)
    netG, netD = (m.to(device) for m in build_infogan(config))
    optD = torch.optim.Adam(list(netD.body.parameters()) + list(netD.d_head.parameters()), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(list(netG.parameters()) + list(netD.q_head.parameters()), lr=1e-3, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    batches = iter(loader)
    log = []

    def step():
        x, _ = next(batches)
        x = x.to(device)
        optD.zero_grad()
        d_real, _ = netD(x)
        loss_real = bce(d_real, torch.ones(bs, device=device))
        loss_real.backward()
        cat = torch.randint(10, (bs,), device=device)
        cont = torch.rand(bs, 2, device=device) * 2 - 1
        z = infogan_latent(sample_noise(bs, 62, "uniform", device), cat, cont, 10)
        fake = netG(z)
        d_fake, _ = netD(fake.detach())
        loss_fake = bce(d_fake, torch.zeros(bs, device=device))
        loss_fake.backward()
        optD.step()
        optG.zero_grad()
        d_fake2, features = netD(fake)
        cat_logits, mean, logvar = netD.q(features)
        loss_g = bce(d_fake2, torch.ones(bs, device=device)) + F.cross_entropy(cat_logits, cat) + \
            0.1 * F.gaussian_nll_loss(mean, cont, logvar.exp(), reduction="none").sum(1).mean()
        loss_g.backward()
        optG.step()
        log.append((loss_real.item() + loss_fake.item(), loss_g.item()))
    return timed(step, warmup, iters, sync(device))


# ---------------------------------------------------------------------------- cGAN

# the side-by-side rows train what the reference loop does: no augmentation
CGAN_REFERENCE_FLAGS = ["--no-augment"]


def cgan_setup(img_size, device, flags):
    import train_cgan
    args = train_cgan.get_parser().parse_args(["--img-size", str(img_size), "--device", device.type, *flags])
    train_cgan.validate(args)
    config = train_cgan.model_config(args)  # the networks the trainer builds for these flags
    torch.manual_seed(0)
    netG, netD = T.to_device(build_cgan(config), device, channels_last_on_cpu=True)  # as the trainer does
    optG = torch.optim.Adam(netG.parameters(), lr=args.lr_g, betas=(args.beta1, args.beta2))
    optD = torch.optim.Adam(netD.parameters(), lr=args.lr_d, betas=(args.beta1, args.beta2))
    return args, config, netG, netD, optG, optD


def bench_cgan_fast(images, conditions, img_size, bs, device, precision, warmup, iters, flags=CGAN_REFERENCE_FLAGS):
    from train_cgan import Losses, train_step
    args, config, netG, netD, optG, optD = cgan_setup(img_size, device, flags)
    images, conditions = images.to(device), conditions.to(device)
    amp, losses = T.Amp(device, T.pick_precision(device, precision)), Losses.from_args(args, img_size)
    pos = [0]

    def step():
        i = pos[0] * bs % (len(images) - bs)
        pos[0] += 1
        train_step(to_float(images[i:i + bs]), conditions[i:i + bs], netG, netD, optG, optD, losses, amp, g_step=True)
    return timed(step, warmup, iters, sync(device))


def bench_cgan_reference(root, img_size, bs, device, warmup, iters):
    """Per-image PIL loading, float32, separate passes, .item() every step; same networks and losses."""
    import json
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    class ICLEVR(Dataset):
        def __init__(self):
            self.items = list(json.load(open(os.path.join(root, "train.json"))).items())
            self.objects = json.load(open(os.path.join(root, "objects.json")))
            self.tf = transforms.Compose([transforms.Resize((img_size, img_size)), transforms.ToTensor(),
                                          transforms.Normalize((0.5,) * 3, (0.5,) * 3)])

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            name, objs = self.items[i]
            y = torch.zeros(24)
            y[[self.objects[o] for o in objs]] = 1
            return self.tf(Image.open(os.path.join(root, "iclevr", name)).convert("RGB")), y

    from train_cgan import aux_loss
    args, config, netG, netD, optG, optD = cgan_setup(img_size, device, CGAN_REFERENCE_FLAGS)
    batches = iter(DataLoader(ICLEVR(), batch_size=bs, shuffle=True, drop_last=True))
    log = []

    def step():
        x, y = next(batches)
        x, y = x.to(device), y.to(device)
        optD.zero_grad()
        d_real, aux_real = netD(x, y)
        loss_real = F.relu(1 - d_real).mean() + aux_loss(aux_real, y)
        loss_real.backward()
        fake = netG(torch.randn(bs, config["noise_dim"], device=device), y)
        d_fake, _ = netD(fake.detach(), y)
        loss_fake = F.relu(1 + d_fake).mean()
        loss_fake.backward()
        optD.step()
        optG.zero_grad()
        d_gen, aux_gen = netD(fake, y)
        loss_g = -d_gen.mean() + aux_loss(aux_gen, y)
        loss_g.backward()
        optG.step()
        log.append((loss_real.item() + loss_fake.item(), loss_g.item()))
    return timed(step, warmup, iters, sync(device))


def sync(device):
    if device.type == "cuda":
        return torch.cuda.synchronize
    return torch.mps.synchronize if device.type == "mps" else (lambda: None)


# ---------------------------------------------------------------------------- smoke check

def smoke(device_name, precision_name, warmup, iters):
    """A few steps of each model on random data (no download): does this device train, in which
    precision, how fast, with how much memory. Under a minute on a GPU or a laptop CPU."""
    device = T.pick_device(device_name)
    precision = T.pick_precision(device, precision_name)
    img_size = 32 if device.type == "cpu" else 64  # what train_cgan.py trains at on this device
    print(f"smoke check on {device.type} ({T.device_name(device)}), precision {precision}, torch {torch.__version__}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    gen = torch.Generator().manual_seed(0)
    mnist = torch.randint(0, 256, (64 * 4, 1, 28, 28), dtype=torch.uint8, generator=gen)
    seconds = bench_infogan_fast("paper", mnist, 64, device, precision, warmup, iters, flags={})
    print(f"infogan (defaults, batch 64):          {64 / seconds:8.0f} img/s", flush=True)
    scenes = torch.randint(0, 256, (64 * 4, 3, img_size, img_size), dtype=torch.uint8, generator=gen)
    labels = (torch.rand(64 * 4, 24, generator=gen) < 0.08).float()
    seconds = bench_cgan_fast(scenes, labels, img_size, 64, device, precision, warmup, iters, flags=[])
    print(f"cgan (defaults, {img_size} px, batch 64):      {64 / seconds:8.0f} img/s", flush=True)
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MB")
    elif device.type == "mps":
        print(f"GPU memory held by PyTorch: {torch.mps.driver_allocated_memory() / 2**20:.0f} MB")
    print(f"peak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print("smoke check passed")


# ---------------------------------------------------------------------------- time to quality

def time_to_quality(data_root, target, max_epochs, extra):
    """Run train_infogan.py with its defaults for max_epochs; report the wall time at which the
    code->digit accuracy first reaches target (process start, classifier training and every
    evaluation included, to that epoch's summary line), and the run's peak memory."""
    with tempfile.TemporaryDirectory(prefix="ttq_") as out:  # the run's 200+ MB of checkpoints go with it
        _time_to_quality(data_root, target, max_epochs, extra, out)


def _time_to_quality(data_root, target, max_epochs, extra, out):
    cmd = [sys.executable, "train_infogan.py", "--data-root", os.path.abspath(data_root), "--epochs", str(max_epochs), "--out", out, *extra]
    print("running:", " ".join(cmd), flush=True)
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.abspath(__file__)))
    reached = None
    for line in proc.stdout:
        print(f"  [{time.time() - t0:6.1f}s] {line.rstrip()}", flush=True)
        m = re.search(r"code->digit acc ([0-9.]+)", line)
        if m and float(m.group(1)) >= target and reached is None:
            reached = time.time() - t0
            print(f"  -> accuracy {target} reached after {reached:.0f} s", flush=True)
    T.check(proc.wait() in (0, 130), f"the training run failed (exit code {proc.returncode})")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if reached is None:
        print(f"time to accuracy {target}: not reached in {max_epochs} epochs ({time.time() - t0:.0f}s)")
    else:
        print(f"time to accuracy {target}: {reached:.0f} s ({reached / 60:.1f} min) wall, from process start")
    print(f"peak resident memory of the training run: {peak_mb:.0f} MB")


def main():
    p = T.ArgumentParser(description=__doc__, formatter_class=T.HelpFormatter)
    p.add_argument("--data-root", default="./data", help="folder with MNIST/raw/")
    p.add_argument("--device", choices=("both",) + T.DEVICES, default="both",
                   help="both: the CPU, and the GPU when present (--smoke: auto)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="InfoGAN batch size (default: 100, as docs/results.md's figures; with --time-to-quality "
                        "it goes to train_infogan.py, whose default is 64)")
    p.add_argument("--cgan-batch-size", type=int, default=64, help="cGAN batch size")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    p.add_argument("--iters", type=int, default=15, help="timed iterations per row")
    p.add_argument("--only", choices=("infogan", "cgan"), default=None, help="only one model family")
    p.add_argument("--time-to-quality", action="store_true", help="train InfoGAN with defaults until accuracy --target")
    p.add_argument("--target", type=float, default=0.90, help="code->digit accuracy for --time-to-quality")
    p.add_argument("--max-epochs", type=int, default=10, help="epochs of the --time-to-quality run")
    p.add_argument("--precision", choices=T.PRECISIONS, default="auto", help="the fast loop's precision, as the trainers' flag")
    p.add_argument("--smoke", action="store_true", help="a few steps of each model on random data: device, precision, speed, memory")
    args, extra = p.parse_known_args()  # with --time-to-quality the rest goes to train_infogan.py
    T.check(args.warmup >= 0 and args.iters >= 1, "--warmup must be >= 0 and --iters >= 1")
    T.check(args.cgan_batch_size >= 1 and (args.batch_size is None or args.batch_size >= 1), "--batch-size and --cgan-batch-size must be >= 1")
    if args.smoke:
        T.check(not extra, f"unrecognized arguments: {' '.join(extra)}")
        smoke("auto" if args.device == "both" else args.device, args.precision, warmup=2, iters=3)
        return 0
    if args.time_to_quality:
        batch = ["--batch-size", str(args.batch_size)] if args.batch_size is not None else []
        time_to_quality(args.data_root, args.target, args.max_epochs, ["--precision", args.precision, *batch, *extra])
        return 0
    args.batch_size = 100 if args.batch_size is None else args.batch_size
    T.check(not extra, f"unrecognized arguments: {' '.join(extra)} (train_infogan.py flags go with --time-to-quality)")
    if args.device == "both":
        devices = [torch.device("cpu")] + ([T.pick_device("auto")] if T.pick_device("auto").type != "cpu" else [])
    else:
        devices = [T.pick_device(args.device)]
    mnist = load_mnist(args.data_root, train=True)[0] if args.only != "cgan" else None
    T.check(mnist is None or len(mnist) // args.batch_size >= args.warmup + args.iters,
            f"--warmup + --iters ({args.warmup + args.iters}) batches of {args.batch_size} need more than the "
            f"{0 if mnist is None else len(mnist)} training images: lower one of them")
    for d in devices:
        T.warn_if_emulated(d, args.precision)
    print(f"torch {torch.__version__}, fast loop in " + ", ".join(
        f"{d.type} ({T.device_name(d)}): {T.pick_precision(d, args.precision)}" for d in devices))
    print(f"{'model':28s} {'device':6s} {'batch':>5s} {'fast img/s':>11s} {'ref img/s':>10s} {'speed-up':>8s}")
    rows = []
    if args.only in (None, "infogan"):
        for arch in INFOGAN_ARCHS:
            imgs = mnist if arch == "paper" else load_mnist(args.data_root, True, INFOGAN_IMG_SIZE[arch])[0]
            for dev in devices:
                fast = bench_infogan_fast(arch, imgs, args.batch_size, dev, args.precision, args.warmup, args.iters)
                ref = bench_infogan_reference(arch, args.data_root, args.batch_size, dev, args.warmup, args.iters)
                rows.append((f"infogan --arch {arch}", dev.type, args.batch_size, fast, ref))
                print_row(rows[-1])
                if arch == "paper":  # the toolkit's defaults add the jitter term and G's moving average
                    fast = bench_infogan_fast(arch, imgs, args.batch_size, dev, args.precision, args.warmup, args.iters, {})
                    rows.append(("  default flags", dev.type, args.batch_size, fast, None))
                    print_row(rows[-1])
    if args.only in (None, "cgan"):
        with tempfile.TemporaryDirectory() as root:
            n = args.cgan_batch_size * (args.warmup + args.iters + 2)
            make_iclevr(root, n, seed=0)
            for size in (32, 64):
                images, conditions, _ = load_iclevr(root, size)
                for dev in devices:
                    fast = bench_cgan_fast(images, conditions, size, args.cgan_batch_size, dev, args.precision,
                                           args.warmup, args.iters)
                    ref = bench_cgan_reference(root, size, args.cgan_batch_size, dev, args.warmup, args.iters)
                    rows.append((f"cgan --img-size {size}", dev.type, args.cgan_batch_size, fast, ref))
                    print_row(rows[-1])
                    fast = bench_cgan_fast(images, conditions, size, args.cgan_batch_size, dev, args.precision,
                                           args.warmup, args.iters, flags=[])
                    rows.append(("  default flags", dev.type, args.cgan_batch_size, fast, None))
                    print_row(rows[-1])
    print(f"peak resident memory of this benchmark process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


def print_row(row):
    name, dev, bs, fast, ref = row
    ref_text = f"{bs / ref:10.0f} {ref / fast:7.2f}x" if ref else f"{'-':>10s} {'-':>8s}"
    print(f"{name:28s} {dev:6s} {bs:5d} {bs / fast:11.0f} {ref_text}", flush=True)


if __name__ == "__main__":
    T.run_cli(main)
