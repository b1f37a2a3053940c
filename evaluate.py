"""The i-CLEVR evaluator: a ResNet-18 multi-label classifier, as in the coursework.

    python evaluate.py --data-root data/iclevr-synth                  # train (or load) it, print held-out accuracy
    python evaluate.py --ckpt runs/cgan/g.pt --evaluator checkpoint.pth  # judge a generator on test/new_test.json

Its file is the coursework's format, {'model': state_dict} of a torchvision resnet18 whose fc is
Sequential(Linear(512, 24), Sigmoid()), so the official checkpoint.pth (or classifier_weight.pth)
loads unchanged, on CPU too. Accuracy is the coursework's top-k accuracy (models.topk_accuracy).
"""
import training as T  # first: it sets up the Apple-silicon fallback before torch loads

import os
import sys

import torch
import torch.nn.functional as F

from data import SPEC_DIR, flip_and_shift, iclevr_files, load_conditions, load_iclevr_cached, to_float
from models import build_evaluator, evaluator_probs, topk_accuracy, topk_hits, upsample_to_64  # noqa: F401 (re-exported for sample.py)

JUDGE_EPOCHS = 30  # a judge of the domain-randomised look needs more than 10 (docs/results.md)


def load_evaluator(path, device="cpu"):
    """The coursework's {'model': state_dict} file -> ResNet-18 in eval mode; a clear error otherwise."""
    return read_evaluator(path, device)[0]


def read_evaluator(path, device="cpu"):
    """(evaluator, its held-out accuracy at 64 px, at 32 px upsampled), from one read of the file; each
    figure None where the file does not record it (only evaluators trained here do). The file is
    loaded with weights_only=True: an evaluator from a shared drive cannot run code."""
    state = T.load_file(path, "evaluator")
    T.check(isinstance(state, dict) and "model" in state, f"{path} is not an evaluator file: expected {{'model': state_dict}}")
    with T.isolated_rng():
        net = build_evaluator()
    try:
        net.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0][:150]
        raise T.UserError(f"{path} does not hold a ResNet-18 with a 24-way fc ({first})") from None
    return net.to(device).eval(), state.get("heldout_accuracy"), state.get("heldout_accuracy_32px")


def heldout_split(n, holdout=0.1, seed=0):
    """(held-out indices, training indices) of the evaluator trained here, the same split every time.
    It reseeds torch's global RNG (the evaluator's training continues from that stream): call it
    inside T.isolated_rng()."""
    torch.manual_seed(seed)
    order = torch.randperm(n)
    n_val = max(1, int(n * holdout))
    return order[:n_val], order[n_val:]


def train_evaluator(images, conditions, device, epochs=JUDGE_EPOCHS, batch_size=64, holdout=0.1, seed=0, lr=1e-3,
                    images_32=None):
    """ResNet-18 from scratch on (images, multi-hot conditions); returns (net, held-out top-k accuracy
    at 64 px, held-out accuracy at 32 px upsampled to 64 or None).

    images_32 (the same images at 32 px): each training image is shown at 32 px upsampled to 64 half
    of the time, as the coursework's evaluator was trained, so the judge reads 64-px generators and
    32-px ones (which evaluator_probs upsamples the same way) alike."""
    with T.isolated_rng():  # does not disturb the caller's random stream
        val_idx, train_idx = heldout_split(len(images), holdout, seed)
        net = build_evaluator().to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
        steps = epochs * max(1, len(train_idx) // batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
        device = torch.device(device)
        precision = T.pick_precision(device, "auto")
        bar = T.progress(steps, "training the evaluator")
        for _ in range(epochs):
            for idx in train_idx[torch.randperm(len(train_idx))].split(batch_size):
                if len(idx) < batch_size:
                    continue
                x = upsample_to_64(to_float(images[idx]).to(device))
                if images_32 is not None:
                    small = torch.rand(len(idx), device=device) < 0.5
                    x = torch.where(small[:, None, None, None], upsample_to_64(to_float(images_32[idx]).to(device)), x)
                x = flip_and_shift(x)
                with T.autocast(device, precision):
                    probs = net(x)
                loss = F.binary_cross_entropy(probs.float().clamp(1e-6, 1 - 1e-6), conditions[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                bar.update(1)
        bar.close()
        net.eval()
        acc = heldout_accuracy(net, images, conditions, device, seed)
        acc_32 = heldout_accuracy(net, images_32, conditions, device, seed) if images_32 is not None else None
    return net, acc, acc_32


def heldout_accuracy(net, images, conditions, device, seed=0):
    """Top-k accuracy of net on the held-out images of the evaluator trained here."""
    with T.isolated_rng():
        val_idx, _ = heldout_split(len(images), seed=seed)
    return topk_accuracy(evaluator_probs(net, to_float(images[val_idx]).to(device)).cpu(), conditions[val_idx])


def cached_evaluator_path(data_root, cache_dir=None):
    """Where the evaluator trained on data_root is cached (the user's cache folder, not the data folder)."""
    return os.path.join(T.user_cache_dir(cache_dir), f"evaluator_{T.folder_key(data_root)}.pth")


def evaluator_for(args_evaluator, data_root, device, epochs=JUDGE_EPOCHS, retrain=False, cache_dir=None):
    """--evaluator PATH, else the one trained on data_root and cached (retrained when the data
    change), else train one now: each image shown at 64 px or at 32 px upsampled, half the time each.
    Returns (evaluator, its held-out accuracy at 64 px, at 32 px upsampled), each None when unknown."""
    if args_evaluator:
        return load_evaluator(args_evaluator, device), None, None
    path = cached_evaluator_path(data_root, cache_dir)
    if retrain and os.path.isfile(path):
        os.remove(path)

    built = []

    def build():
        built.append(True)
        images, conditions, _ = load_iclevr_cached(data_root, 64, cache_dir)
        images_32 = load_iclevr_cached(data_root, 32, cache_dir)[0]
        print(f"training an evaluator on {len(images)} images of {data_root} (cached as {path})...", file=sys.stderr)
        net, acc, acc_32 = train_evaluator(images, conditions, device, epochs=epochs, images_32=images_32)
        return {"model": net.cpu().state_dict(), "heldout_accuracy": acc, "heldout_accuracy_32px": acc_32, "epochs": epochs}

    files = iclevr_files(data_root)
    if files is None:
        load_iclevr_cached(data_root, 64, cache_dir)  # says in one line what is wrong with the folder
    recipe = ("evaluator", "flip+shift")  # a judge cached by another recipe is retrained, not reused
    data = T.cached(os.path.dirname(path), os.path.basename(path), T.fingerprint(files, *recipe), build, "evaluator cache")
    if not built:  # a quick judge (--epochs 1) cached once is what every later run reuses: say which one
        print(f"evaluator: cached as {path}, trained on {data_root}, epochs: {data.get('epochs', '?')} "
              f"(python evaluate.py --data-root {data_root} --retrain trains it again)", file=sys.stderr)
    with T.isolated_rng():
        net = build_evaluator()
    try:
        net.load_state_dict(data["model"])
    except (RuntimeError, KeyError, TypeError) as e:
        raise T.UserError(f"the evaluator cache {path} does not hold a ResNet-18 ({type(e).__name__}); delete it "
                          f"to retrain") from None
    return net.to(device).eval(), data.get("heldout_accuracy"), data.get("heldout_accuracy_32px")


@torch.no_grad()
def generator_accuracy(netG, noise_dim, evaluator, conditions, draws=5, seed=0, device="cpu"):
    """Mean and standard deviation of the top-k accuracy over `draws` noise draws (one image per
    condition per draw), the images of the first draw, and per object the number of times it was
    found, summed over the draws (see object_breakdown)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    was_training = netG.training
    netG.eval()
    accs, first, found = [], None, torch.zeros(conditions.size(1))
    y = conditions.to(device)
    for _ in range(draws):
        images = netG(torch.randn(len(y), noise_dim, device=device, generator=gen), y).float()
        hits = topk_hits(evaluator_probs(evaluator, images).cpu(), conditions)
        accs.append(hits.sum().item() / conditions.sum().item())
        found += hits.sum(0)
        first = images.cpu() if first is None else first
    netG.train(was_training)
    acc = torch.tensor(accs)
    return acc.mean().item(), (acc.std().item() if draws > 1 else 0.0), first, found


def object_breakdown(found, asked, objects):
    """Share of the asked-for objects the evaluator found, per shape and per colour (object names are
    'colour shape'), as two lines: where a generator's errors are."""
    groups = {}
    for name, i in objects.items():
        colour, shape = name.split(" ", 1)
        for key in (("shape", shape), ("colour", colour)):
            f, a = groups.get(key, (0.0, 0.0))
            groups[key] = (f + float(found[i]), a + float(asked[i]))
    lines = []
    for kind in ("shape", "colour"):
        parts = [f"{value} {f / a:.2f}" for (k, value), (f, a) in groups.items() if k == kind and a > 0]
        lines.append(f"  found by {kind}: " + ", ".join(parts))
    return lines


def main():
    p = T.ArgumentParser(description=__doc__, formatter_class=T.HelpFormatter)
    p.add_argument("--data-root", default=None, help="i-CLEVR folder (real layout); default: the --ckpt run's, "
                   "else data/iclevr-synth")
    p.add_argument("--evaluator", default=None,
                   help="evaluator checkpoint (default: one trained on --data-root, cached in the cache folder)")
    p.add_argument("--ckpt", default=None, help="a cGAN g.pt/ckpt.pt to judge on test.json and new_test.json")
    p.add_argument("--draws", type=int, default=10, help="noise draws per condition file")
    p.add_argument("--epochs", type=int, default=JUDGE_EPOCHS, help="epochs when an evaluator is trained here")
    p.add_argument("--retrain", action="store_true", help="train a new evaluator even if one for --data-root is cached")
    p.add_argument("--cache-dir", default=None, help="where decoded images and the evaluator are cached (default: user cache)")
    p.add_argument("--also-32px", action="store_true", help="also score the held-out real images after a round trip "
                   "through 32 px: the ceiling of a generator trained with --img-size 32")
    p.add_argument("--device", choices=T.DEVICES, default="auto", help="auto: CUDA, then Apple silicon (mps), then the CPU")
    args = p.parse_args()
    device = T.pick_device(args.device)
    ckpt = T.load_checkpoint(args.ckpt, kind="cgan") if args.ckpt else None
    args.data_root = args.data_root or (ckpt or {}).get("data_root") or "data/iclevr-synth"
    if ckpt is None:
        if args.evaluator:
            images, conditions, _ = load_iclevr_cached(args.data_root, 64, args.cache_dir)
            acc = topk_accuracy(evaluator_probs(load_evaluator(args.evaluator, device), to_float(images).to(device)).cpu(),
                                conditions)
            print(f"evaluator top-k accuracy on all {len(images)} images of {args.data_root}: {acc:.4f}")
        else:
            T.check(args.epochs > 0, f"--epochs must be > 0 (got {args.epochs})")
            net, acc, acc32 = evaluator_for(None, args.data_root, device, epochs=args.epochs, retrain=args.retrain,
                                            cache_dir=args.cache_dir)
            print(f"evaluator held-out top-k accuracy: {acc:.4f}" if acc is not None else "held-out accuracy unknown")
            if args.also_32px:
                if acc32 is None:  # an evaluator file that does not record it
                    images, conditions, _ = load_iclevr_cached(args.data_root, 32, args.cache_dir)
                    acc32 = heldout_accuracy(net, images, conditions, device)
                print(f"the same held-out images at 32 px, upsampled to 64 (the best --img-size 32 can reach): {acc32:.4f}")
        return 0
    T.check(args.draws > 0, f"--draws must be > 0 (got {args.draws})")
    from models import build_cgan
    netG, _ = build_cgan(ckpt["config"])
    netG.load_state_dict(T.generator_weights(ckpt))
    netG = netG.to(device)
    evaluator = evaluator_for(args.evaluator, args.data_root, device, cache_dir=args.cache_dir)[0]
    objects = ckpt["objects"]
    print(f"generator: {ckpt['path']} (epoch {ckpt.get('epoch', '?')})")  # g_best.pt's name does not say which epoch
    if args.evaluator:
        print(f"evaluator: {args.evaluator}")
    for name in ("test.json", "new_test.json"):
        conditions = load_conditions(os.path.join(SPEC_DIR, name), objects)
        mean, std, _, found = generator_accuracy(netG, ckpt["config"]["noise_dim"], evaluator, conditions, args.draws,
                                                 device=device)
        print(f"{name}: {mean:.4f} +- {std:.4f} (top-k accuracy over {args.draws} noise draws)")
        print("\n".join(object_breakdown(found, conditions.sum(0) * args.draws, objects)))
    return 0


if __name__ == "__main__":
    T.run_cli(main)
