"""Nothing lost, nothing cryptic: interruption, resume and bad input, through the real command lines.

Every test runs train_infogan.py / sample.py as a subprocess on tiny fake MNIST (conftest.py) on CPU.

* kill -9 leaves a loadable ckpt.pt (atomic writes); SIGINT / SIGTERM finish the step, save, print the
  command that resumes and exit 130 / 143; that command continues where the run stopped.
* Resuming is bit-exact: 1 epoch + --resume, or a run interrupted mid-epoch + --resume, end with exactly
  the weights (and optimiser state, and loss history) of the same run done in one go.
* A NaN loss stops the run with a message naming epoch and iteration; the last good checkpoint stays.
* --resume keeps the checkpoint's architecture and warns about each flag that tried to change it.
* Bad input (missing/unreadable data, broken checkpoints, out-of-range flags, unwritable output) gives one
  line 'error: ...' on stderr, exit code 2, no traceback.

The subprocesses run with OMP_NUM_THREADS=1 unless it is set: on a small shared machine OpenMP's
spinning threads make training steps several times slower. Several runs are started at once (module
fixture `lab`) so their start-up costs overlap.
"""
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import training as T
from conftest import REPO, run, write_fake_mnist

ENV = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
N_TRAIN, BATCH = 150, 50
STEPS = N_TRAIN // BATCH  # 3 steps per epoch: room to stop in the middle of one


def base_args(data, precision="fp32"):
    return ["--data-root", data, "--batch-size", BATCH, "--no-eval", "--seed", 7, "--precision", precision]


def start(script, *args):
    """Popen a repo script the way conftest.run runs it (same env), without waiting."""
    return subprocess.Popen([sys.executable, os.path.join(REPO, script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONHASHSEED": "0", **ENV})


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def train(*args, check=True):
    return run("train_infogan.py", *args, env=ENV, check=check)


def wait_until_training(proc, timeout=120):
    """Block until train_infogan.py has installed its SIGINT/SIGTERM handler (training.StopRequest, set up
    right before the first step): SIGTERM's bit appears in SigCgt of /proc/PID/status. No sleeps to tune,
    and no signal lands during start-up, where Python would still die of it."""
    if not os.path.exists(f"/proc/{proc.pid}/status"):
        proc.kill()
        pytest.skip("needs Linux's /proc to see when training has started")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"exited {proc.returncode} before training started:\n{out[-1500:]}\n{err[-3000:]}")
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                caught = int(next(line for line in f if line.startswith("SigCgt:")).split()[1], 16)
        except (OSError, StopIteration, ValueError):
            caught = 0
        if caught >> (signal.SIGTERM - 1) & 1:
            return
        time.sleep(0.002)
    proc.kill()
    raise AssertionError("train_infogan.py did not start training in time")


def interrupt(proc, signum):
    wait_until_training(proc)
    proc.send_signal(signum)
    return finish(proc)


def resume_argv(stderr):
    """The command printed after 'Resume with:', runnable here (its python is this python)."""
    lines = stderr.splitlines()
    i = next((i for i, line in enumerate(lines) if line.rstrip().endswith("Resume with:")), None)
    assert i is not None and i + 1 < len(lines), f"no 'Resume with:' command in stderr:\n{stderr}"
    argv = shlex.split(lines[i + 1])
    assert "--resume" in argv, lines[i + 1]
    assert os.path.basename(argv[1]) == "train_infogan.py", lines[i + 1]
    return [sys.executable] + argv[1:]


def assert_no_traceback(proc):
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def assert_same_run(ref_dir, other_dir):
    """Bit-exact: same weights, same optimiser state, same loss history, same place in training."""
    a, b = T.load_checkpoint(ref_dir), T.load_checkpoint(other_dir)
    assert (b["epoch"], b["step"]) == (a["epoch"], a["step"])
    for net in ("netG", "netD", "netG_ema"):
        assert a[net].keys() == b[net].keys()
        differ = [k for k in a[net] if not torch.equal(a[net][k], b[net][k])]
        assert not differ, f"{net} differs from the uninterrupted run in {len(differ)} tensors, e.g. {differ[:4]}: " \
                           f"max |diff| {max(float((a[net][k].float() - b[net][k].float()).abs().max()) for k in differ)}"
    for opt in ("optD", "optGQ"):
        sa, sb = a[opt]["state"], b[opt]["state"]
        assert sa.keys() == sb.keys()
        differ = [(i, k) for i in sa for k in sa[i] if not torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k]))]
        assert not differ, f"{opt} state differs from the uninterrupted run: {differ[:4]}"
    assert len(b["history"]) == len(a["history"])
    assert b["history"] == a["history"], "losses.csv history differs from the uninterrupted run"


# ---------------------------------------------------------------------------- shared runs

class Lab:
    """Tiny data, plus training runs started in the background and collected on first use."""

    def __init__(self, root, data):
        self.root, self.data = root, data
        self.procs, self.results, self.lock = {}, {}, threading.Lock()

    def start_train(self, name, *args):
        out = os.path.join(self.root, name)
        self.procs[name] = (start("train_infogan.py", "--out", out, *args), out)

    def get(self, name):
        """The run folder of a finished background run (which must have succeeded)."""
        with self.lock:
            if name not in self.results:
                proc, out = self.procs[name]
                done = finish(proc)
                assert done.returncode == 0, f"background run {name} exited {done.returncode}:\n{done.stderr[-3000:]}"
                self.results[name] = out
            return self.results[name]

    def copy(self, name, dst):
        shutil.copytree(self.get(name), dst)
        return str(dst)


def auto_is_fp32():
    return T.autocast_dtype(torch.device("cpu"), "auto") is None


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Fake MNIST of N_TRAIN training images (STEPS steps of BATCH per epoch)."""
    return write_fake_mnist(str(tmp_path_factory.mktemp("robust_mnist")), n_train=N_TRAIN, n_test=20)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, data):
    """Reference runs, started in the background as soon as a test needs one of them."""
    lab = Lab(str(tmp_path_factory.mktemp("robust")), data)
    for precision in ("fp32",) + (() if auto_is_fp32() else ("auto",)):
        lab.start_train(f"ref-{precision}", *base_args(lab.data, precision), "--epochs", 2)
        lab.start_train(f"half-{precision}", *base_args(lab.data, precision), "--epochs", 1)
    yield lab
    for proc, _ in lab.procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


# ---------------------------------------------------------------------------- bad input: one line, exit 2

class Paths:
    """Inputs for the bad-input cases, made on first use (thread-safe: the cases run in a pool)."""

    def __init__(self, lab, root):
        self.lab, self.root, self.lock = lab, root, threading.Lock()
        self.a_file = os.path.join(root, "a_file.txt")
        with open(self.a_file, "w") as f:
            f.write("not a folder\n")

    def out(self, name):
        return os.path.join(self.root, "out-" + name)

    @property
    def missing_data(self):
        return os.path.join(self.root, "no-mnist-here")

    @property
    def run(self):
        """A finished 1-epoch run trained with --no-eval: ckpt.pt, g.pt, no code->digit mapping."""
        return self.lab.get("half-fp32")

    def ckpt(self, kind):
        path = os.path.join(self.root, f"bad-{kind}.pt")
        with self.lock:
            if kind == "missing" or os.path.exists(path):
                return path
            if kind == "empty":
                open(path, "wb").close()
            elif kind == "truncated":
                with open(os.path.join(self.run, "ckpt.pt"), "rb") as f:
                    blob = f.read()
                with open(path, "wb") as f:
                    f.write(blob[:len(blob) // 2])
            elif kind == "random-bytes":
                with open(path, "wb") as f:
                    f.write(np.random.default_rng(0).bytes(20000))
            elif kind == "plain-dict":
                torch.save({"netG": {"w": torch.zeros(3)}, "epoch": 1}, path)
            elif kind == "cgan-kind":
                torch.save({"kind": "cgan", "config": {}}, path)
        return path


def _train_case(extra, word):
    return ("train_infogan.py", lambda p, name: ["--data-root", p.lab.data, "--out", p.out(name), "--epochs", 1,
                                                  "--no-eval", *extra(p)], word)


def _sample_case(extra, word):
    return ("sample.py", lambda p, name: ["--ckpt", os.path.join(p.run, "g.pt"), *extra(p)], word)


CKPT_WORDS = {"missing": "not found", "empty": "checkpoint is empty", "truncated": "cannot read checkpoint",
              "random-bytes": "cannot read checkpoint", "plain-dict": "not a checkpoint", "cgan-kind": "not infogan"}
SAMPLE_CKPT_KINDS = ("missing", "truncated", "plain-dict")  # sample.py shares training.load_checkpoint

# No network for the download attempt, even on a machine that has one: a proxy that refuses at once.
OFFLINE = {k: "http://127.0.0.1:9" for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
OFFLINE.update(no_proxy="", NO_PROXY="")

# id: (script, argv builder, a phrase the error line must contain)
BAD_INPUT = {
    "train-data-missing-no-download": _train_case(lambda p: ["--data-root", p.missing_data], "MNIST not found"),
    "train-data-root-is-a-file": _train_case(lambda p: ["--data-root", p.a_file], "not a readable folder"),
    "train-noise-dim-0": _train_case(lambda p: ["--noise-dim", 0], "--noise-dim"),
    "train-noise-scale-0": _train_case(lambda p: ["--noise-scale", 0], "--noise-scale"),
    "train-n-cat-1": _train_case(lambda p: ["--n-cat", 1], "--n-cat"),
    "train-n-cont-negative": _train_case(lambda p: ["--n-cont", -1], "--n-cont"),
    "train-info-warmup-negative": _train_case(lambda p: ["--info-warmup", -1], "--info-warmup"),
    "train-lambda-aug-negative": _train_case(lambda p: ["--lambda-aug", -1], "--lambda-aug"),
    "train-lambda-real-negative": _train_case(lambda p: ["--lambda-real", -1], "--lambda-real"),
    "train-g-ema-1": _train_case(lambda p: ["--g-ema", 1], "--g-ema"),
    "train-q-std-unknown": _train_case(lambda p: ["--q-std", "zero"], "--q-std"),
    "train-batch-size-0": _train_case(lambda p: ["--batch-size", 0], "--batch-size"),
    "train-batch-larger-than-data": _train_case(lambda p: ["--batch-size", 10 * N_TRAIN], "--batch-size"),
    "train-epochs-0": _train_case(lambda p: ["--epochs", 0], "--epochs"),
    "train-out-under-a-file": ("train_infogan.py", lambda p, name: ["--data-root", p.lab.data, "--epochs", 1, "--no-eval",
                                                                    "--out", os.path.join(p.a_file, "run")], "output folder"),
    **{f"train-resume-{kind}": ("train_infogan.py",
                                (lambda kind: lambda p, name: ["--data-root", p.lab.data, "--epochs", 2, "--no-eval",
                                                               "--resume", p.ckpt(kind)])(kind), word)
       for kind, word in CKPT_WORDS.items()},
    **{f"sample-ckpt-{kind}": ("sample.py", (lambda kind: lambda p, name: ["--ckpt", p.ckpt(kind), "--grid", "--out",
                                                                           os.path.join(p.out(name), "x.png")])(kind), word)
       for kind, word in CKPT_WORDS.items() if kind in SAMPLE_CKPT_KINDS},
    "sample-sweep-beyond-n-cont": _sample_case(lambda p: ["--sweep", 3], "--sweep"),
    "sample-code-beyond-n-cat": _sample_case(lambda p: ["--code", 10], "--code"),
    "sample-digit-10": _sample_case(lambda p: ["--digit", 10], "--digit"),
    "sample-digit-negative": _sample_case(lambda p: ["--digit", -1], "--digit"),
    "sample-digit-without-mapping": _sample_case(lambda p: ["--digit", 3], "mapping"),
    "sample-out-bad-extension": _sample_case(lambda p: ["--grid", "--out", os.path.join(p.root, "grid.jpg")], ".png or .npz"),
    "sample-out-under-a-file": _sample_case(lambda p: ["--grid", "--out", os.path.join(p.a_file, "sub", "grid.png")],
                                            "output folder"),
}


@pytest.fixture(scope="module")
def bad_input(lab, tmp_path_factory):
    """All bad-input commands, run 4 at a time in the background: {case id: future of (proc, seconds)}."""
    paths = Paths(lab, str(tmp_path_factory.mktemp("bad_input")))

    def go(name):
        script, argv, _ = BAD_INPUT[name]
        t0 = time.monotonic()
        env = {**ENV, **(OFFLINE if name == "train-data-missing-no-download" else {})}
        proc = run(script, *argv(paths, name), env=env, check=False, timeout=120)
        return proc, time.monotonic() - t0

    # cases that need a trained run last, so the others overlap with its training
    order = sorted(BAD_INPUT, key=lambda name: ("sample" in name or "resume" in name, name))
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield {name: pool.submit(go, name) for name in order}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_clear_line_and_exit_2(bad_input, case):
    proc, seconds = bad_input[case].result()
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert_no_traceback(proc)
    assert proc.returncode == 2, f"exit code {proc.returncode}, stderr:\n{proc.stderr[-2000:]}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one 'error:' line, got:\n{proc.stderr}"
    assert BAD_INPUT[case][2].lower() in lines[0].lower(), lines[0]
    if case == "train-data-missing-no-download":
        assert seconds < 60, f"giving up on the MNIST download took {seconds:.0f}s"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads a chmod 000 folder anyway")
def test_unreadable_data_folder_is_one_clear_line(tmp_path):
    data = tmp_path / "locked"
    write_fake_mnist(str(data), n_train=60, n_test=10)
    os.chmod(data, 0)
    try:
        proc = train("--data-root", data, "--out", tmp_path / "run", "--epochs", 1, "--no-eval", check=False)
    finally:
        os.chmod(data, 0o755)
    assert_no_traceback(proc)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(data) in lines[0], proc.stderr


# ---------------------------------------------------------------------------- bit-exact resume

PRECISIONS = ["fp32", pytest.param("auto", marks=pytest.mark.skipif(
    auto_is_fp32(), reason="--precision auto is fp32 on this machine: same as the fp32 case"))]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_resume_after_one_epoch_is_bit_exact(lab, tmp_path, precision):
    """2 epochs in one go == 1 epoch, then --resume to 2 (same seed, CPU)."""
    out = lab.copy(f"half-{precision}", tmp_path / "run")
    proc = train(*base_args(lab.data, precision), "--epochs", 2, "--resume", out)
    assert "epoch 2/2" in proc.stdout and "epoch 1/2" not in proc.stdout
    assert re.search(r"resuming .* at epoch 2, step 0", proc.stderr), proc.stderr
    assert_same_run(lab.get(f"ref-{precision}"), out)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_sigint_mid_epoch_saves_and_resume_command_is_bit_exact(lab, tmp_path, precision):
    """SIGINT (Ctrl-C) during epoch 1: finish the step, save, print the resume command, exit 130.
    Running that command completes the run exactly as if it had never stopped. (SIGTERM: the
    --resume tests below, which stop their runs with it.)"""
    signum = signal.SIGINT
    out = str(tmp_path / "run")
    proc = interrupt(start("train_infogan.py", *base_args(lab.data, precision), "--epochs", 2, "--out", out), signum)
    assert_no_traceback(proc)
    assert proc.returncode == 128 + signum, f"exit {proc.returncode}:\n{proc.stderr[-2000:]}"
    m = re.search(r"interrupted at epoch 1, step (\d+)/(\d+); saved", proc.stderr)
    assert m, f"no mid-epoch interruption message:\n{proc.stderr}"
    step = int(m.group(1))
    assert 0 < step < STEPS and int(m.group(2)) == STEPS
    ckpt = T.load_checkpoint(out, kind="infogan")
    assert (ckpt["epoch"], ckpt["step"]) == (0, step)
    assert len(ckpt["history"]) == step  # the finished steps' losses are kept
    with open(os.path.join(out, "losses.csv")) as f:
        assert len(f.read().strip().splitlines()) == 1 + step

    argv = resume_argv(proc.stderr)
    resumed = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "PYTHONHASHSEED": "0", **ENV})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert re.search(rf"resuming .* at epoch 1, step {step}\b", resumed.stderr), resumed.stderr
    assert "epoch 1/2" in resumed.stdout and "epoch 2/2" in resumed.stdout
    assert_same_run(lab.get(f"ref-{precision}"), out)


# ---------------------------------------------------------------------------- kill -9

def test_sigkill_leaves_a_loadable_checkpoint_and_the_run_resumes(data, tmp_path):
    """kill -9 at any moment, ideally while ckpt.pt is being rewritten (its temp file exists): ckpt.pt
    still loads, and leftover temp files do not stop --resume."""
    out = tmp_path / "run"
    proc = start("train_infogan.py", *base_args(data), "--epochs", 1000, "--out", out)
    ckpt_path = out / "ckpt.pt"
    try:
        deadline = time.monotonic() + 120
        while not ckpt_path.exists():
            assert proc.poll() is None, f"exited {proc.returncode}: {proc.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.01)
        caught_mid_write, deadline = False, time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:  # busy-wait for the next save
            if any(name.startswith(".ckpt.pt.") for name in os.listdir(out)):
                caught_mid_write = True
                break
    finally:
        proc.kill()  # SIGKILL
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    ckpt = T.load_checkpoint(str(out), kind="infogan")
    assert ckpt["epoch"] >= 1 and ckpt["step"] == 0
    print(f"killed {'while writing' if caught_mid_write else 'between'} checkpoints, at epoch {ckpt['epoch']}; "
          f"left: {sorted(os.listdir(out))}")
    resumed = train(*base_args(data), "--epochs", ckpt["epoch"] + 1, "--resume", out)
    assert f"epoch {ckpt['epoch'] + 1}/{ckpt['epoch'] + 1}" in resumed.stdout
    assert T.load_checkpoint(str(out))["epoch"] == ckpt["epoch"] + 1


# ---------------------------------------------------------------------------- NaN

NAN_LINE = re.compile(r"^error: .*NaN.* epoch (\d+), step (\d+) \(iteration \d+\)", re.M)


@pytest.fixture(scope="module")
def nan_run(data, tmp_path_factory):
    """A fresh run with absurd learning rates: (run folder, finished process)."""
    out = tmp_path_factory.mktemp("nan") / "run"
    return out, train(*base_args(data), "--epochs", 2, "--lr-d", 1e30, "--lr-g", 1e30, "--out", out, check=False)


def test_nan_loss_stops_with_epoch_and_iteration(nan_run):
    """An absurd learning rate really makes the loss NaN/inf: the run stops and says where."""
    out, proc = nan_run
    assert_no_traceback(proc)
    assert proc.returncode != 0
    m = NAN_LINE.search(proc.stderr)
    assert m and m.group(1) == "1" and 1 <= int(m.group(2)) <= STEPS, proc.stderr
    assert "epoch 1/2" not in proc.stdout  # no epoch of NaN weights reported as done...
    assert not (out / "ckpt.pt").exists()  # ...or saved


def test_nan_in_first_epoch_does_not_claim_a_checkpoint_exists(nan_run):
    """With no good checkpoint yet, the message must not send the user to one."""
    out, proc = nan_run
    assert NAN_LINE.search(proc.stderr), proc.stderr
    assert not (out / "ckpt.pt").exists()
    assert "checkpoint is kept" not in proc.stderr, \
        f"claims a checkpoint that does not exist ({out / 'ckpt.pt'}):\n{proc.stderr}"


def test_nan_in_later_epoch_keeps_the_last_good_checkpoint(lab, tmp_path):
    """Epoch 1 trains fine; epoch 2 diverges (resumed with learning rates of 1e30, which --resume
    applies to the restored optimisers). ckpt.pt and g.pt must still be the good epoch-1 ones."""
    out = lab.copy("half-fp32", tmp_path / "run")
    before = {name: open(os.path.join(out, name), "rb").read() for name in ("ckpt.pt", "g.pt")}
    proc = train(*base_args(lab.data), "--epochs", 2, "--lr-d", 1e30, "--lr-g", 1e30, "--resume", out, check=False)
    assert_no_traceback(proc)
    assert proc.returncode != 0
    m = NAN_LINE.search(proc.stderr)
    assert m and m.group(1) == "2" and 1 <= int(m.group(2)) <= STEPS, proc.stderr
    assert out in proc.stderr  # says where the good checkpoint is
    for name, blob in before.items():
        assert open(os.path.join(out, name), "rb").read() == blob, f"{name} was overwritten after the NaN"
    assert T.load_checkpoint(out)["epoch"] == 1


# ---------------------------------------------------------------------------- --resume vs. flags

def warnings_of(stderr):
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_resume_with_contradicting_flags_keeps_checkpoint_arch_and_warns(lab, tmp_path):
    out = lab.copy("half-fp32", tmp_path / "run")
    conflicting = {"--arch": "dcgan", "--noise-dim": 52, "--n-cat": 12, "--n-cont": 3, "--noise": "normal"}
    flags = [x for kv in conflicting.items() for x in kv]
    proc = interrupt(start("train_infogan.py", *base_args(lab.data), "--epochs", 2, "--resume", out, *flags),
                     signal.SIGTERM)
    assert_no_traceback(proc)
    assert proc.returncode == 143, proc.stderr[-2000:]  # SIGTERM: finish the step, save, exit 128 + 15
    m = re.search(r"interrupted at epoch 2, step (\d+)/(\d+); saved", proc.stderr)
    assert m and 0 < int(m.group(1)) < STEPS, proc.stderr
    warnings = warnings_of(proc.stderr)
    for flag, value in conflicting.items():
        assert any(flag in w and str(value) in w for w in warnings), f"no warning naming {flag} {value}:\n{proc.stderr}"
    ckpt = T.load_checkpoint(out)
    assert ckpt["config"] == dict(arch="paper", noise_dim=62, n_cat=10, n_cont=2, noise="uniform", noise_scale=1.0,
                                  img_size=28)
    assert (ckpt["epoch"], ckpt["step"]) == (1, int(m.group(1)))  # it trained in epoch 2, with the paper nets
    assert "--resume" in " ".join(resume_argv(proc.stderr))


def test_resume_warns_even_when_the_ignored_flag_is_given_at_its_default(data, tmp_path):
    """A run trained with --noise-dim 52 --n-cont 0, resumed with an explicit --noise-dim 62 --n-cont 2
    (which happen to be the defaults): those flags are ignored too, so they must be named."""
    out = str(tmp_path / "run")
    first = interrupt(start("train_infogan.py", *base_args(data), "--epochs", 2, "--out", out,
                            "--noise-dim", 52, "--n-cont", 0), signal.SIGTERM)
    assert_no_traceback(first)
    assert first.returncode == 143, first.stderr[-2000:]
    step = T.load_checkpoint(out)["step"]
    assert 0 < step < STEPS and f"interrupted at epoch 1, step {step}/{STEPS}; saved" in first.stderr, first.stderr
    assert "--resume" in " ".join(resume_argv(first.stderr))
    proc = interrupt(start("train_infogan.py", *base_args(data), "--epochs", 2, "--resume", out,
                           "--noise-dim", 62, "--n-cont", 2), signal.SIGTERM)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert re.search(rf"resuming .* at epoch 1, step {step}\b", proc.stderr), proc.stderr  # continues where it stopped
    ckpt = T.load_checkpoint(out)
    assert ckpt["config"]["noise_dim"] == 52 and ckpt["config"]["n_cont"] == 0 and ckpt["step"] > step
    warnings = warnings_of(proc.stderr)
    for flag in ("--noise-dim", "--n-cont"):
        assert any(flag in w for w in warnings), f"--resume ignored {flag} silently:\n{proc.stderr}"


def test_resume_from_a_generator_only_file_is_one_clear_line(lab, tmp_path):
    out = lab.copy("half-fp32", tmp_path / "run")
    proc = train(*base_args(lab.data), "--epochs", 2, "--resume", os.path.join(out, "g.pt"), check=False)
    assert_no_traceback(proc)
    assert proc.returncode == 2 and "only a generator" in proc.stderr


def test_resume_without_flags_continues_with_the_runs_own_settings(lab, tmp_path):
    """`--resume RUN` alone: data root, epochs and learning rates come from the checkpoint's run."""
    out = lab.copy("half-fp32", tmp_path / "run")
    saved = T.load_checkpoint(out)["args"]
    proc = train("--resume", out, "--epochs", saved["epochs"] + 1, check=False)
    assert proc.returncode == 0, proc.stderr
    ckpt = T.load_checkpoint(out)
    assert ckpt["epoch"] == saved["epochs"] + 1
    for key in ("data_root", "batch_size", "lr_d", "lr_g", "no_eval", "precision", "seed"):
        assert ckpt["args"][key] == saved[key], key
