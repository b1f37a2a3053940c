"""report.py and sample.py's labelled figures: the hand-in page of a run folder.

A real 1-epoch run (conftest's infogan_run) gets a report whose every link exists and whose resume
command continues the run; the grid's rows follow the code->digit map (a stand-in generator draws
its own code value, so a row shows which code drew it); the cGAN figures write the asked-for objects
under each image; a long run's curves keep every extreme in few points; a run written before
command/epoch_seconds/machine/breakdown were recorded, and a g.pt alone, still get a report.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

import report as R
import sample
import training as T
from conftest import REPO, cli
from data import SPEC_DIR

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
MAP = {c: (3 * c + 1) % 10 for c in range(10)}  # code -> digit, a permutation far from the identity


def links(md_path):
    with open(md_path, encoding="utf-8") as f:
        return LINK.findall(f.read())


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class CodeEcho(nn.Module):
    """Stand-in InfoGAN generator: every pixel of an image is its categorical code's value / 10, so
    an image says which code drew it."""

    def __init__(self, noise_dim, n_cat):
        super().__init__()
        self.noise_dim, self.n_cat = noise_dim, n_cat
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, z):
        code = z[:, self.noise_dim:self.noise_dim + self.n_cat].argmax(1).float()
        return (code / 10).view(-1, 1, 1, 1).expand(-1, 1, 28, 28) * 2 - 1


def decode(images):
    """CodeEcho images -> the code of each."""
    return ((images[:, 0, 0, 0] + 1) / 2 * 10).round().long().tolist()


def infogan_ckpt(mapping=MAP, n_cat=10, n_cont=2, **extra):
    config = {"arch": "paper", "noise_dim": 4, "n_cat": n_cat, "n_cont": n_cont, "noise": "uniform", "img_size": 28}
    return {"kind": "infogan", "config": config, "fixed_noise": torch.rand(max(n_cat, 10), 4) * 2 - 1,
            "code_to_digit": mapping, "epoch": 1, **extra}


def test_grid_rows_follow_the_code_to_digit_map():
    ckpt = infogan_ckpt()
    images, rows, cols, x_title = R.infogan_grid(ckpt, CodeEcho(4, 10), sweep_code=1)
    codes = decode(images)
    digit_of_row = [MAP[codes[10 * r]] for r in range(10)]
    assert digit_of_row == list(range(10))  # top to bottom: the images of digits 0..9
    assert all(codes[10 * r:10 * r + 10] == [codes[10 * r]] * 10 for r in range(10))  # one code per row
    assert rows == [f"digit {d} (code {codes[10 * d]})" for d in range(10)]
    assert cols[0] == "-2.00" and cols[-1] == "+2.00" and x_title.startswith("c2")
    # the figure shows those images beside those labels: read each row's first cell back from the picture
    fig = R.grid_figure(images, 10, "t", rows, cols, x_title)
    ax = fig.axes[0]
    picture = ax.images[0]
    shown, (x0, x1, y0, y1) = picture.get_array(), picture.get_extent()
    texts = {t.get_text(): t.get_position() for t in ax.texts}
    for r, label in enumerate(rows):  # the image row at the height of each row label draws that row's code
        x, y = texts[label]
        assert x < x0
        pixel_row = int((y1 - y) / (y1 - y0) * shown.shape[0])
        assert round(float(shown[pixel_row, 16, 0]) * 10) == codes[10 * r]
    assert [texts[c][0] for c in cols] == sorted(texts[c][0] for c in cols) and all(texts[c][1] < y0 for c in cols)


def test_grid_rows_without_a_map_or_with_values_left_over():
    images, rows, _, _ = R.infogan_grid(infogan_ckpt(mapping=None), CodeEcho(4, 10))
    assert decode(images)[::10] == list(range(10)) and rows == [f"code {c}" for c in range(10)]
    # 12 values, 10 digits: the two values no digit was matched to come last
    mapping = {c: d for c, d in zip([5, 0, 11, 3, 7, 1, 9, 2, 6, 4], range(10))}
    images, rows, _, _ = R.infogan_grid(infogan_ckpt(mapping=mapping, n_cat=12), CodeEcho(4, 12))
    assert decode(images)[::10] == [5, 0, 11, 3, 7, 1, 9, 2, 6, 4, 8, 10]
    assert rows[-2:] == ["code 8 (no digit)", "code 10 (no digit)"]
    # no continuous codes: the columns are the 10 fixed noise vectors
    _, _, cols, x_title = R.infogan_grid(infogan_ckpt(n_cont=0), CodeEcho(4, 10))
    assert cols == [str(i) for i in range(1, 11)] and "fixed noise" in x_title


def test_one_image_per_digit_in_digit_order():
    images, labels = R.infogan_digits(infogan_ckpt(), CodeEcho(4, 10))
    assert [MAP[c] for c in decode(images)] == list(range(10))
    assert labels[7] == f"digit 7\n(code {decode(images)[7]})"


def cgan_ckpt(full):
    from models import build_cgan
    objects = json.loads(read(os.path.join(SPEC_DIR, "objects.json")))
    config = dict(img_size=32, noise_dim=8, g_width=8, d_width=8, g_upsample=False, g_cond="concat",
                  cond="projection", d_norm="spectral", n_classes=24)
    netG, _ = build_cgan(config)
    ckpt = dict(kind="cgan", config=config, objects=objects, netG=netG.state_dict(), netG_ema=None, epoch=2, step=0,
                args={"epochs": 4, "eval_draws": 2, "no_eval": False}, history=[],
                accuracy=[[1, 0.25, 0.01, 0.2, 0.02], [2, 0.5, 0.03, 0.375, 0.04]], best={"accuracy": 0.4375, "epoch": 2})
    if full:
        found = [float(i % 3) for i in range(24)]
        ckpt.update(command=["python", "train_cgan.py", "--img-size", "32"], epoch_seconds=[[1, 30.0], [2, 31.0]],
                    machine={"device": "cuda", "device_name": "NVIDIA H200", "precision": "bf16", "torch": "2.14.1"},
                    breakdown={n: {"found": found, "asked": [4.0] * 24} for n in R.CGAN_SETS},
                    judge={"trained_on": "data/iclevr-synth", "heldout_accuracy": 0.98, "heldout_accuracy_32px": 0.968})
    return ckpt


def test_cgan_grid_writes_the_asked_for_objects_under_each_image(tmp_path):
    ckpt = cgan_ckpt(full=True)
    netG = R.load_generator(ckpt)
    images, captions, title = R.cgan_grid(ckpt, netG, "new_test")
    asked = json.loads(read(os.path.join(SPEC_DIR, "new_test.json")))
    assert len(images) == len(captions) == 32
    assert [sorted(c.split("\n")) for c in captions] == [sorted(names) for names in asked]
    assert torch.equal(images, R.cgan_grid(ckpt, netG, "new_test")[0])  # fixed noise: a stable picture
    fig = R.captioned_grid_figure(images, captions, 8, title)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts[:32]] == captions  # under each image: the text's top is the image's bottom
    assert all(im.get_extent()[2] - 0.1 < t.get_position()[1] < im.get_extent()[2] and
               im.get_extent()[0] < t.get_position()[0] < im.get_extent()[1] for im, t in zip(ax.images, ax.texts))
    # sample.py --json: the same labelled figure; --plain keeps the bare grid
    T.save_checkpoint(ckpt, str(tmp_path / "g.pt"))
    for extra in ([], ["--plain"]):  # without --out: beside g.pt, the bare grid under a name of its own
        run_main(["sample.py", "--ckpt", str(tmp_path / "g.pt"), "--json", os.path.join(SPEC_DIR, "test.json"), *extra])
    from PIL import Image
    assert Image.open(tmp_path / "sample_test_plain.png").size == (8 * 34 + 2, 4 * 34 + 2)
    assert Image.open(tmp_path / "sample_test.png").size[0] > 800


def run_main(argv):
    old, sys.argv = sys.argv, argv
    try:
        return sample.main()
    finally:
        sys.argv = old


@pytest.mark.parametrize("full", [True, False])
def test_cgan_report_with_and_without_the_new_fields(tmp_path, full):
    ckpt = cgan_ckpt(full)
    T.save_checkpoint(ckpt, str(tmp_path / "ckpt.pt"))
    T.save_checkpoint({k: ckpt[k] for k in ("kind", "config", "objects", "netG", "epoch")}, str(tmp_path / "g.pt"))
    md = read(R.write_report(str(tmp_path)))
    assert all(os.path.isfile(tmp_path / link) for link in links(tmp_path / "report.md"))
    assert {"report/grid_test.png", "report/grid_new_test.png"} <= set(links(tmp_path / "report.md"))
    assert "0.500 ± 0.030" in md and "0.375 ± 0.040" in md and "at epoch 2" in md
    assert f"python train_cgan.py --resume {tmp_path}" in md
    if full:
        assert "python train_cgan.py --img-size 32" in md and "NVIDIA H200" in md and "30.5 s" in md
        assert "found by shape: cube" in md and "found by colour: gray" in md
        assert "trained on `data/iclevr-synth` by this toolkit, not the course's: held-out top-k 0.980 at 64 px, 0.968" in md
        assert R.NOT_RECORDED not in md
    else:
        assert md.count(R.NOT_RECORDED) >= 4  # command, time per epoch, machine, shape/colour breakdown


def test_old_infogan_run_and_g_pt_alone_still_get_a_report(tmp_path):
    """A run folder from before command/epoch_seconds/machine were recorded, with no logs or curves;
    then only its g.pt, reported through sample.py --report."""
    from models import build_infogan
    ckpt = infogan_ckpt(accuracy=[[1, 0.5]], best={"accuracy": 0.5, "epoch": 1}, step=0,
                        args={"epochs": 3, "no_eval": False})
    ckpt["netG"] = build_infogan(ckpt["config"])[0].state_dict()
    run = tmp_path / "old"
    run.mkdir()
    T.save_checkpoint(ckpt, str(run / "ckpt.pt"))
    T.save_checkpoint({k: ckpt[k] for k in ("kind", "config", "netG", "fixed_noise", "epoch", "code_to_digit")},
                      str(run / "g.pt"))
    md = read(R.write_report(str(run)))
    assert md.count(R.NOT_RECORDED) >= 3 and "0.500" in md
    assert set(links(run / "report.md")) == {"report/grid_c1.png", "report/grid_c2.png", "report/digits.png"}
    assert all(os.path.isfile(run / link) for link in links(run / "report.md"))
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copyfile(run / "g.pt", alone / "g.pt")
    assert run_main(["sample.py", "--ckpt", str(alone / "g.pt"), "--report"]) == 0
    md = read(alone / "report.md")
    assert "no `ckpt.pt`" in md and all(os.path.isfile(alone / link) for link in links(alone / "report.md"))
    assert "cannot be resumed" in md and "--resume" not in md  # no command that would fail
    with pytest.raises(T.UserError, match="--report"):
        run_main(["sample.py", "--ckpt", str(alone / "g.pt"), "--report", "--grid"])


def test_report_py_run_as_a_script_names_the_command_that_writes_a_report():
    import runpy
    with pytest.raises(SystemExit, match="python sample.py --ckpt RUN --report"):
        runpy.run_path(os.path.join(REPO, "report.py"), run_name="__main__")


def test_long_start_command_is_broken_into_lines_the_shell_joins_again():
    argv = ["python", "train_cgan.py", "--data-root", "/data/i clevr", "--img-size", "32", "--g-upsample", "--g-cond",
            "cbn", "--g-ema", "0.999", "--lr-g", "4e-4", "--lr-d", "8e-4", "--epochs", "60", "--out", "runs/cgan32"]
    text = R.shell_lines(argv)
    assert text.count("\n") >= 1 and all(len(line) <= 90 for line in text.splitlines())
    echoed = subprocess.run(["bash", "-c", 'printf "%s\\0" ' + text], capture_output=True, text=True).stdout
    assert echoed.split("\0")[:-1] == argv


def test_per_epoch_means_of_losses_csv_and_its_damaged_rows(tmp_path):
    """The report's per-epoch table: each epoch's mean of each column and its row count (which marks a
    part epoch); a row that does not read (a cut-off line, a word, a blank line) is left out, not fatal."""
    path = tmp_path / "losses.csv"
    path.write_text("epoch,iteration,loss_d,loss_g\n1,1,1.0,2.0\n1,2,3.0,6.0\n2,3,5.0,7.0\n2,4,9.0,1.0\n3,5,2.5,0.5\n")
    assert R.epoch_means(str(path)) == (["loss_d", "loss_g"], {1: [2.0, 4.0], 2: [7.0, 4.0], 3: [2.5, 0.5]},
                                        {1: 2, 2: 2, 3: 1})
    path.write_text("epoch,iteration,loss_d,loss_g\n1,1,1.0,2.0\n1,2,x,6.0\n\n2,3,5.0,7.0\n2,4,9.0\n")
    assert R.epoch_means(str(path)) == (["loss_d", "loss_g"], {1: [1.0, 2.0], 2: [5.0, 7.0]}, {1: 1, 2: 1})
    path.write_text("epoch,iteration,loss_d,loss_g\n")
    assert R.epoch_means(str(path)) == (["loss_d", "loss_g"], {}, {})
    path.write_text("epoch,iteration,loss_d,loss_g\n" + "1,1,1.0,2.0,3.0\n" * 4)  # every row a column too many
    assert R.epoch_means(str(path)) == (["loss_d", "loss_g"], {}, {})


def test_curves_of_a_long_run_keep_every_extreme_in_few_points(tmp_path, monkeypatch):
    """curves.png at 100 epochs of 371 iterations: the moving average and the faint band of raw values
    are drawn through at most CURVE_POINTS points each (a line through all 37,100 costs seconds every
    epoch), and the band still reaches the single highest and lowest iteration."""
    import matplotlib.pyplot as plt
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at, not the PNG
    n = 37_100
    its = np.arange(1, n + 1)
    loss = 1 + 0.1 * np.random.default_rng(0).standard_normal(n)
    loss[12_345], loss[30_001] = 9.0, -4.0  # one spike each way, inside a slice
    T.plot_curves(str(tmp_path / "curves.png"), [("losses", "iteration", {"D": (its, loss)})])
    ax = figures[0].axes[0]
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert ax.lines and all(len(line.get_xdata()) <= T.CURVE_POINTS for line in ax.lines)
    (band,) = ax.collections
    xy = np.concatenate([path.vertices for path in band.get_paths()])
    assert len(xy) <= 4 * T.CURVE_POINTS + 10
    assert xy[:, 1].max() == 9.0 and xy[:, 1].min() == -4.0
    assert xy[:, 0].min() == 1 and xy[:, 0].max() == n


def test_write_report_leaves_the_random_streams_alone(tmp_path):
    """The trainers call it every epoch: a draw inside would shift the run after it and break
    bit-exact resume."""
    ckpt = cgan_ckpt(full=False)
    T.save_checkpoint(ckpt, str(tmp_path / "ckpt.pt"))
    torch.manual_seed(5)
    before = torch.get_rng_state()
    R.write_report(str(tmp_path))
    assert torch.equal(torch.get_rng_state(), before)


def test_report_of_a_real_run_links_its_files_and_its_resume_command_resumes(infogan_run, tmp_path):
    src, _ = infogan_run
    run = str(tmp_path / "run")
    shutil.copytree(src, run, ignore=shutil.ignore_patterns("report.md", "report"))
    md = read(R.write_report(run))
    found = links(os.path.join(run, "report.md"))
    assert {"report/grid_c1.png", "report/grid_c2.png", "report/digits.png", "curves.png", "progress.gif"} <= set(found)
    assert all(os.path.isfile(os.path.join(run, link)) for link in found)
    # the labelled grid shows the run's grid_c1.png images, its rows reordered by digit
    from PIL import Image
    from torchvision.utils import make_grid
    g = T.load_checkpoint(os.path.join(run, "g.pt"))
    images, _, _, _ = R.infogan_grid(g, R.load_generator(g), 0)
    codes = [c for c, _ in R.row_order(10, g["code_to_digit"])]
    in_code_order = images.view(10, 10, 1, 28, 28)[torch.tensor(codes).argsort()].reshape(100, 1, 28, 28)
    drawn = make_grid(in_code_order, nrow=10, padding=2, normalize=True, value_range=(-1, 1))
    saved = torch.from_numpy(np.array(Image.open(os.path.join(run, "grid_c1.png")).convert("RGB"))).permute(2, 0, 1)
    assert (drawn.mul(255).add(0.5).clamp(0, 255).byte().int() - saved.int()).abs().max() <= 1
    ckpt = T.load_checkpoint(run)
    best = ckpt["best"]
    assert f"{best['accuracy']:.3f} at epoch 1" in md and "| 1 | " in md  # headline and per-epoch table
    assert ("train_infogan.py --data-root" in md) == ("command" in ckpt)
    resume = next(line for line in md.splitlines() if line.startswith("python train_infogan.py --resume"))
    argv = shlex.split(resume)
    assert argv[1:] == ["train_infogan.py", "--resume", run]
    proc = cli(argv[1], *argv[2:], "--epochs", "2", check=True)  # main() in this process: the same code path
    assert "epoch 2/2" in proc.stdout and "epoch 1/2" not in proc.stdout
    assert T.load_checkpoint(run)["epoch"] == 2
    md = read(os.path.join(run, "report.md"))  # the resumed run's own report names the command that resumed it
    resumed = R.shell_lines(["python", "train_infogan.py", "--resume", run, "--epochs", "2"])
    assert f"# resumed with\n{resumed}\n" in md, md[md.find("## Commands"):][:800]


def test_the_trainer_writes_the_report_from_what_it_saved_without_reading_it_back(mnist_root, tmp_path, monkeypatch):
    """The report a trainer writes each epoch from the checkpoints it has just saved, not read back
    (InfoGAN's ckpt.pt is 187 MB), is the one `sample.py --report` writes afterwards from the files."""
    reads, load_file = [], T.load_file
    monkeypatch.setattr(T, "load_file", lambda path, what: reads.append(os.path.basename(path)) or load_file(path, what))
    run = str(tmp_path / "run")
    cli("train_infogan.py", "--data-root", mnist_root, "--out", run, "--epochs", 1, "--batch-size", 50, "--no-eval",
        "--seed", 3, check=True)
    assert not {"ckpt.pt", "g.pt"} & set(reads)
    again = str(tmp_path / "copy" / "run")
    shutil.copytree(run, again, ignore=shutil.ignore_patterns("report.md", "report"))
    assert read(R.write_report(again)).replace(again, run) == read(os.path.join(run, "report.md"))
    assert "code->digit accuracy per epoch" not in read(os.path.join(run, "report.md"))  # --no-eval: no accuracy curve promised
    for name in os.listdir(os.path.join(run, "report")):
        with open(os.path.join(run, "report", name), "rb") as a, open(os.path.join(again, "report", name), "rb") as b:
            assert a.read() == b.read(), name


def test_the_epochs_report_draws_in_eval_mode_and_gives_g_back_in_training_mode(monkeypatch, capsys):
    """--g-ema 0: the report draws with the G being trained, in eval mode (BatchNorm's running statistics,
    as g.pt is drawn), and training goes on in training mode, also when the report failed."""
    seen = []
    monkeypatch.setattr(R, "write_report", lambda out, saved, netG: seen.append(netG.training))
    netG = torch.nn.BatchNorm1d(3)
    T.write_report("RUN", saved=None, netG_eval=netG)
    assert seen == [False] and netG.training
    monkeypatch.setattr(R, "write_report", lambda out, saved, netG: seen.append(netG.training) or 1 / 0)
    T.write_report("RUN", saved=None, netG_eval=netG)
    assert seen == [False, False] and netG.training
    assert "warning: report.md not written (ZeroDivisionError" in capsys.readouterr().err
