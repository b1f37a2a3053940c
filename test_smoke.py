"""Quick end-to-end checks on CPU with tiny data the tests write themselves (see conftest.py)."""
import csv
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import training as T
from conftest import cli, printed_sample_command
from data import load_mnist
from models import INFOGAN_ARCHS, INFOGAN_IMG_SIZE, build_infogan, infogan_grid_latent


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
    # --g-ema (on by default): g.pt is G's moving average, which the full checkpoint keeps beside G
    assert all(torch.equal(g["netG"][k], ckpt["netG_ema"][k]) for k in g["netG"])
    assert not all(torch.equal(ckpt["netG"][k], ckpt["netG_ema"][k]) for k in ckpt["netG"])
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


def test_progress_gif_frames_are_the_grids_headed_by_their_epoch(tmp_path):
    """Each frame: the epoch's grid, every grey level kept (MNIST's digits have up to 256), under a header."""
    paths, grids = [], [np.tile(np.arange(200, dtype=np.uint8), (62, 1)), np.full((62, 200), 77, np.uint8)]
    for epoch, grid in zip((1, 12), grids):
        paths.append(str(tmp_path / f"epoch{epoch:03d}_c1.png"))
        Image.fromarray(grid).convert("RGB").save(paths[-1])
    made = {}
    T.make_gif(paths[:1], str(tmp_path / "progress.gif"), frames_made=made)
    first = made[paths[0]]
    T.make_gif(paths, str(tmp_path / "progress.gif"), frames_made=made)
    assert made[paths[0]] is first  # the next epoch converts only its own grid
    gif = Image.open(tmp_path / "progress.gif")
    assert gif.n_frames == 2 and gif.size == (200, 62 + T.GIF_HEADER)
    headers = []
    for i, grid in enumerate(grids):
        gif.seek(i)
        frame = np.asarray(gif.convert("L"))
        assert np.array_equal(frame[T.GIF_HEADER:], grid)  # the grid itself, untouched
        assert frame[:T.GIF_HEADER].min() < 128  # text in the white header
        headers.append(frame[:T.GIF_HEADER])
    assert not np.array_equal(*headers)  # "epoch 1" and "epoch 12"


def test_sample_png_and_npz(infogan_run, tmp_path):
    out, proc = infogan_run
    # the command the run ends with, as printed (its folder holds a space)
    argv = printed_sample_command(proc.stdout)
    assert argv[argv.index("--ckpt") + 1] == os.path.join(out, "g.pt")
    cli("sample.py", *argv, "--out", tmp_path / "grid.png", check=True)
    assert Image.open(tmp_path / "grid.png").width > 302  # the labelled figure (report.py; its order: test_report.py)
    cli("sample.py", "--ckpt", out, "--code", 3, "--n", 12, "--out", tmp_path / "c3.npz", check=True)
    images = np.load(tmp_path / "c3.npz")["images"]
    assert images.shape == (12, 1, 28, 28) and images.dtype == np.uint8
    # the full checkpoint draws with the same generator as g.pt (the moving average, not the trained G)
    cli("sample.py", "--ckpt", os.path.join(out, "g.pt"), "--code", 3, "--n", 12, "--out", tmp_path / "g3.npz",
        check=True)
    assert np.array_equal(np.load(tmp_path / "g3.npz")["images"], images)
    # 0 is a value, not "unset"
    cli("sample.py", "--ckpt", out, "--code", 0, "--n", 5, "--out", tmp_path / "c0.npz", check=True)
    assert np.load(tmp_path / "c0.npz")["images"].shape == (5, 1, 28, 28)
    cli("sample.py", "--ckpt", os.path.join(out, "g.pt"), "--sweep", 2, "--out", tmp_path / "sweep.png", check=True)
    assert Image.open(tmp_path / "sweep.png").width > 302


def test_resume_continues_at_next_epoch(infogan_run, tmp_path):
    import shutil
    src, _ = infogan_run
    out = str(tmp_path / "copy")
    shutil.copytree(src, out)
    ckpt = T.load_checkpoint(out)
    mnist_root = ckpt["args"]["data_root"]
    # a run from before --g-ema existed has no average in its checkpoint: it starts from G
    ckpt["netG_ema"] = None
    del ckpt["args"]["g_ema"]
    T.save_checkpoint(ckpt, os.path.join(out, T.CHECKPOINT))
    proc = cli("train_infogan.py", "--data-root", mnist_root, "--epochs", 2, "--batch-size", 50,
               "--eval-samples", 20, "--seed", 3, "--resume", out, check=True)
    assert "epoch 2/2" in proc.stdout and "epoch 1/2" not in proc.stdout
    ckpt = T.load_checkpoint(out)
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 12 and len(ckpt["accuracy"]) == 2
    assert ckpt["netG_ema"].keys() == ckpt["netG"].keys() and ckpt["args"]["g_ema"] == 0.999
    assert os.path.exists(os.path.join(out, "grids", "epoch002_c1.png"))


def test_bench_infogan_rows(mnist_root):
    """bench.py's throughput table: every --arch side by side with the textbook loop, plus the defaults row."""
    proc = cli("bench.py", "--data-root", mnist_root, "--only", "infogan", "--device", "cpu",
               "--warmup", 0, "--iters", 1, "--batch-size", 20, "--precision", "fp32", check=True)
    assert "fast loop in cpu (" in proc.stdout and proc.stdout.splitlines()[0].endswith("): fp32")
    rows = {line[:28].strip(): line[28:].split() for line in proc.stdout.splitlines() if line.startswith(("infogan", "  "))}
    for arch in INFOGAN_ARCHS:
        device, batch, fast, ref, speedup = rows[f"infogan --arch {arch}"]
        assert (device, batch) == ("cpu", "20") and float(fast) > 0 and float(ref) > 0
        # the speed-up is the ratio of the two rates, each printed rounded to whole images/s
        f, r = float(fast), float(ref)
        assert (f - 0.5) / (r + 0.5) - 0.005 <= float(speedup.rstrip("x")) <= (f + 0.5) / (r - 0.5) + 0.005
    assert rows["default flags"][:2] == ["cpu", "20"] and float(rows["default flags"][2]) > 0


def test_bench_cgan_rows_train_what_the_reference_loop_trains():
    """The cGAN's side-by-side rows time the same losses as the textbook loop (hinge + classifier, no
    augmentation, no spectral loss, which it lacks); the defaults row keeps the augmentation and, as the
    trainer, no spectral loss. All rows time the networks the trainer builds."""
    import bench
    import train_cgan
    for size in (32, 64):
        args = bench.cgan_setup(size, torch.device("cpu"), bench.CGAN_REFERENCE_FLAGS)[0]
        losses = train_cgan.Losses.from_args(args, size)
        assert (losses.loss, losses.aux_weight, losses.max_shift, losses.spectral_weight) == ("hinge", 1, 0, 0)
        args, config, netG, netD = bench.cgan_setup(size, torch.device("cpu"), [])[:4]
        defaults = train_cgan.Losses.from_args(args, size)
        assert (defaults.max_shift, defaults.spectral_weight) == (size // 8, 0)
        # and the networks the trainer builds: D's classifier on a body of its own, with its 3x3 convolutions
        assert config == train_cgan.model_config(args)
        assert any(m.kernel_size == (3, 3) for m in netD.aux_body.modules() if isinstance(m, torch.nn.Conv2d))


def test_bench_cgan_rows_side_by_side_then_defaults(monkeypatch, capsys):
    """bench.py --only cgan: at each size a row side by side with the textbook loop (the reference flags),
    then a row of the defaults alone. The loops are stand-ins that note what they were asked to time, so
    no scenes are rendered or read."""
    import bench
    timed = []

    def fast(images, conditions, size, bs, device, precision, warmup, iters, flags=bench.CGAN_REFERENCE_FLAGS):
        timed.append(("fast", size, list(flags)))
        return 0.01

    def reference(root, size, bs, device, warmup, iters):
        timed.append(("reference", size))
        return 0.02
    monkeypatch.setattr(bench, "bench_cgan_fast", fast)
    monkeypatch.setattr(bench, "bench_cgan_reference", reference)
    monkeypatch.setattr(bench, "make_iclevr", lambda root, n, seed: None)  # the loops above read no scenes
    monkeypatch.setattr(bench, "load_iclevr", lambda root, size: (None, None, None))
    monkeypatch.setattr("sys.argv", ["bench.py", "--only", "cgan", "--device", "cpu", "--warmup", "0", "--iters", "1",
                                     "--cgan-batch-size", "2"])
    assert bench.main() == 0
    ref = bench.CGAN_REFERENCE_FLAGS
    assert timed == [("fast", 32, ref), ("reference", 32), ("fast", 32, []),
                     ("fast", 64, ref), ("reference", 64), ("fast", 64, [])]
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith(("cgan", "  "))]
    assert rows == [["cgan", "--img-size", "32", "cpu", "2", "200", "100", "2.00x"], ["default", "flags", "cpu", "2", "200", "-", "-"],
                    ["cgan", "--img-size", "64", "cpu", "2", "200", "100", "2.00x"], ["default", "flags", "cpu", "2", "200", "-", "-"]]


def test_bench_refuses_unknown_flags(mnist_root):
    """Outside --time-to-quality a mistyped flag is an error, not silently ignored."""
    proc = cli("bench.py", "--data-root", mnist_root, "--itres", 5)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == "error: unrecognized arguments: --itres 5 (train_infogan.py flags go with --time-to-quality)"
    for bad, phrase in ((["--iters", 0], "--iters >= 1"), (["--warmup", -1], "--warmup must be >= 0"),
                        (["--batch-size", 0], "must be >= 1"), (["--cgan-batch-size", 0], "must be >= 1"),
                        (["--batch-size", 200], "need more than the 300 training images")):
        proc = cli("bench.py", "--data-root", mnist_root, "--only", "infogan", "--device", "cpu", *bad)
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and phrase in proc.stderr, (bad, proc.stderr)


def test_bench_time_to_quality_passes_the_batch_size_and_leaves_no_run_behind(mnist_root, monkeypatch):
    """--time-to-quality starts train_infogan.py (here a stand-in that writes into its --out and prints an
    accuracy line): a typed --batch-size goes to it, and its run folder (checkpoints of 200+ MB) is removed."""
    import bench
    started = []

    class FakeRun:
        def __init__(self, cmd, **kwargs):
            started.append(cmd)
            out = cmd[cmd.index("--out") + 1]
            with open(os.path.join(out, "ckpt.pt"), "wb") as f:
                f.write(b"x" * 1000)
            self.stdout, self.returncode = iter(["epoch 1/1 | code->digit acc 0.950\n"]), 0

        def wait(self):
            return 0
    monkeypatch.setattr(bench.subprocess, "Popen", FakeRun)
    proc = cli("bench.py", "--data-root", mnist_root, "--time-to-quality", "--max-epochs", 1, "--batch-size", 32,
               "--lambda-aug", 0, check=True)
    cmd = started[0]
    assert cmd[cmd.index("--batch-size") + 1] == "32" and cmd[-2:] == ["--lambda-aug", "0"]
    assert "accuracy 0.9 reached" in proc.stdout and not os.path.exists(cmd[cmd.index("--out") + 1])


def test_info_loss_is_the_papers_with_learned_or_fixed_std():
    """L_I = lambda_cat x CE(categorical) + lambda_cont x Gaussian NLL (learned variance, or std 1)."""
    from train_infogan import Losses
    torch.manual_seed(0)
    q_out = (torch.randn(8, 10), torch.randn(8, 2), torch.randn(8, 2))
    cat, cont = torch.randint(10, (8,)), torch.rand(8, 2) * 2 - 1
    ce = F.cross_entropy(q_out[0], cat).item()
    var = q_out[2].exp()
    nll = (0.5 * (var.log() + (q_out[1] - cont) ** 2 / var)).sum(1).mean().item()  # N(mean, var) NLL, no constant
    assert Losses().info(q_out, cat, cont).item() == pytest.approx(ce + 0.1 * nll, rel=1e-5)
    assert Losses(lambda_cat=2.0, lambda_cont=0.5).info(q_out, cat, cont).item() == pytest.approx(2 * ce + 0.5 * nll, rel=1e-5)
    fixed = ce + 0.1 * (0.5 * (q_out[1] - cont) ** 2).sum(1).mean().item()
    assert Losses(q_std="fixed").info(q_out, cat, cont).item() == pytest.approx(fixed, rel=1e-5)
    assert Losses().info(q_out, cat, cont[:, :0]).item() == pytest.approx(ce)  # --n-cont 0: the categorical part only


def bar_images(n):
    """n images of a vertical bar (a "1"), background -1."""
    digit = -torch.ones(n, 1, 28, 28)
    digit[..., 6:22, 12:16] = 1
    return digit


def test_style_jitter_changes_each_image_its_own_way_and_keeps_the_range():
    from train_infogan import style_jitter
    torch.manual_seed(0)
    bars = bar_images(16)
    out = style_jitter(bars)
    assert out.shape == (16, 1, 28, 28) and out.min() >= -1 and out.max() <= 1
    assert len({tuple(o.flatten().tolist()) for o in out}) == 16  # every image its own transform
    assert torch.equal(style_jitter(-torch.ones(4, 1, 28, 28)), -torch.ones(4, 1, 28, 28))  # background stays


def test_style_jitter_parts_thickness_and_slant():
    from train_infogan import style_jitter
    torch.manual_seed(0)
    bars = bar_images(30)
    # no geometry: every image is kept, thickened or thinned, and all three happen
    out = style_jitter(bars, shear=0, rotate_deg=0, width=0, height=0, shift=0)
    kept, thick = bars, F.max_pool2d(bars, 3, 1, 1)
    thin = (bars - F.max_pool2d(-bars, 3, 1, 1)) / 2
    kinds = [next(k for k, ref in enumerate((kept, thick, thin)) if torch.allclose(o, ref[0], atol=1e-5)) for o in out]
    assert set(kinds) == {0, 1, 2}
    assert (thick > 0).sum() > (kept > 0).sum() > (thin > 0).sum()  # thicker and thinner strokes
    # shear only: the bar's centre moves linearly from row to row, with a slope of its own per image
    out = style_jitter(bars[:8], shear=0.3, rotate_deg=0, width=0, height=0, shift=0)
    slopes = []
    for img in out[:, 0]:
        ink = (img + 1).clamp(min=0)
        rows = torch.nonzero(ink.sum(1) > 1).flatten()[2:-2].float()  # rows through the bar, ends left out
        centres = (ink[rows.long()] * torch.arange(28.0)).sum(1) / ink[rows.long()].sum(1)
        slope, intercept = np.polyfit(rows.numpy(), centres.numpy(), 1)
        assert np.abs(centres.numpy() - (slope * rows.numpy() + intercept)).max() < 0.5
        slopes.append(slope)
    assert max(abs(s) for s in slopes) > 0.1 and np.ptp(slopes) > 0.1


def test_lambda_aug_adds_qs_cross_entropy_on_jittered_images(monkeypatch):
    """With the jitter replaced by the identity and no continuous codes, Q's cross-entropy on the
    jittered images equals the plain one, so the Q loss is (lambda_cat + lambda_aug) x that
    cross-entropy; the term trains G and the Q head, not D's body."""
    import train_infogan
    config = dict(arch="paper", noise_dim=8, n_cat=10, n_cont=0, noise="uniform")
    real = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1

    def step(*flags):
        """Q loss and the gradients of G and of D's body after one train_step at learning rate 0."""
        torch.manual_seed(0)
        netG, netD = build_infogan(config)
        args = train_infogan.get_parser().parse_args(["--n-cont", "0", *map(str, flags)])
        opt = lambda params: torch.optim.SGD(params, lr=0.0)  # noqa: E731  (the nets stay as built)
        torch.manual_seed(1)
        out = train_infogan.train_step(real, netG, netD, opt(netD.parameters()), opt(netG.parameters()),
                                       config, train_infogan.Losses.from_args(args), T.Amp(torch.device("cpu"), "fp32"))
        grads = lambda net: torch.cat([p.grad.flatten() for p in net.parameters()])  # noqa: E731
        return out[2].item(), grads(netG), grads(netD.body)

    monkeypatch.setattr(train_infogan, "style_jitter", lambda x: x)
    ce = step("--lambda-aug", 0)[0]  # lambda_cat 1: the plain cross-entropy
    assert ce > 0 and step("--lambda-aug", 2)[0] == pytest.approx(3 * ce, rel=1e-5)
    assert step("--lambda-aug", 0.5)[0] == pytest.approx(1.5 * ce, rel=1e-5)
    assert step("--lambda-aug", 2, "--lambda-cat", 0.5)[0] == pytest.approx(2.5 * ce, rel=1e-5)

    seen = []
    monkeypatch.setattr(train_infogan, "style_jitter", lambda x: seen.append(x) or x.flip(-1))
    loss, grad_g, grad_d_body = step("--lambda-aug", 2)
    assert len(seen) == 1 and seen[0].requires_grad  # G's images, not detached: the term reaches G
    assert loss != pytest.approx(3 * ce, rel=1e-3)  # Q read the jittered images, not the plain ones
    _, grad_g_paper, grad_d_body_paper = step("--lambda-aug", 0)
    assert not torch.allclose(grad_g, grad_g_paper) and torch.equal(grad_d_body, grad_d_body_paper)


def test_shared_mnist_loads_without_download():
    root = os.environ.get("SHARED_MNIST_ROOT")
    if not root or not os.path.isfile(os.path.join(root, "MNIST", "raw", "train-images-idx3-ubyte")):
        pytest.skip("SHARED_MNIST_ROOT not set or its MNIST/raw files missing: real-MNIST check skipped")
    images, labels = load_mnist(root, train=True, download=False)
    assert images.shape == (23797, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.min() == 0 and labels.max() == 9


# ---------------------------------------------------------------------------- conditional GAN (i-CLEVR)

PALETTE_HUES = {"red": 0, "brown": 28, "yellow": 55, "green": 112, "cyan": 180, "blue": 226, "purple": 274}


def colors_in(image, min_pixels=40, min_value=0.25):
    """Which palette colours cover at least min_pixels saturated pixels (HSV value >= min_value) of a
    rendered scene."""
    hsv = np.asarray(image.convert("RGB").convert("HSV")).astype(float)
    hue, sat, val = hsv[..., 0] * 360 / 255, hsv[..., 1] / 255, hsv[..., 2] / 255
    strong = (sat > 0.45) & (val > min_value)
    found = set()
    for name, h in PALETTE_HUES.items():
        dist = np.minimum(abs(hue - h), 360 - abs(hue - h))
        if (strong & (dist < 12)).sum() >= min_pixels:
            found.add(name)
    return found


def test_synthetic_iclevr_layout_and_loader(iclevr_root):
    import json
    from data import load_iclevr
    train = json.load(open(os.path.join(iclevr_root, "train.json")))
    assert len(train) == 48 and all(1 <= len(v) <= 3 and len(set(v)) == len(v) for v in train.values())
    objects = json.load(open(os.path.join(iclevr_root, "objects.json")))
    assert objects == json.load(open(os.path.join(os.path.dirname(__file__), "iclevr", "objects.json")))
    for name in ("test.json", "new_test.json"):
        assert len(json.load(open(os.path.join(iclevr_root, name)))) == 32
    first = sorted(train)[0]
    assert first.startswith("CLEVR_train_") and first.endswith(".png")
    img = Image.open(os.path.join(iclevr_root, "iclevr", first))
    assert img.mode == "RGBA" and img.size == (320, 240)
    images, conditions, _ = load_iclevr(iclevr_root, img_size=32)
    assert images.shape == (48, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(conditions.sum(1), torch.tensor([float(len(v)) for v in train.values()]))


def test_synthetic_iclevr_is_deterministic_for_a_seed(tmp_path):
    from data import render_scene
    a = render_scene(["red cube", "blue sphere"], np.random.default_rng([3, 1]))
    b = render_scene(["red cube", "blue sphere"], np.random.default_rng([3, 1]))
    c = render_scene(["red cube", "blue sphere"], np.random.default_rng([4, 1]))
    assert np.array_equal(np.asarray(a), np.asarray(b)) and not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize("names", [["red cube"], ["blue sphere", "yellow cylinder"],
                                   ["green cube", "purple sphere", "cyan cylinder"], ["brown cylinder", "red sphere"]])
def test_rendered_scene_matches_its_labels(names):
    """Object count and colours: exactly the listed colours show up in the picture."""
    from data import render_scene
    for seed in range(3):
        found = colors_in(render_scene(names, np.random.default_rng([seed, 7])))
        assert found == {n.split()[0] for n in names}, (seed, names, found)


def test_topk_accuracy_hand_made_cases():
    from models import topk_accuracy
    labels = torch.tensor([[1, 0, 0, 0], [0, 1, 1, 0], [1, 1, 1, 0]], dtype=torch.float)
    perfect = labels * 0.9 + 0.05
    assert topk_accuracy(perfect, labels) == 1.0
    probs = torch.tensor([[0.1, 0.9, 0.0, 0.0],      # k=1: miss
                          [0.0, 0.8, 0.1, 0.7],      # k=2: {1, 3} -> 1 hit
                          [0.9, 0.1, 0.8, 0.85]])    # k=3: {0, 3, 2} -> 2 hits
    assert topk_accuracy(probs, labels) == pytest.approx(3 / 6)
    from models import topk_hits
    assert torch.equal(topk_hits(probs, labels), torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0]]).float())


def test_object_breakdown_groups_hits_by_shape_and_colour():
    from evaluate import object_breakdown
    objects = {"red cube": 0, "red sphere": 1, "blue cube": 2, "blue sphere": 3}
    found, asked = torch.tensor([3.0, 0.0, 1.0, 2.0]), torch.tensor([4.0, 0.0, 4.0, 4.0])
    shapes, colours = object_breakdown(found, asked, objects)
    assert shapes == "  found by shape: cube 0.50, sphere 0.50"   # (3 + 1) / 8, (0 + 2) / 4
    assert colours == "  found by colour: red 0.75, blue 0.38"    # 3 / 4 (red sphere never asked), 3 / 8


def test_evaluator_round_trip_in_coursework_format(tmp_path):
    from evaluate import load_evaluator
    from models import build_evaluator
    net = build_evaluator().eval()
    torch.save({"model": net.state_dict()}, tmp_path / "checkpoint.pth")
    loaded = load_evaluator(str(tmp_path / "checkpoint.pth"))
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), loaded(x))
    assert set(net.state_dict()) >= {"fc.0.weight", "fc.0.bias", "conv1.weight", "layer4.1.bn2.running_var"}
    torch.save({"model": {"fc.0.weight": torch.zeros(10, 512)}}, tmp_path / "bad.pth")
    with pytest.raises(T.UserError, match="ResNet-18"):
        load_evaluator(str(tmp_path / "bad.pth"))


def test_evaluate_cli_trains_caches_and_scores_32px(iclevr_root, tmp_path):
    cache = tmp_path / "cache"
    proc = cli("evaluate.py", "--data-root", iclevr_root, "--epochs", 1, "--also-32px", "--cache-dir", cache,
               check=True)
    lines = dict(line.rsplit(": ", 1) for line in proc.stdout.strip().splitlines())
    assert "held-out" not in proc.stderr  # each figure once
    assert set(lines) == {"evaluator held-out top-k accuracy",
                          "the same held-out images at 32 px, upsampled to 64 (the best --img-size 32 can reach)"}
    # the cache is in the cache folder, not in the data folder, and records the figures printed
    assert not any(f.endswith((".pt", ".pth")) for f in os.listdir(iclevr_root))
    evaluators = [f for f in os.listdir(cache) if f.startswith("evaluator_")]
    assert len(evaluators) == 1 and len([f for f in os.listdir(cache) if f.startswith("iclevr_")]) == 2  # 64 and 32 px
    stored = torch.load(cache / evaluators[0], weights_only=True)
    assert stored["epochs"] == 1 and isinstance(stored["fingerprint"], str)
    assert f"{stored['heldout_accuracy']:.4f}" == lines["evaluator held-out top-k accuracy"]
    assert f"{stored['heldout_accuracy_32px']:.4f}" == lines[
        "the same held-out images at 32 px, upsampled to 64 (the best --img-size 32 can reach)"]
    # the second call loads it
    cached = cli("evaluate.py", "--data-root", iclevr_root, "--cache-dir", cache, check=True)
    assert cached.stdout.strip() == proc.stdout.strip().splitlines()[0] and "training an evaluator" not in cached.stderr
    assert f"evaluator: cached as {cache / evaluators[0]}, trained on {iclevr_root}, epochs: 1 (" in cached.stderr
    assert "evaluator: cached" not in proc.stderr  # said only when a cached one is reused


def test_conditional_batchnorm_follows_the_condition():
    from models import CondBatchNorm2d
    cbn = CondBatchNorm2d(3, 24)
    x, y = torch.randn(4, 3, 5, 5), torch.zeros(4, 24)
    # no object: plain BatchNorm without affine parameters
    assert torch.allclose(cbn(x, y), F.batch_norm(x, None, None, training=True), atol=1e-5)
    with torch.no_grad():
        cbn.gain.weight.zero_()
        cbn.bias.weight.zero_()
        cbn.gain.weight[:, 5] = 1.0   # object 5 doubles the gain ...
        cbn.bias.weight[:, 7] = 0.5   # ... object 7 shifts by 0.5
    y[1, 5] = y[2, 7] = 1
    out, plain = cbn(x, y), F.batch_norm(x, None, None, training=True)
    assert torch.allclose(out[0], plain[0], atol=1e-5)
    assert torch.allclose(out[1], 2 * plain[1], atol=1e-5)
    assert torch.allclose(out[2], plain[2] + 0.5, atol=1e-5)


def test_ema_update_averages_weights_and_float_buffers():
    a, b = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        a.weight.fill_(1.0), b.weight.fill_(3.0)
        a.running_mean.fill_(0.0), b.running_mean.fill_(2.0)
        b.num_batches_tracked.fill_(7)
    T.ema_update(a, b, decay=0.75)
    assert torch.allclose(a.weight, torch.full((3,), 1.5))  # 0.75 * 1 + 0.25 * 3
    assert torch.allclose(a.running_mean, torch.full((3,), 0.5))
    assert int(a.num_batches_tracked) == 7 and torch.equal(b.weight, torch.full((3,), 3.0))
    # with num_updates the decay is at most (1 + n) / (10 + n): 2/11 at the first update
    T.ema_update(a, b, decay=0.999, num_updates=1)
    assert torch.allclose(a.weight, torch.full((3,), 1.5 * 2 / 11 + 3 * 9 / 11))
    c = torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        c.weight.fill_(1.0)
    T.ema_update(c, b, decay=0.5, num_updates=10 ** 6)  # late in a run the decay itself holds
    assert torch.allclose(c.weight, torch.full((3,), 2.0))


def test_aux_loss_sums_over_classes():
    from train_cgan import aux_loss
    y = torch.zeros(3, 24)
    y[:, 0] = 1
    # logits 0 -> BCE log 2 for each of the 24 classes of each image
    assert aux_loss(torch.zeros(3, 24), y).item() == pytest.approx(24 * np.log(2))


def cgan_step_at_lr_0(losses):
    """One D and G step of train_step on nets at learning rate 0 (so they stay as built), then the same
    nets on the same z and real images: (loss_d, loss_g, real, y, fake, d_real, aux_real, d_fake, aux_fake)."""
    from models import build_cgan
    from train_cgan import train_step
    config = dict(img_size=32, noise_dim=8, g_width=8, d_width=8, g_upsample=False, g_cond="concat",
                  cond="projection", d_norm="none", n_classes=24)  # no spectral norm: its power iteration would move D
    real, y = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1, torch.zeros(4, 24)
    y[:, 3] = 1
    torch.manual_seed(0)
    netG, netD = build_cgan(config)
    optG, optD = torch.optim.SGD(netG.parameters(), lr=0.0), torch.optim.SGD(netD.parameters(), lr=0.0)
    torch.manual_seed(1)
    loss_d, loss_g, _, _ = train_step(real, y, netG, netD, optG, optD, losses, T.Amp(torch.device("cpu"), "fp32"),
                                      g_step=True)
    torch.manual_seed(1)  # the same z as inside train_step
    with torch.no_grad():
        fake = netG(torch.randn(4, 8), y)
        d_real, aux_real = netD(real, y)
        d_fake, aux_fake = netD(fake, y)
    return loss_d.item(), loss_g.item(), real, y, fake, d_real, aux_real, d_fake, aux_fake


def test_aux_weight_adds_the_classifier_term_to_d_and_g():
    """--aux-weight W: D's loss gains W x the summed BCE of its classifier on the real images, G's
    loss W x the same on G's images."""
    from train_cgan import Losses, aux_loss, d_loss_fn, g_loss_fn
    d0, g0, _, y, _, d_real, aux_real, d_fake, aux_fake = cgan_step_at_lr_0(Losses(aux_weight=0.0))
    d3, g3, *_ = cgan_step_at_lr_0(Losses(aux_weight=3.0))
    assert d0 == pytest.approx(d_loss_fn("hinge", d_real, d_fake).item(), rel=1e-4)
    assert g0 == pytest.approx(g_loss_fn("hinge", d_fake).item(), rel=1e-4)
    assert d3 - d0 == pytest.approx(3 * aux_loss(aux_real, y).item(), rel=1e-4) and d3 - d0 > 0.1
    assert g3 - g0 == pytest.approx(3 * aux_loss(aux_fake, y).item(), rel=1e-4) and g3 - g0 > 0.1


def test_spectral_weight_adds_the_spectral_loss_to_g_only():
    """--spectral-weight W: G's loss gains W x the spectral loss of its images against the real batch; D's is as it was."""
    from train_cgan import Losses, spectral_loss
    d0, g0, real, _, fake, *_ = cgan_step_at_lr_0(Losses(aux_weight=0.0))
    d2, g2, *_ = cgan_step_at_lr_0(Losses(aux_weight=0.0, spectral_weight=2.0))
    assert d2 == d0
    assert g2 - g0 == pytest.approx(2 * spectral_loss(fake, real).item(), rel=1e-4) and g2 - g0 > 0.1


def test_spectral_loss_sees_a_2px_checker_and_pulls_it_out():
    """The spectrum per radius reaches its corners, where the 2-px checker of a transposed conv lies
    (radius 45 at 64 px): the same scenes with a faint checker score far from the clean ones, and a
    gradient step on the checkered images takes part of the checker out."""
    from train_cgan import spectral_loss, spectrum_profile
    torch.manual_seed(0)
    clean = F.interpolate(torch.rand(8, 3, 8, 8) * 2 - 1, size=64, mode="bilinear", align_corners=False)
    checker = 0.1 * (-1.0) ** (torch.arange(64)[:, None] + torch.arange(64)[None, :])
    assert len(spectrum_profile(clean)) == 46  # radii 0..45: round(sqrt(32^2 + 32^2))
    assert spectral_loss(clean, clean).item() == 0
    checkered = (clean + checker).requires_grad_(True)
    loss = spectral_loss(checkered, clean)
    assert loss.item() > 1
    grad, = torch.autograd.grad(loss, checkered)
    stepped = checkered.detach() - 0.02 * grad / grad.abs().max()
    assert ((stepped - clean) * checker).mean() < 0.9 * (checker * checker).mean()  # less checker left


@pytest.mark.parametrize("loss,cond", [("hinge", "projection"), ("wgan-gp", "concat"), ("bce", "concat")])
def test_train_cgan_one_epoch(iclevr_root, tiny_evaluator, tmp_path, loss, cond):
    out = tmp_path / "run"
    critic = ["--n-critic", 2] if loss == "wgan-gp" else []
    # hinge: the defaults (upsample G, conditional BatchNorm, moving average), the average at 0.5 to see it move;
    # wgan-gp: seed 002's transposed-conv G, with conditional BatchNorm; bce: upsample G, concatenated condition
    variant = {"hinge": ["--g-ema", 0.5], "wgan-gp": ["--no-g-upsample", "--g-ema", 0],
               "bce": ["--g-cond", "concat", "--g-ema", 0, "--aux-weight", 3]}[loss]
    proc = cli("train_cgan.py", "--data-root", iclevr_root, "--epochs", 1, "--batch-size", 16,
               "--loss", loss, "--cond", cond, "--evaluator", tiny_evaluator, "--eval-draws", 2, "--out", out,
               "--g-width", 16, "--d-width", 16, *critic, *variant, check=True)
    assert "epoch 1/1" in proc.stdout and "new_test" in proc.stdout
    assert "image size: 32 px" in proc.stdout  # a CPU trains at 32 px unless --img-size says otherwise
    with open(out / "report.md") as f:  # the report names the judge of its accuracies
        assert f"| judged by | `{os.path.basename(tiny_evaluator)}` (`--evaluator`) |" in f.read()
    ckpt = T.load_checkpoint(str(out), kind="cgan")
    assert ckpt["config"]["cond"] == cond and ckpt["args"]["loss"] == loss and len(ckpt["history"]) == 3
    assert ckpt["config"]["img_size"] == 32
    assert ckpt["config"]["g_upsample"] == (loss != "wgan-gp")
    assert ckpt["config"]["g_cond"] == ("concat" if loss == "bce" else "cbn")
    assert ckpt["args"]["aux_weight"] == (3 if loss == "bce" else 1)
    ema = loss == "hinge"
    # 32 conditions, 8 per row: 4 x 8 grid of 32 px images with 2 px padding
    assert Image.open(out / "grid_test.png").size == (8 * 34 + 2, 4 * 34 + 2)
    assert Image.open(out / "grid_new_test.png").size == (8 * 34 + 2, 4 * 34 + 2)
    with open(out / "losses.csv") as f:
        g_losses = [float(r["loss_g"]) for r in csv.DictReader(f)]
    if critic:  # G steps after every 2nd D step: nothing logged for it before, then its loss
        assert g_losses[0] == 0 and g_losses[1] != 0 and g_losses[2] == g_losses[1]
    else:
        assert all(v != 0 for v in g_losses)
    with open(out / "accuracy.csv") as f:  # the figures printed are the ones stored
        row = next(csv.DictReader(f))
    assert f"test {float(row['test_mean']):.3f}+-{float(row['test_std']):.3f}" in proc.stdout
    for name in ("g.pt", "g_best.pt", "curves.png", "losses.csv"):
        assert (out / name).exists()
    g = T.load_checkpoint(str(out / "g.pt"))
    if ema:  # g.pt holds the average, which differs from the trained G after 3 steps at decay 0.5
        assert all(torch.equal(g["netG"][k], ckpt["netG_ema"][k]) for k in g["netG"])
        assert not all(torch.equal(g["netG"][k], ckpt["netG"][k]) for k in g["netG"])
        assert all(torch.equal(T.generator_weights(ckpt)[k], g["netG"][k]) for k in g["netG"])
    else:
        assert ckpt["netG_ema"] is None and all(torch.equal(g["netG"][k], ckpt["netG"][k]) for k in g["netG"])
    if loss == "hinge":  # sample.py on the result
        cli("sample.py", "--ckpt", out / "g.pt", "--labels", "red cube, blue sphere", "--n", 5, "--out", tmp_path / "s.npz",
            check=True)
        data = np.load(tmp_path / "s.npz")
        assert data["images"].shape == (5, 3, 32, 32) and data["images"].dtype == np.uint8
        assert data["conditions"].shape == (5, 24) and (data["conditions"].sum(1) == 2).all()
        # the command the run ends with, as printed: the data's test.json and the run's evaluator
        argv = printed_sample_command(proc.stdout)
        assert argv[argv.index("--json") + 1] == os.path.join(iclevr_root, "test.json")
        assert argv[argv.index("--evaluator") + 1] == tiny_evaluator
        proc = cli("sample.py", *argv, "--out", tmp_path / "test.png", check=True)
        assert "top-k accuracy" in proc.stdout
        assert Image.open(tmp_path / "test.png").width > 8 * 34 + 2  # labelled: the objects under each image
        proc = cli("evaluate.py", "--ckpt", out / "g.pt", "--evaluator", tiny_evaluator, "--draws", 2, check=True)
        lines = proc.stdout.strip().splitlines()
        assert lines.pop(0) == f"generator: {out / 'g.pt'} (epoch 1)"
        assert lines.pop(0) == f"evaluator: {tiny_evaluator}"
        assert [line.split(":")[0].strip() for line in lines] == [
            "test.json", "found by shape", "found by colour", "new_test.json", "found by shape", "found by colour"]
        assert lines[1].split(": ")[1].count(",") == 2 and lines[2].split(": ")[1].count(",") == 7
        bad = cli("sample.py", "--ckpt", out / "g.pt", "--labels", "pink cube")
        assert bad.returncode == 2 and "pink cube" in bad.stderr and "yellow cylinder" in bad.stderr
        bad = cli("sample.py", "--ckpt", out / "g.pt", "--labels", "red cube, blue sphere,red cube")
        assert bad.returncode == 2 and bad.stderr.strip() == \
            "error: --labels names red cube twice: a condition holds each object once"
        bad = cli("sample.py", "--ckpt", out / "g.pt", "--labels", " , ")
        assert bad.returncode == 2 and bad.stderr.startswith("error: --labels names no object"), bad.stderr
        four = cli("sample.py", "--ckpt", out / "g.pt", "--labels", "red cube,blue sphere,gray cylinder,cyan cube",
                   "--n", 2, "--out", tmp_path / "four.npz", check=True)  # drawn, with a word of warning
        assert "warning: --labels asks for 4 objects; i-CLEVR scenes hold 1-3" in four.stderr
        assert (np.load(tmp_path / "four.npz")["conditions"].sum(1) == 4).all()
        for flags, phrase in ((["--labels", "red cube", "--evaluator", tiny_evaluator], "--evaluator scores the images of --json"),
                              (["--json", os.path.join(iclevr_root, "test.json"), "--n", 4], "--n does not apply to --json")):
            bad = cli("sample.py", "--ckpt", out / "g.pt", *flags)  # a flag that would do nothing is said, not ignored
            assert bad.returncode == 2 and bad.stderr.startswith("error: ") and phrase in bad.stderr, bad.stderr
