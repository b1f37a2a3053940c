"""Images from a trained generator; the checkpoint alone says how to rebuild it.

InfoGAN (MNIST):
    python sample.py --ckpt runs/infogan/g.pt --grid              # rows: codes, columns: c1 swept
    python sample.py --ckpt runs/infogan/g.pt --digit 7 --n 64    # via the stored code->digit map
    python sample.py --ckpt runs/infogan/g.pt --code 3 --n 16 --out code3.npz
    python sample.py --ckpt runs/infogan/g.pt --sweep 2           # continuous code 2 swept
Conditional GAN (i-CLEVR):
    python sample.py --ckpt runs/cgan/g.pt --labels "red cube,blue sphere" --n 8
    python sample.py --ckpt runs/cgan/g.pt --json iclevr/test.json --evaluator checkpoint.pth

--out ending in .png writes an image grid; .npz writes the raw uint8 `images` (N, C, H, W)
(and, for the cGAN, the multi-hot `conditions`).
"""
import argparse
import os

import numpy as np
import torch

import training as T
from models import build_cgan, build_infogan, infogan_grid_latent, infogan_latent, infogan_noise


def get_parser():
    p = T.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="g.pt, ckpt.pt or a run folder (InfoGAN or cGAN)")
    p.add_argument("--out", default=None, help="output .png (grid) or .npz (raw images); default: beside the checkpoint")
    p.add_argument("--n", type=int, default=None, help="number of images (default 64; cGAN --labels: 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the noise")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu", help="where to run the generator")
    g = p.add_argument_group("InfoGAN")
    g.add_argument("--grid", action="store_true", help="the run's fixed-noise grid, continuous code 1 swept (--sweep J for others)")
    g.add_argument("--code", type=int, default=None, help="images of categorical value K (0-based)")
    g.add_argument("--digit", type=int, default=None, help="images of digit D, through the code->digit map in the checkpoint")
    g.add_argument("--sweep", type=int, default=None, help="sweep continuous code J (1-based) over [-2, 2], rows = codes")
    g = p.add_argument_group("conditional GAN")
    g.add_argument("--labels", default=None, help='comma-separated object names, e.g. "red cube,blue sphere"')
    g.add_argument("--json", default=None, help="a test.json-style list of conditions: one image each, 8 per row")
    g.add_argument("--evaluator", default=None, help="evaluator checkpoint.pth to print the accuracy of --json images")
    return p


def main():
    args = get_parser().parse_args()
    T.check(args.n is None or args.n > 0, f"--n must be > 0 (got {args.n})")
    ckpt = T.load_checkpoint(args.ckpt)
    device = T.pick_device(args.device)
    torch.manual_seed(args.seed)
    if ckpt["kind"] == "infogan":
        T.check(args.labels is None and args.json is None, f"{ckpt['path']} is an InfoGAN checkpoint: "
                "--labels/--json are for cGAN checkpoints (use --grid, --code, --digit or --sweep)")
        images, conditions, nrow, name = sample_infogan(ckpt, args, device)
    elif ckpt["kind"] == "cgan":
        T.check(args.grid is False and args.code is None and args.digit is None and args.sweep is None,
                f"{ckpt['path']} is a cGAN checkpoint: --grid/--code/--digit/--sweep are for InfoGAN (use --labels or --json)")
        images, conditions, nrow, name = sample_cgan(ckpt, args, device)
    else:
        raise T.UserError(f"{ckpt['path']} holds an unknown model kind {ckpt['kind']!r}")

    out = args.out or os.path.join(os.path.dirname(ckpt["path"]), f"sample_{name}.png")
    T.check(out.endswith((".png", ".npz")), f"--out must end in .png or .npz (got {out})")
    T.make_run_dir(os.path.dirname(os.path.abspath(out)))
    if out.endswith(".npz"):
        arrays = {"images": T.to_uint8(images).numpy()}
        if conditions is not None:
            arrays["conditions"] = conditions.numpy().astype(np.uint8)
        T.atomic_write(out, lambda tmp: np.savez_compressed(open(tmp, "wb"), **arrays))
    else:
        T.save_grid(images, out, nrow=nrow)
    print(f"wrote {len(images)} images to {out}")
    return 0


def load_generator(ckpt, build, device):
    netG, _ = build(ckpt["config"])
    netG.load_state_dict(T.generator_weights(ckpt))
    return netG.to(device).eval()


@torch.no_grad()
def sample_infogan(ckpt, args, device):
    config, netG = ckpt["config"], load_generator(ckpt, build_infogan, device)
    n_cat, n_cont = config["n_cat"], config["n_cont"]
    modes = [m for m in ("grid", "code", "digit", "sweep") if getattr(args, m) is not None and getattr(args, m) is not False]
    T.check(len(modes) <= 1, f"choose one of --grid, --code, --digit, --sweep (got {', '.join('--' + m for m in modes)})")
    mode = modes[0] if modes else "grid"
    if mode in ("grid", "sweep"):
        if mode == "sweep":
            T.check(1 <= args.sweep <= n_cont, f"--sweep {args.sweep} is out of range: this model has "
                    f"{n_cont} continuous code(s), numbered 1..{n_cont}" if n_cont else
                    f"--sweep {args.sweep}: this model has no continuous codes")
        sweep = (args.sweep - 1) if mode == "sweep" else (0 if n_cont else None)
        z = infogan_grid_latent(config, ckpt["fixed_noise"], sweep_code=sweep)
        return netG(z.to(device)).cpu(), None, 10, f"grid_c{sweep + 1}" if sweep is not None else "grid"
    if mode == "digit":
        T.check(0 <= args.digit <= 9, f"--digit must be 0-9 (got {args.digit})")
        mapping = ckpt.get("code_to_digit")
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
    return netG(z.to(device)).cpu(), None, 8, name


@torch.no_grad()
def sample_cgan(ckpt, args, device):
    from data import load_conditions, to_multi_hot
    config, netG, objects = ckpt["config"], load_generator(ckpt, build_cgan, device), ckpt["objects"]
    T.check((args.labels is None) != (args.json is None), "give exactly one of --labels or --json")
    if args.labels is not None:
        names = [n.strip() for n in args.labels.split(",") if n.strip()]
        y = to_multi_hot([names], objects, "--labels").repeat(args.n or 8, 1)
        nrow, name = 8, "labels"
    else:
        y, nrow, name = load_conditions(args.json, objects), 8, os.path.splitext(os.path.basename(args.json))[0]
    images = netG(torch.randn(len(y), config["noise_dim"]).to(device), y.to(device)).float().cpu()
    if args.json is not None:
        from evaluate import EVALUATOR_FILE, evaluator_probs, load_evaluator, topk_accuracy
        cached = os.path.join(ckpt.get("data_root") or ckpt.get("args", {}).get("data_root") or "", EVALUATOR_FILE)
        path = args.evaluator or (cached if os.path.isfile(cached) else None)
        if path:
            acc = topk_accuracy(evaluator_probs(load_evaluator(path), images), y)
            print(f"top-k accuracy on {args.json} ({path}): {acc:.4f}")
    return images, y, nrow, name


if __name__ == "__main__":
    T.run_cli(main)
