"""Quick end-to-end checks on CPU with tiny data the tests write themselves (see conftest.py)."""
import csv
import os

import numpy as np
import pytest
import torch
from PIL import Image

import training as T
from conftest import draw_digits, run
from data import load_mnist, to_float
from models import INFOGAN_ARCHS, INFOGAN_IMG_SIZE, build_infogan, infogan_grid_latent
from train_infogan import code_digit_accuracy, train_digit_classifier


# ---------------------------------------------------------------------------- InfoGAN

@pytest.mark.parametrize("arch", INFOGAN_ARCHS)
@pytest.mark.parametrize("noise_dim,n_cont", [(62, 2), (52, 0), (56, 3)])
def test_infogan_arch_shapes(arch, noise_dim, n_cont):
    config = dict(arch=arch, noise_dim=noise_dim, n_cat=10, n_cont=n_cont, noise="uniform")
    netG, netD = build_infogan(config)
    z = torch.rand(4, noise_dim + 10 + n_cont)
    size = INFOGAN_IMG_SIZE[arch]
    fake = netG(z)
    assert fake.shape == (4, 1, size, size)
    assert fake.min() >= -1 and fake.max() <= 1
    logit, features = netD(fake)
    cat_logits, cont_mean, cont_logvar = netD.q(features)
    assert logit.shape == (4,)
    assert cat_logits.shape == (4, 10)
    assert cont_mean.shape == cont_logvar.shape == (4, n_cont)


def test_grid_latent_rows_are_codes_columns_sweep():
    config = dict(noise_dim=5, n_cat=10, n_cont=2)
    fixed = torch.randn(10, 5)
    z = infogan_grid_latent(config, fixed, sweep_code=1)
    assert z.shape == (100, 17)
    assert torch.equal(z[:, 5:15].argmax(1), torch.arange(10).repeat_interleave(10))
    assert torch.allclose(z[:10, 16], torch.linspace(-2, 2, 10)) and (z[:, 15] == 0).all()
    assert torch.equal(z[10, :5], fixed[1]) and torch.equal(z[19, :5], fixed[1])


def test_train_infogan_run_folder_is_complete(infogan_run):
    out, proc = infogan_run
    assert "epoch 1/1" in proc.stdout and "code->digit acc" in proc.stdout
    ckpt = T.load_checkpoint(out, kind="infogan")
    assert ckpt["epoch"] == 1 and ckpt["config"]["arch"] == "paper"
    assert sorted(ckpt["code_to_digit"].values()) == list(range(10))
    g = T.load_checkpoint(os.path.join(out, "g.pt"), kind="infogan")
    assert g["config"] == ckpt["config"] and torch.equal(g["fixed_noise"], ckpt["fixed_noise"])
    # 10 x 10 grid of 28 px images with torchvision's 2 px padding
    for name in ("grid_c1.png", "grid_c2.png", "grids/epoch001_c1.png"):
        assert Image.open(os.path.join(out, name)).size == (302, 302)
    with open(os.path.join(out, "losses.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6  # 300 images / batch 50
    assert set(rows[0]) >= {"loss_d", "loss_g", "loss_q", "d_real", "d_fake_before", "d_fake_after"}
    assert all(np.isfinite(float(r["loss_d"])) for r in rows)
    assert Image.open(os.path.join(out, "curves.png")).size[0] > 500
    assert Image.open(os.path.join(out, "progress.gif")).format == "GIF"


def test_sample_png_and_npz(infogan_run, tmp_path):
    out, _ = infogan_run
    run("sample.py", "--ckpt", os.path.join(out, "g.pt"), "--grid", "--out", tmp_path / "grid.png")
    assert Image.open(tmp_path / "grid.png").size == (302, 302)
    run("sample.py", "--ckpt", out, "--code", 3, "--n", 12, "--out", tmp_path / "c3.npz")
    images = np.load(tmp_path / "c3.npz")["images"]
    assert images.shape == (12, 1, 28, 28) and images.dtype == np.uint8
    run("sample.py", "--ckpt", os.path.join(out, "g.pt"), "--digit", 5, "--n", 4, "--out", tmp_path / "d5.npz")
    assert np.load(tmp_path / "d5.npz")["images"].shape == (4, 1, 28, 28)
    run("sample.py", "--ckpt", os.path.join(out, "g.pt"), "--sweep", 2, "--out", tmp_path / "sweep.png")
    assert Image.open(tmp_path / "sweep.png").size == (302, 302)


def test_resume_continues_at_next_epoch(infogan_run, tmp_path):
    import shutil
    src, _ = infogan_run
    out = str(tmp_path / "copy")
    shutil.copytree(src, out)
    mnist_root = T.load_checkpoint(out)["args"]["data_root"]
    proc = run("train_infogan.py", "--data-root", mnist_root, "--epochs", 2, "--batch-size", 50,
               "--eval-samples", 20, "--seed", 3, "--resume", out)
    assert "epoch 2/2" in proc.stdout and "epoch 1/2" not in proc.stdout
    ckpt = T.load_checkpoint(out)
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 12 and len(ckpt["accuracy"]) == 2
    assert os.path.exists(os.path.join(out, "grids", "epoch002_c1.png"))


def test_code_digit_accuracy_perfect_and_chance():
    """A 'generator' whose categorical code is the digit scores 1.0; one that ignores it about 0.1."""
    labels = torch.arange(3000) % 10
    images = torch.from_numpy(draw_digits(labels.tolist(), seed=5)).unsqueeze(1)
    classifier = train_digit_classifier(images, labels, "cpu", epochs=6).eval()
    config = dict(noise_dim=4, n_cat=10, n_cont=1, noise="uniform")
    pool = {d: to_float(images[labels == d][:30]) for d in range(10)}

    class CodeIsDigit(torch.nn.Module):
        def forward(self, z):
            codes = z[:, 4:14].argmax(1)
            return torch.stack([pool[int(c)][i % 30] for i, c in enumerate(codes)])

    class IgnoresCode(torch.nn.Module):
        def forward(self, z):
            g = torch.Generator().manual_seed(int(z[0, 0] * 1e6) % 1000)
            digits = torch.randint(10, (len(z),), generator=g)
            return torch.stack([pool[int(d)][i % 30] for i, d in enumerate(digits)])

    acc, mapping = code_digit_accuracy(CodeIsDigit(), classifier, config, n_per_code=30)
    assert acc == 1.0 and mapping == {d: d for d in range(10)}
    acc, _ = code_digit_accuracy(IgnoresCode(), classifier, config, n_per_code=30)
    assert 0.05 < acc < 0.3


def test_shared_mnist_loads_without_download():
    root = os.environ.get("SHARED_MNIST_ROOT")
    if not root or not os.path.isdir(os.path.join(root, "MNIST", "raw")):
        pytest.skip("SHARED_MNIST_ROOT not set or missing: real-MNIST check skipped")
    images, labels = load_mnist(root, train=True, download=False)
    assert images.shape == (23797, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.min() == 0 and labels.max() == 9
