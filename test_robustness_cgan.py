"""The cGAN side of "nothing lost, nothing cryptic": bad i-CLEVR input and evaluator files give one
line and exit code 2 through the real command lines; resuming train_cgan.py is bit-exact."""
import json
import os
import shutil

import pytest
import torch

import training as T
from conftest import run

ENV = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
TINY = ["--img-size", 32, "--batch-size", 16, "--g-width", 16, "--d-width", 16, "--seed", 5, "--precision", "fp32"]


def broken_copy(src, dst, damage):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("cache_*", "evaluator.pth"))
    damage(dst)
    return dst


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def drop_first_image(root):
    train = json.load(open(os.path.join(root, "train.json")))
    os.remove(os.path.join(root, "iclevr", sorted(train)[0]))


def unknown_object(root):
    train = json.load(open(os.path.join(root, "train.json")))
    train[sorted(train)[0]] = ["pink cube"]
    write(os.path.join(root, "train.json"), json.dumps(train))


DAMAGE = {
    "missing train.json": (lambda r: os.remove(os.path.join(r, "train.json")), "train.json not found"),
    "malformed train.json": (lambda r: write(os.path.join(r, "train.json"), "{not json"), "not valid JSON"),
    "malformed objects.json": (lambda r: write(os.path.join(r, "objects.json"), "[1, 2"), "not valid JSON"),
    "unknown object": (unknown_object, "unknown object 'pink cube'"),
    "missing image": (drop_first_image, "image listed in train.json is missing"),
    "no image folder": (lambda r: shutil.rmtree(os.path.join(r, "iclevr")), "no image folder"),
}


def assert_one_line_error(proc, phrase):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and phrase in errors[0], proc.stderr


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_bad_iclevr_folder_is_one_clear_line(iclevr_root, tmp_path, case):
    damage, phrase = DAMAGE[case]
    root = broken_copy(iclevr_root, str(tmp_path / "data"), damage)
    proc = run("train_cgan.py", "--data-root", root, "--no-eval", "--out", tmp_path / "run", *TINY, env=ENV, check=False)
    assert_one_line_error(proc, phrase)


def test_missing_iclevr_folder_says_how_to_make_one(tmp_path):
    proc = run("train_cgan.py", "--data-root", tmp_path / "nope", "--out", tmp_path / "run", env=ENV, check=False)
    assert_one_line_error(proc, "make-iclevr")


@pytest.mark.parametrize("flags,phrase", [
    (["--aux-weight", 0, "--aux-weight-g", 1], "only --aux-weight > 0 trains"),
    (["--aux-weight", 0, "--aux-fake", 1], "only --aux-weight > 0 trains"),
    (["--aux-fake", -1], "must be >= 0"),
])
def test_bad_aux_flags_are_one_clear_line(tmp_path, flags, phrase):
    """Checked before any data is read, so the folder need not exist."""
    proc = run("train_cgan.py", "--data-root", tmp_path / "nope", "--out", tmp_path / "run", *flags, env=ENV, check=False)
    assert_one_line_error(proc, phrase)


@pytest.mark.parametrize("content,phrase", [
    ({"model": {"fc.0.weight": torch.zeros(10, 512)}}, "does not hold a ResNet-18"),
    ({"weights": {}}, "not an evaluator file"),
    (None, "cannot read evaluator"),
])
def test_bad_evaluator_file_is_one_clear_line(iclevr_root, tmp_path, content, phrase):
    path = tmp_path / "checkpoint.pth"
    if content is None:
        path.write_bytes(b"\x00garbage" * 10)
    else:
        torch.save(content, path)
    proc = run("train_cgan.py", "--data-root", iclevr_root, "--evaluator", path, "--out", tmp_path / "run", *TINY,
               env=ENV, check=False)
    assert_one_line_error(proc, phrase)


def test_infogan_checkpoint_to_cgan_commands_is_refused(infogan_run, tmp_path):
    out, _ = infogan_run
    proc = run("train_cgan.py", "--resume", out, env=ENV, check=False)
    assert_one_line_error(proc, "use it with train_infogan.py")
    proc = run("evaluate.py", "--ckpt", os.path.join(out, "g.pt"), env=ENV, check=False)
    assert_one_line_error(proc, "use it with train_infogan.py")


def test_cgan_resume_is_bit_exact(iclevr_root, tmp_path):
    """wgan-gp (n_critic 2 across epoch boundaries: 3 steps per epoch) with G's moving average,
    for 2 epochs in one go, against 1 epoch + --resume."""
    common = ["--data-root", iclevr_root, "--no-eval", "--loss", "wgan-gp", "--n-critic", 2, "--g-ema", 0.9, *TINY]
    run("train_cgan.py", *common, "--epochs", 2, "--out", tmp_path / "full", env=ENV)
    run("train_cgan.py", *common, "--epochs", 1, "--out", tmp_path / "half", env=ENV)
    run("train_cgan.py", *common, "--epochs", 2, "--resume", tmp_path / "half", env=ENV)
    full, half = T.load_checkpoint(str(tmp_path / "full")), T.load_checkpoint(str(tmp_path / "half"))
    assert half["epoch"] == full["epoch"] == 2
    for net in ("netG", "netD", "netG_ema"):
        for key, value in full[net].items():
            assert torch.equal(value, half[net][key]), (net, key)
    assert half["history"] == full["history"]
