"""The checker texture of a cGAN's images as one number: the energy of their finest detail (periods of
4 px or less, i.e. spatial frequencies from a quarter of a cycle per pixel up) per pixel and channel, on
the [-1, 1] scale, against the real scenes of the set it learned from.

    python docs/texture.py --data-root E RUN_A/g_best.pt RUN_B/g_best.pt [--draws 10]
    python docs/texture.py --data-root E RUN/grids/epoch00{1..9}_test.png     # a curve, from the epochs' grids
    python docs/texture.py --data-root E RUN/grids/epoch001_test.png,RUN/grids/epoch001_new_test.png  # as one set

From a g.pt: one image per condition of test.json and new_test.json, `--draws` noise draws (seed 0).
From a grid PNG as the trainers save it (64-px cells, 2-px padding): its 32 images, quantised to 8 bits
(which adds about 5e-6); several PNGs joined by commas count as one set. The real scenes: the first
--n training images at 64 px.
"""
import argparse
import os
import sys

import torch
from torchvision.io import ImageReadMode, read_image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import training as T  # noqa: E402  (first: it sets up the Apple-silicon fallback before torch loads)
import report as R  # noqa: E402
from data import load_iclevr_cached, to_float  # noqa: E402


def fine_energy(images, min_freq=0.25):
    """Mean squared value of the images' components at frequencies max(|fx|, |fy|) >= min_freq (cycles/px)."""
    h, w = images.shape[-2:]
    fy, fx = torch.fft.fftfreq(h).abs(), torch.fft.fftfreq(w).abs()
    band = torch.maximum(fy[:, None], fx[None, :]) >= min_freq
    power = torch.fft.fft2(images.double()).abs() ** 2 / (h * w)  # Parseval: sums to the sum of squares
    return (power * band).sum((-2, -1)).mean().item() / (h * w)


def grid_images(path, size=64, pad=2):
    """The images of a torchvision make_grid PNG, back on the [-1, 1] scale."""
    grid = to_float(read_image(path, ImageReadMode.RGB))
    rows, cols = (grid.shape[1] - pad) // (size + pad), (grid.shape[2] - pad) // (size + pad)
    return torch.stack([grid[:, pad + r * (size + pad):pad + r * (size + pad) + size,
                             pad + c * (size + pad):pad + c * (size + pad) + size]
                        for r in range(rows) for c in range(cols)])


def generated_images(path, draws):
    ckpt = T.load_checkpoint(path)
    netG = R.load_generator(ckpt, "cpu")
    gen, images = torch.Generator().manual_seed(0), []
    with torch.no_grad():
        for name in ("test", "new_test"):
            y = R.cgan_conditions(ckpt, name)
            for _ in range(draws):
                images.append(netG(torch.randn(len(y), ckpt["config"]["noise_dim"], generator=gen), y).float())
    return torch.cat(images)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("generators", nargs="+", help="cGAN g.pt / g_best.pt / ckpt.pt files, or grid PNGs of 64-px "
                   "images (several joined by commas: one set)")
    p.add_argument("--data-root", required=True, help="the i-CLEVR folder the generators learned from")
    p.add_argument("--draws", type=int, default=10, help="noise draws per condition file")
    p.add_argument("--n", type=int, default=2000, help="real training scenes to measure")
    p.add_argument("--cache-dir", default=None)
    args = p.parse_args()
    for path in args.generators:
        images = (torch.cat([grid_images(p) for p in path.split(",")]) if path.endswith(".png")
                  else generated_images(path, args.draws))
        print(f"{path}: {len(images)} images at {images.shape[-1]} px, fine-detail energy {fine_energy(images):.5f}",
              flush=True)
    real = to_float(load_iclevr_cached(args.data_root, 64, args.cache_dir)[0][:args.n])
    print(f"real scenes of {args.data_root}: {len(real)} at 64 px, fine-detail energy {fine_energy(real):.5f}")


if __name__ == "__main__":
    main()
