"""Files the toolkit reads and writes: nothing it loads can run code (checkpoints, evaluators, caches
may come from someone else), caches follow their data, and a run never writes over another run.

A crafted pickle whose __reduce__ would create a marker file is given to every flag that takes a file
and planted as every cache; the marker must never appear. Run folders are claimed and locked; a lock
held by a live process is one written with the id of a child process that waits on its stdin, a stale
one with the id of a process that has ended, so nothing depends on timing. Most commands run their
main() in this process (conftest.cli: the same code path without an interpreter start-up each).
"""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import training as T
from conftest import cli

FAST = ["--batch-size", 30, "--seed", 3, "--precision", "fp32"]
TINY_CGAN = ["--batch-size", 16, "--g-width", 16, "--d-width", 16, "--seed", 5, "--precision", "fp32"]


@pytest.fixture(scope="module")
def small_mnist(tmp_path_factory):
    """60 images: two steps of 30 an epoch."""
    from conftest import write_fake_mnist
    return write_fake_mnist(str(tmp_path_factory.mktemp("small_mnist")), n_train=60, n_test=10)


class Crafted:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def craft(path, marker, legacy=False):
    """A file that runs code when unpickled: in torch.save's zip format, or as a bare pickle."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if legacy:
        import pickle
        with open(path, "wb") as f:
            pickle.dump({"model": Crafted(marker)}, f)
    else:
        torch.save({"kind": "infogan", "config": {}, "model": Crafted(marker)}, path)
    return path


def one_line(proc, *phrases):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run_hashes(folder):
    return {f: sha(os.path.join(folder, f)) for f in ("ckpt.pt", "g.pt", "losses.csv")}


# ---------------------------------------------------------------------------- nothing runs code

@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "bare-pickle"])
def test_crafted_file_given_to_every_flag_runs_nothing(iclevr_root, tiny_evaluator, infogan_run, tmp_path, legacy):
    marker = str(tmp_path / "MARKER")
    evil = craft(str(tmp_path / "evil" / "ckpt.pt"), marker, legacy)
    folder = os.path.dirname(evil)
    json = os.path.join(iclevr_root, "test.json")
    cases = [
        ("sample.py", ["--ckpt", evil, "--grid"]),
        ("sample.py", ["--ckpt", folder, "--grid"]),  # a run folder means its ckpt.pt
        ("evaluate.py", ["--ckpt", evil, "--evaluator", tiny_evaluator]),
        ("evaluate.py", ["--data-root", iclevr_root, "--evaluator", evil]),
        ("train_infogan.py", ["--resume", folder]),
        ("train_cgan.py", ["--resume", evil]),
        ("train_cgan.py", ["--data-root", iclevr_root, "--evaluator", evil, "--out", tmp_path / "c", "--epochs", 1,
                           *TINY_CGAN]),
    ]
    if not legacy:  # one is enough for the slower paths
        cgan_g = str(tmp_path / "cgan_g.pt")
        torch.save({"kind": "cgan", "config": {}, "objects": Crafted(marker)}, cgan_g)
        cases += [("sample.py", ["--ckpt", cgan_g, "--json", json]),
                  ("sample.py", ["--ckpt", os.path.join(infogan_run[0], "g.pt"), "--digit", 1, "--n", 2,
                                 "--out", tmp_path / "ok.npz"])]  # (a sound file, for contrast: it runs)
    for script, args in cases:
        proc = cli(script, *args)
        assert not os.path.exists(marker), (script, args)
        if any(str(a).endswith("ok.npz") for a in args):
            assert proc.returncode == 0, proc.stderr
            continue
        # torch.save's format: refused for what it holds; a bare pickle: not even read as a torch file
        one_line(proc, "cannot load", "could run code" if not legacy else "not a torch file")


def test_planted_caches_are_rebuilt_and_run_nothing(iclevr_root, small_mnist, tmp_path):
    """A crafted file in the place of each cache: the command warns in one line, rebuilds it and goes on."""
    from evaluate import cached_evaluator_path
    marker, cache = str(tmp_path / "MARKER"), tmp_path / "cache"
    key = T.folder_key(iclevr_root)
    for name in (f"iclevr_{key}_32px.pt", f"iclevr_{key}_64px.pt"):
        craft(str(cache / name), marker)
    craft(cached_evaluator_path(iclevr_root, str(cache)), marker)
    craft(str(cache / f"mnist_classifier_{T.folder_key(small_mnist)}.pt"), marker, legacy=True)
    proc = cli("evaluate.py", "--data-root", iclevr_root, "--epochs", 1, "--cache-dir", cache)
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert proc.returncode == 0 and len(warnings) == 3, proc.stderr  # the evaluator and both image sizes
    assert all("cannot load" in w and "rebuilding it" in w for w in warnings)
    proc = cli("train_infogan.py", "--data-root", small_mnist, "--out", tmp_path / "i", "--epochs", 1,
               "--eval-samples", 5, "--cache-dir", cache, *FAST)
    assert "code->digit acc" in proc.stdout and "digit-classifier cache" in proc.stderr and "rebuilding it" in proc.stderr
    assert not os.path.exists(marker)
    # what was rebuilt loads safely: a training run uses the caches without a word
    proc = cli("train_cgan.py", "--data-root", iclevr_root, "--out", tmp_path / "c", "--epochs", 1, "--eval-draws", 1,
               "--cache-dir", cache, *TINY_CGAN)
    assert proc.returncode == 0 and "warning" not in proc.stderr and "training an evaluator" not in proc.stderr
    judge = torch.load(cached_evaluator_path(iclevr_root, str(cache)), weights_only=True)
    assert f"evaluator held-out top-k accuracy: {judge['heldout_accuracy']:.4f}\n" in proc.stdout  # the judge's own figure
    with open(tmp_path / "c" / "report.md") as f:
        assert f"trained on `{iclevr_root}` by this toolkit, not the course's: held-out top-k {judge['heldout_accuracy']:.3f}" in f.read()


def test_everything_the_toolkit_saves_loads_with_weights_only(infogan_run):
    out, _ = infogan_run
    for name in ("ckpt.pt", "g.pt", "g_best.pt"):
        ckpt = torch.load(os.path.join(out, name), weights_only=True)  # raises on anything but plain data
        assert ckpt["kind"] == "infogan"
    full = torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)
    assert isinstance(full["rng"]["numpy"]["key"], torch.Tensor) and isinstance(full["rng"]["python"], list)
    assert full["machine"]["precision"] in ("fp32", "bf16") and isinstance(full["machine"]["torch"], str)


def test_rng_state_round_trips_through_a_file_every_stream(tmp_path):
    import random
    T.seed_everything(11)
    random.random(), np.random.rand(3), np.random.randn(), torch.rand(2)  # randn leaves a cached gaussian
    T.save_checkpoint({"rng": T.rng_state()}, str(tmp_path / "s.pt"))
    expected = (random.random(), np.random.rand(3).tolist(), np.random.randn(), torch.rand(2).tolist())
    T.seed_everything(99)
    T.set_rng_state(T.load_file(str(tmp_path / "s.pt"), "state")["rng"])
    assert (random.random(), np.random.rand(3).tolist(), np.random.randn(), torch.rand(2).tolist()) == expected


def test_checkpoints_of_the_previous_format_still_load_and_resume(infogan_run, tmp_path):
    """Before this format, ckpt.pt held NumPy's RNG state as an array and accuracies as NumPy floats:
    such a file still loads (NumPy arrays and numbers only, nothing that runs code) and resumes."""
    import shutil
    out = str(tmp_path / "old")
    shutil.copytree(infogan_run[0], out)
    ckpt = torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)
    np.random.seed(5)
    ckpt["rng"]["numpy"] = np.random.get_state()
    ckpt["rng"]["python"] = tuple(ckpt["rng"]["python"])
    ckpt["best"]["accuracy"] = np.float64(ckpt["best"]["accuracy"])
    for key in ("command", "machine", "epoch_seconds", "scalers"):
        del ckpt[key]
    torch.save(ckpt, os.path.join(out, "ckpt.pt"))
    assert "numpy" in " ".join(torch.serialization.get_unsafe_globals_in_checkpoint(os.path.join(out, "ckpt.pt")))
    assert cli("sample.py", "--ckpt", out, "--code", 1, "--n", 2, "--out", tmp_path / "s.npz").returncode == 0
    proc = cli("train_infogan.py", "--resume", out, "--epochs", 2, "--no-eval")
    assert "epoch 2/2" in proc.stdout


# ---------------------------------------------------------------------------- caches follow their data

def test_iclevr_cache_lives_outside_the_data_and_follows_it(iclevr_root, tmp_path):
    import shutil
    from PIL import Image
    from data import load_iclevr_cached
    root, cache = str(tmp_path / "data"), str(tmp_path / "cache")
    shutil.copytree(iclevr_root, root)
    before = sorted(os.listdir(root))
    images, _, _ = load_iclevr_cached(root, 32, cache)
    assert sorted(os.listdir(root)) == before and len(os.listdir(cache)) == 1  # nothing written into the data folder
    again, _, _ = load_iclevr_cached(root, 32, cache)
    assert torch.equal(images, again)
    # one image replaced by a black one: the cache sees it and is rebuilt
    first = sorted(os.listdir(os.path.join(root, "iclevr")))[0]
    path = os.path.join(root, "iclevr", first)
    Image.new("RGBA", Image.open(path).size, (0, 0, 0, 255)).save(path)
    index = list(__import__("json").load(open(os.path.join(root, "train.json")))).index(first)
    changed, _, _ = load_iclevr_cached(root, 32, cache)
    assert changed[index].max() == 0 and images[index].max() > 0
    assert torch.equal(torch.cat([changed[:index], changed[index + 1:]]), torch.cat([images[:index], images[index + 1:]]))


def test_unwritable_cache_folder_warns_and_trains(iclevr_root, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    proc = cli("train_cgan.py", "--data-root", iclevr_root, "--out", tmp_path / "c", "--epochs", 1, "--no-eval",
               "--cache-dir", blocked, *TINY_CGAN)
    assert "epoch 1/1" in proc.stdout and "cannot write the i-CLEVR cache" in proc.stderr


# ---------------------------------------------------------------------------- one run per folder

def test_the_same_command_twice_keeps_both_runs(small_mnist, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cmd = ["--data-root", small_mnist, "--epochs", 1, "--no-eval", *FAST]
    first = cli("train_infogan.py", *cmd)
    assert "run folder: runs/infogan " in first.stdout and "sample.py --ckpt runs/infogan/g.pt" in first.stdout
    kept = run_hashes(tmp_path / "runs" / "infogan")
    second = cli("train_infogan.py", *cmd, "--seed", 4)
    assert "run folder: runs/infogan-2 " in second.stdout and "sample.py --ckpt runs/infogan-2/g.pt" in second.stdout
    assert run_hashes(tmp_path / "runs" / "infogan") == kept
    assert run_hashes(tmp_path / "runs" / "infogan-2") != kept
    assert not os.path.exists(tmp_path / "runs" / "infogan" / T.LOCK)  # released at the end
    resumed = cli("train_infogan.py", "--resume", "runs/infogan")  # its paths stay as typed
    assert "nothing to train: the run in runs/infogan is at epoch 1 of 1" in resumed.stderr
    assert "sample.py --ckpt runs/infogan/g.pt" in resumed.stdout


def test_a_run_stopped_by_a_bad_flag_leaves_the_default_folder_free(iclevr_root, tmp_path, monkeypatch):
    """A run that stops at bad input found after its folder was made (a batch larger than the set)
    holds no run: the next run takes that folder."""
    monkeypatch.chdir(tmp_path)
    cmd = ["--data-root", iclevr_root, "--epochs", 1, "--no-eval", *TINY_CGAN, "--batch-size", 100000]
    for _ in range(2):
        proc = cli("train_cgan.py", *cmd)
        one_line(proc, "is larger than the data set")
        assert "run folder: runs/cgan " in proc.stdout


def test_the_interrupt_message_says_where_the_run_stopped(tmp_path, capsys):
    T.interrupted(str(tmp_path), 2, 3, 10)
    T.interrupted(str(tmp_path), 13, 0, 10)
    lines = capsys.readouterr().err.split("\n")
    assert "interrupted at epoch 2, step 3/10; saved. Resume with:" in lines
    assert "interrupted after epoch 13; saved. Resume with:" in lines


def test_explicit_out_holding_a_run_is_refused_or_overwritten(iclevr_root, tmp_path):
    out = tmp_path / "run"
    cmd = ["--data-root", iclevr_root, "--out", out, "--no-eval", *TINY_CGAN]
    cli("train_cgan.py", *cmd, "--epochs", 2)
    kept = run_hashes(out)
    proc = cli("train_cgan.py", *cmd, "--epochs", 1)
    one_line(proc, "already holds a run", f"--resume {out}", "--overwrite")
    assert run_hashes(out) == kept
    # --overwrite with a mistake the data reveals: the error, and the old run untouched
    one_line(cli("train_cgan.py", *cmd, "--epochs", 1, "--overwrite", "--batch-size", 1000), "larger than the data set")
    assert run_hashes(out) == kept
    proc = cli("train_cgan.py", *cmd, "--epochs", 1, "--overwrite")
    assert "epoch 1/1" in proc.stdout and not (out / "grids" / "epoch002_test.png").exists()  # nothing of the old run
    assert T.load_checkpoint(str(out))["epoch"] == 1
    one_line(cli("train_cgan.py", *cmd, "--resume", out, "--overwrite"), "give one")


def test_a_folder_in_use_is_refused_and_readable(infogan_run, small_mnist, tmp_path):
    """Another live process holds the folder: a new run and a --resume refuse, naming it; sample.py
    reads the folder's last complete g.pt all the same; once it has ended, its lock is stale."""
    import shutil
    out = str(tmp_path / "busy")
    shutil.copytree(infogan_run[0], out)
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        with open(os.path.join(out, T.LOCK), "w") as f:
            f.write(f"{holder.pid}\n")
        kept = run_hashes(out)
        for args in (["--resume", out], ["--data-root", small_mnist, "--out", out, "--overwrite", *FAST]):
            one_line(cli("train_infogan.py", *args), "in use by another run", f"process {holder.pid}")
        assert run_hashes(out) == kept
        starting = tmp_path / "starting"  # the live run has not saved its first checkpoint yet
        starting.mkdir()
        (starting / T.LOCK).write_text(f"{holder.pid}\n")
        one_line(cli("train_infogan.py", "--resume", starting), "in use by another run", "not saved a checkpoint yet")
        assert cli("sample.py", "--ckpt", out, "--code", 2, "--n", 3, "--out", tmp_path / "s.npz").returncode == 0
        assert np.load(tmp_path / "s.npz")["images"].shape == (3, 1, 28, 28)
    finally:
        holder.communicate(b"")  # the holder ends
    proc = cli("train_infogan.py", "--resume", out, "--epochs", 1)  # 1 epoch: already done, nothing trained
    assert "taking over the stale lock" in proc.stderr and not os.path.exists(os.path.join(out, T.LOCK))
    assert f"nothing to train: the run in {out} is at epoch 1 of 1; --resume {out} --epochs N" in proc.stderr


def test_a_stale_lock_is_taken_over_and_the_resume_stays_exact(iclevr_root, tmp_path):
    """A run killed with -9 leaves its lock behind: the next command says so, takes it over, and the
    resumed run ends exactly where the run done in one go ends (the cGAN's: run folders and locks are
    the trainers' shared plumbing)."""
    cmd = ["--data-root", iclevr_root, "--no-eval", *TINY_CGAN]
    cli("train_cgan.py", *cmd, "--epochs", 2, "--out", tmp_path / "straight")
    cli("train_cgan.py", *cmd, "--epochs", 1, "--out", tmp_path / "killed")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its process id now belongs to no one
    (tmp_path / "killed" / T.LOCK).write_text(f"{dead.pid}\n")
    proc = cli("train_cgan.py", "--resume", tmp_path / "killed", "--epochs", 2)
    assert f"taking over the stale lock of {tmp_path / 'killed'} (process {dead.pid}" in proc.stderr
    a, b = (T.load_checkpoint(str(tmp_path / d)) for d in ("straight", "killed"))
    assert all(torch.equal(a["netG"][k], b["netG"][k]) for k in a["netG"]) and a["history"] == b["history"]


def test_losses_csv_grows_by_appending_and_is_rewritten_when_not_as_left(tmp_path):
    """Each epoch appends its rows to the file this process wrote (the same file: its inode stays);
    a file changed since, or another list of rows (a resumed run), is rewritten whole."""
    path, header = str(tmp_path / "losses.csv"), ("epoch", "iteration", "loss")

    def expected(rows):
        T.write_csv(str(tmp_path / "whole.csv"), header, rows)
        return (tmp_path / "whole.csv").read_text()

    history = [[1, 1, 0.5], [1, 2, 0.25]]
    T.write_growing_csv(path, header, history)
    inode = os.stat(path).st_ino
    history += [[2, 3, 0.125], [2, 4, 1e-9]]
    T.write_growing_csv(path, header, history)
    assert open(path).read() == expected(history) and os.stat(path).st_ino == inode
    with open(path, "a") as f:  # someone else's change: rewritten whole
        f.write("2,5,oops\n")
    history.append([3, 5, 2.0])
    T.write_growing_csv(path, header, history)
    assert open(path).read() == expected(history)
    resumed = [[1, 1, 9.0], [1, 2, 9.0], [2, 3, 9.0], [2, 4, 9.0], [3, 5, 9.0], [3, 6, 9.0]]
    T.write_growing_csv(path, header, resumed)
    assert open(path).read() == expected(resumed)
    other = str(tmp_path / "other.csv")  # another run: only its rows are held from now on
    T.write_growing_csv(other, header, [[1, 1, 0.0]])
    assert list(T.GROWING_CSVS) == [other]
