"""Datasets: MNIST (for InfoGAN) and i-CLEVR (for the conditional GAN), plus a synthetic i-CLEVR.

Both datasets are loaded once into memory as uint8 tensors; the trainers batch from them by
indexing, so there is no per-image PIL work in the training loop.

    python data.py make-iclevr --out data/iclevr-synth --n 18009 --seed 0
"""
import os

import torch
import torch.nn.functional as F

from training import UserError, check

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def load_mnist(root, train=True, img_size=28, download=True):
    """MNIST split as (uint8 images (N, 1, img_size, img_size), int64 labels (N,)).

    Uses torchvision's MNIST (its raw IDX files in ROOT/MNIST/raw), downloading when missing."""
    from torchvision.datasets import MNIST
    raw = os.path.join(root, "MNIST", "raw")
    if os.path.exists(root):
        check(os.path.isdir(root) and os.access(root, os.R_OK | os.X_OK), f"dataset folder {root} is not a readable folder")
    try:
        ds = MNIST(root, train=train, download=download)
    except Exception as e:  # no network, a mirror down, a read-only folder...
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise UserError(f"MNIST not found in {raw} and the download failed ({reason}); put the four IDX files "
                        f"({', '.join(MNIST_FILES)}) there, or pass --data-root to a folder that has MNIST/raw/") from None
    images = ds.data.unsqueeze(1)  # uint8 (N, 1, 28, 28)
    if img_size != 28:
        # resized once here rather than per batch; kept uint8 to stay small in memory
        images = F.interpolate(images.float(), size=(img_size, img_size), mode="bilinear", align_corners=False)
        images = images.round().clamp(0, 255).to(torch.uint8)
    return images, ds.targets.clone()


def to_float(images_uint8):
    """uint8 [0, 255] -> float [-1, 1], the range of the generators' tanh."""
    return images_uint8.float().div_(127.5).sub_(1.0)
