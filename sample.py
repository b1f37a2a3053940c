"""Images from a trained generator; the checkpoint alone says how to rebuild it.

InfoGAN (MNIST):
    python sample.py --ckpt runs/infogan/g.pt --grid              # rows: digits 0-9, columns: c1 swept
    python sample.py --ckpt runs/infogan/g.pt --digit 7 --n 64    # via the stored code->digit map
    python sample.py --ckpt runs/infogan/g.pt --code 3 --n 16 --out code3.npz
    python sample.py --ckpt runs/infogan/g.pt --sweep 2           # continuous code 2 swept
Conditional GAN (i-CLEVR):
    python sample.py --ckpt runs/cgan/g.pt --labels "red cube,blue sphere" --n 8
    python sample.py --ckpt runs/cgan/g.pt --json iclevr/test.json --evaluator checkpoint.pth
Either:
    python sample.py --ckpt runs/infogan --report                 # runs/infogan/report.md, the hand-in page

--out FILE.png (default: sample_NAME.png beside --ckpt) writes a labelled figure: InfoGAN grid rows in
digit order, named "digit 7 (code 3)", the swept code's values under the columns; the objects under
each --json image (--plain: the bare image grid). FILE.npz writes the raw uint8 `images` (N, C, H, W)
in the figure's order, with the categorical `codes` (InfoGAN) or the multi-hot `conditions` (cGAN).
"""
import training as T  # first: it sets up the Apple-silicon fallback before torch loads

import os
import sys

import numpy as np
import torch

import report as R
from models import infogan_latent, infogan_noise


def get_parser():
    p = T.ArgumentParser(description=__doc__, formatter_class=T.HelpFormatter)
    p.add_argument("--ckpt", required=True, metavar="PATH", help="g.pt, ckpt.pt or a run folder (InfoGAN or cGAN)")
    p.add_argument("--out", default=None, metavar="FILE", help=".png (labelled figure) or .npz (raw uint8 images)")
    p.add_argument("--plain", action="store_true", help="with .png: the bare image grid, without labels")
    p.add_argument("--report", action="store_true", help="write report.md, the hand-in page, in the run folder")
    p.add_argument("--n", type=int, default=None, help="number of images (default 64; cGAN --labels: 8)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed of the noise (default 0)")
    p.add_argument("--device", choices=T.DEVICES, default="cpu", help="where to run the generator (default cpu)")
    g = p.add_argument_group("InfoGAN")
    g.add_argument("--grid", action="store_true", help="fixed-noise grid: rows digits 0-9, columns c1 swept")
    g.add_argument("--code", type=int, default=None, metavar="K", help="images of categorical value K (0-based)")
    g.add_argument("--digit", type=int, default=None, metavar="D", help="images of digit D (via the code->digit map)")
    g.add_argument("--sweep", type=int, default=None, metavar="J", help="the grid with continuous code J (1-based) swept")
    g = p.add_argument_group("conditional GAN")
    g.add_argument("--labels", default=None, metavar="NAMES", help='object names, e.g. "red cube,blue sphere"')
    g.add_argument("--json", default=None, metavar="FILE", help="a test.json-style file: one image per condition")
    g.add_argument("--evaluator", default=None, metavar="FILE", help="evaluator .pth: print the --json images' accuracy")
    return p


def main():
    args = get_parser().parse_args()
    T.check(args.n is None or args.n > 0, f"--n must be > 0 (got {args.n})")
    if args.report:
        return report(args)
    ckpt = T.load_checkpoint(args.ckpt)
    device = T.pick_device(args.device)
    torch.manual_seed(args.seed)
    if ckpt["kind"] == "infogan":
        T.check(args.labels is None and args.json is None, f"{ckpt['path']} is an InfoGAN checkpoint: "
                "--labels/--json are for cGAN checkpoints (use --grid, --code, --digit or --sweep)")
        images, arrays, nrow, name, draw = sample_infogan(ckpt, args, device)
    elif ckpt["kind"] == "cgan":
        T.check(args.grid is False and args.code is None and args.digit is None and args.sweep is None,
                f"{ckpt['path']} is a cGAN checkpoint: --grid/--code/--digit/--sweep are for InfoGAN (use --labels or --json)")
        images, arrays, nrow, name, draw = sample_cgan(ckpt, args, device)
    else:
        raise T.UserError(f"{ckpt['path']} holds an unknown model kind {ckpt['kind']!r}")

    out = args.out or os.path.join(os.path.dirname(ckpt["path"]), f"sample_{name}{'_plain' if args.plain else ''}.png")
    T.check(out.endswith((".png", ".npz")), f"--out must end in .png or .npz (got {out})")
    T.make_run_dir(os.path.dirname(os.path.abspath(out)))
    if out.endswith(".npz"):
        arrays = {"images": T.to_uint8(images).numpy(), **arrays}
        T.atomic_write(out, lambda tmp: np.savez_compressed(open(tmp, "wb"), **arrays))
    elif args.plain:
        T.save_grid(images, out, nrow=nrow)
    else:
        R.save_figure(draw(), out)
    print(f"wrote {len(images)} images to {out}")
    return 0


def report(args):
    """--report: report.md for the run folder of --ckpt; a g.pt (or g_best.pt) given alone draws the figures."""
    others = [f"--{m}" for m in ("grid", "code", "digit", "sweep", "labels", "json", "evaluator", "out", "plain", "n")
              if getattr(args, m) not in (None, False)]
    T.check(not others, f"--report writes report.md into the run folder of --ckpt; drop {', '.join(others)}")
    if os.path.isdir(args.ckpt):
        run_dir, generator = args.ckpt, None
    else:
        path = T.load_checkpoint(args.ckpt)["path"]  # one clear line for a missing or unreadable file
        run_dir = os.path.dirname(path) or "."
        generator = None if os.path.basename(path) == T.CHECKPOINT else path
    T.make_run_dir(run_dir)
    print(f"wrote {R.write_report(run_dir, generator)}")
    return 0


@torch.no_grad()
def sample_infogan(ckpt, args, device):
    """(images, npz arrays, images per row, name, draw() -> the labelled Figure)."""
    config, netG = ckpt["config"], R.load_generator(ckpt, device)
    n_cat, n_cont = config["n_cat"], config["n_cont"]
    mapping = ckpt.get("code_to_digit")
    modes = [m for m in ("grid", "code", "digit", "sweep") if getattr(args, m) is not None and getattr(args, m) is not False]
    T.check(len(modes) <= 1, f"choose one of --grid, --code, --digit, --sweep (got {', '.join('--' + m for m in modes)})")
    mode = modes[0] if modes else "grid"
    if mode in ("grid", "sweep"):
        T.check(args.n is None, f"--n does not apply to --{mode}: its grid is 10 x 10 images (use --code or --digit)")
        if mode == "sweep":
            T.check(1 <= args.sweep <= n_cont, f"--sweep {args.sweep} is out of range: this model has "
                    f"{n_cont} continuous code(s), numbered 1..{n_cont}" if n_cont else
                    f"--sweep {args.sweep}: this model has no continuous codes")
        sweep = (args.sweep - 1) if mode == "sweep" else (0 if n_cont else None)
        images, rows, cols, x_title = R.infogan_grid(ckpt, netG, sweep)
        codes = np.repeat([c for c, _ in R.row_order(n_cat, mapping)], 10)
        return (images, {"codes": codes}, 10, f"grid_c{sweep + 1}" if sweep is not None else "grid",
                lambda: R.grid_figure(images, 10, R.infogan_grid_title(ckpt), rows, cols, x_title))
    if mode == "digit":
        T.check(0 <= args.digit <= 9, f"--digit must be 0-9 (got {args.digit})")
        T.check(mapping, "this checkpoint has no code->digit mapping (trained with --no-eval?); use --code instead")
        codes = [c for c, d in mapping.items() if d == args.digit]
        T.check(codes, f"no categorical value of this model maps to digit {args.digit} (mapping: {mapping})")
        code = codes[0]
    else:
        T.check(0 <= args.code < n_cat, f"--code {args.code} is out of range: this model has n_cat={n_cat} (0..{n_cat - 1})")
        code = args.code
    n = args.n or 64
    noise = infogan_noise(n, config)
    cont = torch.rand(n, n_cont) * 2 - 1
    z = infogan_latent(noise, torch.full((n,), code, dtype=torch.long), cont, n_cat)
    name = f"digit{args.digit}" if mode == "digit" else f"code{code}"
    images = netG(z.to(device)).float().cpu()
    digit = (mapping or {}).get(code)
    what = f"digit {digit} (code {code})" if digit is not None else f"code {code}"
    title = f"{what}: {n} images, random noise and continuous codes (seed {args.seed})"
    return images, {"codes": np.full(n, code)}, 8, name, lambda: R.grid_figure(images, 8, title)


@torch.no_grad()
def sample_cgan(ckpt, args, device):
    """(images, npz arrays, images per row, name, draw() -> the labelled Figure)."""
    from data import load_conditions, to_multi_hot
    config, netG, objects = ckpt["config"], R.load_generator(ckpt, device), ckpt["objects"]
    T.check((args.labels is None) != (args.json is None), "give exactly one of --labels or --json")
    T.check(args.json is not None or args.evaluator is None, "--evaluator scores the images of --json, not --labels")
    T.check(args.json is None or args.n is None, "--n does not apply to --json: one image per condition of the file")
    if args.labels is not None:
        names = [n.strip() for n in args.labels.split(",") if n.strip()]
        twice = sorted({n for n in names if names.count(n) > 1})
        T.check(not twice, f"--labels names {', '.join(twice)} twice: a condition holds each object once")
        T.check(names, '--labels names no object: give one to three, e.g. --labels "red cube,blue sphere"')
        if len(names) > 3:
            print(f"warning: --labels asks for {len(names)} objects; i-CLEVR scenes hold 1-3, so G never saw "
                  "this many", file=sys.stderr)
        y = to_multi_hot([names], objects, "--labels").repeat(args.n or 8, 1)
        nrow, name = 8, "labels"
    else:
        y, nrow, name = load_conditions(args.json, objects), 8, os.path.splitext(os.path.basename(args.json))[0]
    images = netG(torch.randn(len(y), config["noise_dim"]).to(device), y.to(device)).float().cpu()
    arrays = {"conditions": y.numpy().astype(np.uint8)}
    if args.labels is not None:
        title = f"{len(y)} images of: {', '.join(R.condition_names(y[:1], objects)[0])} (seed {args.seed})"
        return images, arrays, nrow, name, lambda: R.grid_figure(images, nrow, title)
    score = ""
    from evaluate import cached_evaluator_path, evaluator_probs, load_evaluator, topk_accuracy
    data_root = ckpt.get("data_root") or ckpt.get("args", {}).get("data_root")
    cached = cached_evaluator_path(data_root) if data_root else None
    path = args.evaluator or (cached if cached and os.path.isfile(cached) else None)
    if path:
        acc = topk_accuracy(evaluator_probs(load_evaluator(path), images), y)
        print(f"top-k accuracy on {args.json} ({path}): {acc:.4f}")
        score = f"; evaluator top-k accuracy {acc:.3f}"
    title = (f"{os.path.basename(args.json)}: one image per condition in file order, the asked-for objects under "
             f"each (seed {args.seed}{score})")
    captions = ["\n".join(names) for names in R.condition_names(y, objects)]
    return images, arrays, nrow, name, lambda: R.captioned_grid_figure(images, captions, nrow, title)


if __name__ == "__main__":
    T.run_cli(main)
