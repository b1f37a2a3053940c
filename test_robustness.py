"""Nothing lost, nothing cryptic: interruption, resume and bad input, on tiny fake MNIST (conftest.py), CPU.

* kill -9 after the new ckpt.pt is written and before it replaces the old one: the old one loads, and
  --resume (past the leftover temp file and the dead run's lock) ends bit-exact with the run done in one go.
* SIGINT / SIGTERM during a given step finish that step, save, print the command that resumes and exit
  130 / 143; that command ends with exactly the weights, optimiser state and loss history of the run
  done in one go.
* A NaN loss stops the run with a message naming epoch, step and iteration; the last good checkpoint
  stays byte for byte.
* --resume keeps the checkpoint's architecture and warns about each flag that tried to change it.
* Bad input (missing/unreadable data, broken checkpoints, out-of-range flags, unwritable output) gives one
  line 'error: ...' on stderr, exit code 2, no traceback.

InfoGAN trains with FC layers 64 wide instead of the paper's 1024 (conftest.narrow_infogan), in this process
and in the wrapped ones: the same code paths, checkpoints a twelfth of the size.

No outcome depends on timing or on who runs the tests: failures and signals are injected at exact points
by a wrapper (INJECT below) that runs the real script; the unreadable folder is simulated (root reads any).
Runs that are killed or sent SIGTERM are subprocesses, with OMP_NUM_THREADS=1
unless it is set (on a small shared machine OpenMP's spinning threads make training steps several times
slower). The reference runs they are compared with (module fixture `lab`), the bad-input table and the
runs that need no process of their own run each script's main() in this process (conftest.cli): the
same code path, without seconds of interpreter start-up per run; a few bad-input cases also go through
the real entry points.
"""
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

import training as T
from conftest import NARROW_FC, REPO, cli, narrow_infogan, run, write_fake_mnist

ENV = {}  # this file's runs' environment on top of os.environ (one thread: conftest): the tools fixture adds GAN_CACHE_DIR
N_TRAIN, BATCH = 150, 50
STEPS = N_TRAIN // BATCH  # 3 steps per epoch: room to stop in the middle of one


def base_args(data, precision="fp32"):
    return ["--data-root", data, "--batch-size", BATCH, "--no-eval", "--seed", 7, "--precision", precision]


def train(*args, inject):
    """train_infogan.py ARGS as a process of its own, through the INJECT wrapper with inject's
    {INJECT_...: value} (the same environment as conftest.run); its CompletedProcess, whatever its exit code."""
    return subprocess.run([sys.executable, INJECT_FILE, os.path.join(REPO, "train_infogan.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONHASHSEED": "0", **ENV, **{k: str(v) for k, v in inject.items()}})


# Runs a repo script as `python SCRIPT ARGS` would (same sys.argv, __main__), with failures injected at
# exact points, so what the tests see never depends on timing.
INJECT = r'''
import os, runpy, shutil, signal, sys
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
import training

if os.environ.get("INJECT_KILL"):  # NAME:N  kill -9 when a finished temp file is about to replace NAME the N-th time
    name, n = os.environ["INJECT_KILL"].rsplit(":", 1)
    renames = [0]

    def dying(real):
        def rename(src, dst, *args, **kwargs):
            if os.path.basename(os.fspath(dst)) == name:
                renames[0] += 1
                if renames[0] == int(n):
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst, *args, **kwargs)
        return rename
    os.replace, os.rename = dying(os.replace), dying(os.rename)

if os.environ.get("INJECT_FC_WIDTH"):  # W  InfoGAN's FC layers W wide, recorded in the run's config
    import models
    from conftest import narrow
    models.build_infogan = narrow(models.build_infogan, int(os.environ["INJECT_FC_WIDTH"]))

hooks = {}
if os.environ.get("INJECT_SIGNAL"):  # SIG:N  send SIGINT/SIGTERM to this process during the N-th training step
    sig, n = os.environ["INJECT_SIGNAL"].split(":")
    hooks[int(n)] = lambda stats: os.kill(os.getpid(), getattr(signal, "SIG" + sig)) or stats
if os.environ.get("INJECT_NAN"):  # N  the N-th training step's first statistic is NaN
    def nan(stats):
        if os.environ.get("INJECT_SNAPSHOT"):  # RUN:COPY  copy the run folder's checkpoints as they are now
            src, dst = os.environ["INJECT_SNAPSHOT"].split(os.pathsep)
            os.makedirs(dst)
            for f in ("ckpt.pt", "g.pt"):
                shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))
        return (stats[0] * float("nan"),) + tuple(stats[1:])
    hooks[int(os.environ["INJECT_NAN"])] = nan
if hooks:
    steps, train_epoch = [0], training.train_epoch

    def counting_train_epoch(state, epoch, n_items, step_fn, *args, **kwargs):
        def step(*a, **k):
            stats = step_fn(*a, **k)
            steps[0] += 1
            return hooks[steps[0]](stats) if steps[0] in hooks else stats
        return train_epoch(state, epoch, n_items, step, *args, **kwargs)
    training.train_epoch = counting_train_epoch

runpy.run_path(script, run_name="__main__")
'''
INJECT_FILE = None  # written by the module fixture `data`


def resume_argv(stderr):
    """The arguments of the train_infogan.py command printed after 'Resume with:'."""
    lines = stderr.splitlines()
    i = next((i for i, line in enumerate(lines) if line.rstrip().endswith("Resume with:")), None)
    assert i is not None and i + 1 < len(lines), f"no 'Resume with:' command in stderr:\n{stderr}"
    argv = shlex.split(lines[i + 1])
    assert "--resume" in argv, lines[i + 1]
    assert argv[0] == "python" and os.path.basename(argv[1]) == "train_infogan.py", lines[i + 1]
    return argv[2:]


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
    """Tiny data, plus the reference runs (in this process), each trained on first use."""

    def __init__(self, root, data, runs):
        self.root, self.data, self.runs, self.done = root, data, runs, set()

    def get(self, name):
        """The run folder of a reference run, trained the first time it is asked for."""
        out = os.path.join(self.root, name)
        if name not in self.done:
            cli("train_infogan.py", "--out", out, *self.runs[name], env=ENV, check=True)
            self.done.add(name)
        return out

    def copy(self, name, dst):
        shutil.copytree(self.get(name), dst)
        return str(dst)


@pytest.fixture(scope="module", autouse=True)
def narrow_networks():
    """The trainer's InfoGAN networks in this process, for the whole module (its reference runs too)."""
    with pytest.MonkeyPatch.context() as mp:
        narrow_infogan(mp)
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Fake MNIST of N_TRAIN training images (STEPS steps of BATCH per epoch); also writes the INJECT
    wrapper and gives the runs a cache folder of their own."""
    global INJECT_FILE
    tools = tmp_path_factory.mktemp("robust_tools")
    INJECT_FILE = str(tools / "inject.py")
    with open(INJECT_FILE, "w") as f:
        f.write(INJECT)
    ENV["GAN_CACHE_DIR"] = str(tools / "cache")
    ENV["INJECT_FC_WIDTH"] = str(NARROW_FC)
    return write_fake_mnist(str(tmp_path_factory.mktemp("robust_mnist")), n_train=N_TRAIN, n_test=20)


# the run the --resume tests start from: 1 epoch with a non-default architecture
HALF_CONFIG = dict(arch="paper", noise_dim=52, n_cat=10, n_cont=0, noise="uniform")


@pytest.fixture(scope="module")
def lab(tmp_path_factory, data):
    """Reference runs: 2 epochs in one go (fp32), and 1 epoch of HALF_CONFIG in --precision auto
    (bf16 autocast where the CPU has it)."""
    return Lab(str(tmp_path_factory.mktemp("robust")), data, {
        "ref": [*base_args(data), "--epochs", 2],
        "half": [*base_args(data, "auto"), "--epochs", 1, "--noise-dim", 52, "--n-cont", 0]})


# ---------------------------------------------------------------------------- bad input: one line, exit 2

class Pickled:
    """A Python object other than tensors, numbers, strings, lists and dicts: unpickling such a file could run code."""


class Inputs:
    """The files and folders the bad-input cases need, made once; none needs a trained run."""

    def __init__(self, root, data):
        from models import build_infogan, infogan_noise
        self.root, self.data = root, data
        self.a_file = self.write("a_file.txt", b"not a folder\n")
        config = dict(HALF_CONFIG, n_cont=2, img_size=28)
        with T.isolated_rng():
            netG, _ = build_infogan(config)
            g = dict(kind="infogan", config=config, netG=netG.state_dict(), fixed_noise=infogan_noise(10, config), epoch=1)
        self.g_unmapped = self.save("g.pt", dict(g, code_to_digit=None))  # as a run trained with --no-eval
        self.g_no_5 = self.save("g-no-5.pt", dict(g, code_to_digit={c: 6 if c == 5 else c for c in range(10)}))
        blob = open(self.g_unmapped, "rb").read()
        self.ckpts = {"missing": os.path.join(root, "no-such-file.pt"),
                      "empty": self.write("empty.pt", b""),
                      "truncated": self.write("truncated.pt", blob[:len(blob) // 2]),
                      "random-bytes": self.write("random.pt", np.random.default_rng(0).bytes(20000)),
                      "plain-dict": self.save("plain.pt", {"netG": {"w": torch.zeros(3)}, "epoch": 1}),
                      "cgan-kind": self.save("cgan.pt", {"kind": "cgan", "config": {}}),
                      "python-object": self.save("object.pt", {"kind": "infogan", "config": {}, "x": Pickled()}),
                      "generator-only": self.g_unmapped}

    def write(self, name, blob):
        path = os.path.join(self.root, name)
        with open(path, "wb") as f:
            f.write(blob)
        return path

    def save(self, name, obj):
        path = os.path.join(self.root, name)
        torch.save(obj, path)
        return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, data):
    return Inputs(str(tmp_path_factory.mktemp("bad_input")), data)


def _train_case(extra, phrase):
    return ("train_infogan.py", lambda p, out: ["--data-root", p.data, "--out", out, "--epochs", 1, "--no-eval",
                                                *extra(p)], phrase)


def _sample_case(extra, phrase):
    return ("sample.py", lambda p, out: ["--ckpt", p.g_unmapped, *extra(p)], phrase)


CKPT_WORDS = {"missing": "not found", "empty": "checkpoint is empty", "truncated": "cannot load checkpoint",
              "random-bytes": "cannot load checkpoint", "plain-dict": "not a checkpoint",
              "cgan-kind": "is a cgan checkpoint, not infogan; use it with train_cgan.py --resume, sample.py or evaluate.py",
              "python-object": "could run code", "generator-only": "only a generator"}
SAMPLE_CKPT_KINDS = ("missing", "truncated", "plain-dict")  # sample.py shares training.load_checkpoint

# No network for the download attempt, even on a machine that has one: a proxy that refuses at once.
OFFLINE = {k: "http://127.0.0.1:9" for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
OFFLINE.update(no_proxy="", NO_PROXY="")

# id: (script, argv builder (inputs, an --out path of its own), a phrase the error line must contain)
BAD_INPUT = {
    # the cause named: torchvision puts it on its message's last line
    "train-data-missing-no-download": _train_case(lambda p: ["--data-root", os.path.join(p.root, "no-mnist")],
                                                  "and the download failed (<urlopen error"),
    "train-data-root-is-a-file": _train_case(lambda p: ["--data-root", p.a_file], "not a readable folder"),
    "train-noise-dim-0": _train_case(lambda p: ["--noise-dim", 0], "--noise-dim must be > 0"),
    "train-n-cat-1": _train_case(lambda p: ["--n-cat", 1], "--n-cat must be >= 2"),
    "train-n-cont-negative": _train_case(lambda p: ["--n-cont", -1], "--n-cont must be >= 0"),
    "train-lambda-aug-negative": _train_case(lambda p: ["--lambda-aug", -1], "--lambda-aug must be >= 0"),
    "train-g-ema-1": _train_case(lambda p: ["--g-ema", 1], "--g-ema must be in [0, 1)"),
    "train-lr-g-0": _train_case(lambda p: ["--lr-g", 0], "--lr-g must be > 0"),
    "train-beta1-1": _train_case(lambda p: ["--beta1", 1], "--beta1 and --beta2 must be in [0, 1)"),
    "train-eval-samples-0": _train_case(lambda p: ["--eval-samples", 0], "--eval-samples must be > 0"),
    "train-q-std-unknown": _train_case(lambda p: ["--q-std", "zero"], "--q-std"),
    "train-batch-size-0": _train_case(lambda p: ["--batch-size", 0], "--batch-size must be > 0"),
    "train-batch-larger-than-data": _train_case(lambda p: ["--batch-size", 10 * N_TRAIN], "larger than the data set"),
    "train-epochs-0": _train_case(lambda p: ["--epochs", 0], "--epochs must be >= 1"),
    "train-out-under-a-file": _train_case(lambda p: ["--out", os.path.join(p.a_file, "run")], "output folder"),
    **{f"train-resume-{kind}": ("train_infogan.py",
                                (lambda kind: lambda p, out: ["--data-root", p.data, "--epochs", 2, "--no-eval",
                                                              "--resume", p.ckpts[kind]])(kind), phrase)
       for kind, phrase in CKPT_WORDS.items()},
    **{f"sample-ckpt-{kind}": ("sample.py", (lambda kind: lambda p, out: ["--ckpt", p.ckpts[kind], "--grid", "--out",
                                                                          os.path.join(out, "x.png")])(kind), phrase)
       for kind, phrase in CKPT_WORDS.items() if kind in SAMPLE_CKPT_KINDS},
    "sample-sweep-beyond-n-cont": _sample_case(lambda p: ["--sweep", 3], "--sweep 3 is out of range"),
    "sample-code-beyond-n-cat": _sample_case(lambda p: ["--code", 10], "--code 10 is out of range"),
    "sample-two-modes": _sample_case(lambda p: ["--code", 1, "--sweep", 1], "choose one of"),
    "sample-n-0": _sample_case(lambda p: ["--code", 1, "--n", 0], "--n must be > 0"),
    "sample-n-with-grid": _sample_case(lambda p: ["--grid", "--n", 5], "--n does not apply to --grid"),
    "sample-digit-10": _sample_case(lambda p: ["--digit", 10], "--digit must be 0-9"),
    "sample-digit-negative": _sample_case(lambda p: ["--digit", -1], "--digit must be 0-9"),
    "sample-digit-without-mapping": _sample_case(lambda p: ["--digit", 3], "no code->digit mapping"),
    "sample-digit-no-value-draws-it": ("sample.py", lambda p, out: ["--ckpt", p.g_no_5, "--digit", 5],
                                       "maps to digit 5"),
    "sample-labels-on-infogan": _sample_case(lambda p: ["--labels", "red cube"], "InfoGAN checkpoint"),
    "sample-out-bad-extension": _sample_case(lambda p: ["--grid", "--out", os.path.join(p.root, "grid.jpg")],
                                             ".png or .npz"),
    "sample-out-under-a-file": _sample_case(lambda p: ["--grid", "--out", os.path.join(p.a_file, "sub", "grid.png")],
                                            "output folder"),
}


def assert_one_line_error(proc, phrase):
    assert_no_traceback(proc)
    assert proc.returncode == 2, f"exit code {proc.returncode}, stderr:\n{proc.stderr[-2000:]}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one 'error:' line, got:\n{proc.stderr}"
    assert phrase.lower() in lines[0].lower(), lines[0]


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_clear_line_and_exit_2(inputs, tmp_path, case):
    script, argv, phrase = BAD_INPUT[case]
    proc = cli(script, *argv(inputs, str(tmp_path / "out")), env={**ENV, **OFFLINE})
    assert_one_line_error(proc, phrase)
    if case == "train-data-missing-no-download":  # the failed download leaves no empty MNIST/raw/ behind
        assert not os.path.exists(os.path.join(inputs.root, "no-mnist"))


@pytest.mark.parametrize("case", ["train-resume-truncated", "sample-digit-without-mapping"])
def test_bad_input_through_the_real_entry_points(inputs, tmp_path, case):
    """The table above runs main() in-process; these go through `python SCRIPT`, as a user types them."""
    script, argv, phrase = BAD_INPUT[case]
    assert_one_line_error(run(script, *argv(inputs, str(tmp_path / "out")), env=ENV, check=False), phrase)


def deny_reading(monkeypatch, folder):
    """Make `folder` unreadable the way chmod 000 does for a user who is not root (root reads any
    folder, and the tests run as root in CI): the folder itself can be stat'ed, but listing it,
    checking access to it and opening or stat'ing anything inside it fail with EACCES."""
    import builtins
    folder = os.path.abspath(folder)

    def denied(path, inside_only=False):
        try:
            p = os.path.abspath(os.fsdecode(path))
        except TypeError:  # a file descriptor
            return False
        return p.startswith(folder + os.sep) or (p == folder and not inside_only)

    def refuse(path):
        raise PermissionError(13, "Permission denied", os.fsdecode(path))

    real = {name: getattr(os, name) for name in ("access", "listdir", "scandir", "stat")}
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda file, *a, **k: refuse(file) if denied(file) else real_open(file, *a, **k))
    monkeypatch.setattr(os, "access", lambda path, mode, *a, **k: False if denied(path) else real["access"](path, mode, *a, **k))
    monkeypatch.setattr(os, "listdir", lambda path=".": refuse(path) if denied(path) else real["listdir"](path))
    monkeypatch.setattr(os, "scandir", lambda path=".": refuse(path) if denied(path) else real["scandir"](path))
    monkeypatch.setattr(os, "stat", lambda path, *a, **k: refuse(path) if denied(path, inside_only=True)
                        else real["stat"](path, *a, **k))


def test_unreadable_data_folder_is_one_clear_line(inputs, tmp_path, monkeypatch):
    data = str(tmp_path / "locked")
    shutil.copytree(inputs.data, data)
    deny_reading(monkeypatch, data)
    proc = cli("train_infogan.py", "--data-root", data, "--out", tmp_path / "run", "--epochs", 1, "--no-eval",
               env={**ENV, **OFFLINE})
    monkeypatch.undo()
    assert_one_line_error(proc, data)


# ---------------------------------------------------------------------------- kill -9 mid-save, bit-exact resume

def test_kill_between_writing_and_renaming_the_checkpoint_loses_nothing(lab, tmp_path):
    """kill -9 when epoch 2's ckpt.pt is completely written to its temp file but has not replaced the
    old one: ckpt.pt is still epoch 1's and loads; --resume, past the leftover temp file and the dead
    run's lock, ends with exactly the weights, optimiser state and losses of the run done in one go."""
    out = str(tmp_path / "run")
    proc = train(*base_args(lab.data), "--epochs", 2, "--out", out, inject={"INJECT_KILL": "ckpt.pt:2"})
    assert proc.returncode == -signal.SIGKILL, f"exit {proc.returncode}:\n{proc.stderr[-2000:]}"
    assert [f for f in os.listdir(out) if f.startswith(".ckpt.pt.")], \
        f"no temp file of the new checkpoint: it was not written beside ckpt.pt first ({sorted(os.listdir(out))})"
    ckpt = T.load_checkpoint(out, kind="infogan")
    assert (ckpt["epoch"], ckpt["step"], len(ckpt["history"])) == (1, 0, STEPS)
    assert T.load_checkpoint(os.path.join(out, "g.pt"))["epoch"] == 1
    resumed = cli("train_infogan.py", *base_args(lab.data), "--epochs", 2, "--resume", out, env=ENV, check=True)
    assert "epoch 2/2" in resumed.stdout and "epoch 1/2" not in resumed.stdout
    assert re.search(r"resuming .* at epoch 2, step 0", resumed.stderr), resumed.stderr
    assert_same_run(lab.get("ref"), out)


def test_sigint_mid_epoch_saves_and_resume_command_is_bit_exact(lab, tmp_path, monkeypatch):
    """SIGINT (Ctrl-C) during step 2 of epoch 1: finish the step, save, print the resume command, exit
    130. Running that command completes the run exactly as if it had never stopped, and counts the
    epoch's time before the stop. In this process (the signal is real, sent to it), on a clock that moves
    10 s each time it is read (the trainer reads it at an epoch's start, at the stop and at the epoch's end)."""
    import types
    clock = iter(range(10, 10000, 10))
    monkeypatch.setattr(T, "time", types.SimpleNamespace(time=lambda: float(next(clock))))
    steps, real_train_epoch = [0], T.train_epoch

    def ctrl_c_in_step_2(state, epoch, n_items, step_fn, *args, **kwargs):
        def step(*a):
            steps[0] += 1
            if steps[0] == 2:
                os.kill(os.getpid(), signal.SIGINT)
            return step_fn(*a)
        return real_train_epoch(state, epoch, n_items, step, *args, **kwargs)
    monkeypatch.setattr(T, "train_epoch", ctrl_c_in_step_2)
    out = str(tmp_path / "run")
    proc = cli("train_infogan.py", *base_args(lab.data), "--epochs", 2, "--out", out, env=ENV)
    assert_no_traceback(proc)
    assert proc.returncode == 128 + signal.SIGINT, f"exit {proc.returncode}:\n{proc.stderr[-2000:]}"
    assert f"interrupted at epoch 1, step 2/{STEPS}; saved" in proc.stderr, proc.stderr
    ckpt = T.load_checkpoint(out, kind="infogan")
    assert (ckpt["epoch"], ckpt["step"], len(ckpt["history"])) == (0, 2, 2)  # the finished steps' losses are kept
    assert ckpt["partial_seconds"] == 10.0
    with open(os.path.join(out, "losses.csv")) as f:
        assert len(f.read().strip().splitlines()) == 1 + 2

    resumed = cli("train_infogan.py", *resume_argv(proc.stderr), env=ENV, check=True)
    assert re.search(r"resuming .* at epoch 1, step 2\b", resumed.stderr), resumed.stderr
    assert f"epoch 1/2 | 20.0s, {N_TRAIN / 20:.0f} img/s" in resumed.stdout  # all the epoch's images, in both parts' time
    assert "epoch 2/2 | 10.0s" in resumed.stdout
    assert T.load_checkpoint(out)["epoch_seconds"] == [[1, 20.0], [2, 10.0]]
    assert_same_run(lab.get("ref"), out)


# ---------------------------------------------------------------------------- NaN

NAN_LINE = re.compile(r"^error: .*NaN.* epoch (\d+), step (\d+) \(iteration (\d+)\).*$", re.M)


def test_nan_loss_stops_with_epoch_and_iteration(data, tmp_path):
    """Absurd learning rates really make the loss NaN/inf in epoch 1: the run stops and says where, in
    numbers that agree with each other, saves nothing, and does not send the user to a checkpoint."""
    out = tmp_path / "run"
    proc = cli("train_infogan.py", *base_args(data), "--epochs", 2, "--lr-d", 1e30, "--lr-g", 1e30, "--out", out, env=ENV)
    assert_no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    m = NAN_LINE.search(proc.stderr)
    assert m, proc.stderr
    epoch, step, iteration = map(int, m.groups())
    assert epoch == 1 and 1 <= step <= STEPS and iteration == step, m.group(0)
    assert "epoch 1/2" not in proc.stdout  # no epoch of NaN weights reported as done...
    assert not (out / "ckpt.pt").exists()  # ...or saved
    assert "no checkpoint" in m.group(0) and "kept" not in m.group(0), f"claims a checkpoint that does not exist: {m.group(0)}"


def test_nan_in_later_epoch_keeps_the_last_good_checkpoint(data, tmp_path):
    """The loss of step 2 of epoch 2 (iteration 5) is NaN: the run stops with exit code 1 and says
    exactly that, and ckpt.pt and g.pt are byte for byte what epoch 1 saved."""
    out, snapshot = str(tmp_path / "run"), str(tmp_path / "epoch1")
    proc = train(*base_args(data), "--epochs", 2, "--out", out,
                 inject={"INJECT_NAN": 5, "INJECT_SNAPSHOT": out + os.pathsep + snapshot})
    assert_no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    m = NAN_LINE.search(proc.stderr)
    assert m and tuple(map(int, m.groups())) == (2, 2, STEPS + 2), proc.stderr
    assert f"kept in {out}" in m.group(0), m.group(0)  # says where the good checkpoint is
    assert "epoch 2/2" not in proc.stdout
    for name in ("ckpt.pt", "g.pt"):
        assert open(os.path.join(out, name), "rb").read() == open(os.path.join(snapshot, name), "rb").read(), \
            f"{name} was overwritten after the NaN"
    assert T.load_checkpoint(out)["epoch"] == 1


# ---------------------------------------------------------------------------- --resume vs. flags

def warnings_of(stderr):
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_resume_with_contradicting_flags_keeps_checkpoint_arch_and_warns(lab, tmp_path):
    """A run of HALF_CONFIG resumed with other model flags, --noise-dim and --n-cont among them at
    their defaults (which a user may type to 'go back to normal'): each is named in a warning, the
    checkpoint's model trains on. SIGTERM during the resumed run's first step: exit 143, saved."""
    out = lab.copy("half", tmp_path / "run")
    conflicting = {"--arch": "dcgan", "--noise-dim": 62, "--n-cat": 12, "--n-cont": 2, "--noise": "normal"}
    proc = train(*base_args(lab.data, "auto"), "--epochs", 2, "--resume", out, *[x for kv in conflicting.items() for x in kv],
                 inject={"INJECT_SIGNAL": "TERM:1"})
    assert_no_traceback(proc)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
    assert f"interrupted at epoch 2, step 1/{STEPS}; saved" in proc.stderr, proc.stderr
    warnings = warnings_of(proc.stderr)
    for flag, value in conflicting.items():
        assert any(flag in w and str(value) in w for w in warnings), f"no warning naming {flag} {value}:\n{proc.stderr}"
    ckpt = T.load_checkpoint(out)
    assert {k: ckpt["config"][k] for k in HALF_CONFIG} == HALF_CONFIG
    assert (ckpt["epoch"], ckpt["step"]) == (1, 1)  # it trained a step of epoch 2, with the checkpoint's nets
    resume_argv(proc.stderr)  # says how to go on


def test_resume_without_flags_continues_with_the_runs_own_settings(lab, tmp_path):
    """`--resume RUN` alone: data root, batch size, learning rates... come from the checkpoint's run."""
    out = lab.copy("half", tmp_path / "run")
    saved = T.load_checkpoint(out)["args"]
    proc = cli("train_infogan.py", "--resume", out, "--epochs", saved["epochs"] + 1, env=ENV)
    assert proc.returncode == 0, proc.stderr
    ckpt = T.load_checkpoint(out)
    assert ckpt["epoch"] == saved["epochs"] + 1
    for key in ("data_root", "batch_size", "lr_d", "lr_g", "no_eval", "precision", "seed"):
        assert ckpt["args"][key] == saved[key], key
    assert {k: ckpt["config"][k] for k in HALF_CONFIG} == HALF_CONFIG
