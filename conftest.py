"""Test fixtures: tiny data sets in the real on-disk formats, written by the tests themselves.

MNIST: IDX files in ROOT/MNIST/raw/ holding digits drawn with PIL's font (a learnable 10-class
stand-in for the real thing). i-CLEVR: the synthetic renderer of data.py, in the real layout.
"""
import contextlib
import importlib
import io
import os
import re
import shlex
import signal
import struct
import subprocess
import sys

# Two test files run at a time (pytest.ini) on runs far too small for a second thread to pay:
# one thread per process keeps the workers from contending for the cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402 (after the thread count, which numpy reads on import)
import pytest

REPO = os.path.dirname(os.path.abspath(__file__))


def draw_digits(labels, seed=0):
    """28x28 uint8 images of the given digits: a font glyph, randomly shifted, scaled and thickened."""
    from PIL import Image, ImageDraw, ImageFont
    rng = np.random.default_rng(seed)
    images = np.zeros((len(labels), 28, 28), np.uint8)
    for i, d in enumerate(labels):
        font = ImageFont.load_default(size=int(rng.integers(18, 24)))
        img = Image.new("L", (28, 28))
        x, y = rng.integers(5, 10), rng.integers(-2, 3)
        ImageDraw.Draw(img).text((x, y), str(int(d)), fill=255, font=font, stroke_width=int(rng.integers(0, 2)), stroke_fill=255)
        images[i] = np.asarray(img)
    return images


def write_idx(path, array):
    """IDX format of LeCun's MNIST files: magic (0, 0, 0x08 = ubyte, ndim), dims, raw bytes."""
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, array.ndim))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def write_fake_mnist(root, n_train=300, n_test=100, seed=0):
    raw = os.path.join(root, "MNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        write_idx(os.path.join(raw, f"{prefix}-images-idx3-ubyte"), draw_digits(labels, seed + n))
        write_idx(os.path.join(raw, f"{prefix}-labels-idx1-ubyte"), labels)
    return root


def run(script, *args, timeout=300, env=None, check=True, cwd=None):
    """Run one of the repo's command-line scripts as a user would; returns the CompletedProcess."""
    proc = subprocess.run([sys.executable, os.path.join(REPO, script), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONHASHSEED": "0", **(env or {})}, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def printed_sample_command(stdout):
    """The `sample with: python sample.py ...` command a trainer ends with, as argv after `python sample.py`."""
    argv = shlex.split(re.search(r"sample with: (.*)", stdout).group(1))
    assert argv[:2] == ["python", "sample.py"], argv
    return argv[2:]


def cli(script, *args, env=None, check=False):
    """Run a repo script's main() in this process, through training.run_cli, as `python script args`
    would: a CompletedProcess with its exit code, stdout and stderr (check: it must exit 0, as in run).
    No interpreter start-up, which costs seconds per command on a small machine; an exception that
    escapes run_cli (a traceback for the user) fails the calling test with that traceback."""
    import training
    module = importlib.import_module(os.path.splitext(script)[0])
    argv = [os.path.join(REPO, script), *map(str, args)]
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_env = sys.argv, dict(os.environ)
    # a trainer's StopRequest takes over Ctrl-C and SIGTERM: give them back to pytest afterwards
    saved_handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    sys.argv = argv
    os.environ.update({k: str(v) for k, v in (env or {}).items()})
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                training.run_cli(module.main)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        for sig, handler in saved_handlers.items():
            signal.signal(sig, handler)
    if check and code != 0:
        raise AssertionError(f"{script} {' '.join(map(str, args))} exited {code}:\n{err.getvalue()[-3000:]}")
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


# The InfoGAN runs of the robustness and fp16 tests: the paper's networks with FC layers 64 wide instead
# of 1024 (models.build_infogan). The same code paths, a ckpt.pt of 15.5 MB instead of 186.8 (two epochs
# of test_robustness.py's fake MNIST): saving, killing and resuming are tested in a fraction of the time.
# The width goes into the run's config, so its checkpoints rebuild as they were trained anywhere,
# unpatched processes included.
NARROW_FC = 64


def narrow(build_infogan, width=NARROW_FC):
    """build_infogan with FC layers `width` wide (also test_robustness.py's wrapped processes)."""
    def build_narrow(config):
        config.setdefault("fc_width", width)  # the config the trainer saves in its checkpoints
        return build_infogan(config)
    return build_narrow


def narrow_infogan(mp):
    """train_infogan.py's main() in this process builds the narrow networks (mp: a pytest MonkeyPatch)."""
    import train_infogan
    mp.setattr(train_infogan, "build_infogan", narrow(train_infogan.build_infogan))


# Two workers take whole files (pytest.ini). xdist hands them out most tests first; the slowest go
# first instead, so that the two workers finish together (measured per file with --durations=0).
SLOWEST_FIRST = ("test_files.py", "test_robustness.py", "test_smoke.py", "test_devices.py",
                 "test_robustness_cgan.py", "test_report.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(os.path.basename(str(item.path)), len(rank)))  # stable: a file keeps its order


@pytest.fixture(scope="package")
def mnist_root(tmp_path_factory):
    return write_fake_mnist(str(tmp_path_factory.mktemp("mnist")))


@pytest.fixture(scope="package")
def infogan_run(tmp_path_factory, mnist_root):
    """One real epoch of train_infogan.py on the tiny MNIST, shared by several tests; run in this
    process (test_robustness.py and test_report.py start the script as a process of its own)."""
    out = str(tmp_path_factory.mktemp("runs") / "infogan run")  # a space: printed commands must quote it
    proc = cli("train_infogan.py", "--data-root", mnist_root, "--out", out, "--epochs", 1, "--batch-size", 50,
               "--eval-samples", 20, "--seed", 3, check=True)
    return out, proc


@pytest.fixture(scope="package")
def iclevr_root(tmp_path_factory):
    """A tiny synthetic i-CLEVR (real layout), rendered through the real command line."""
    root = str(tmp_path_factory.mktemp("iclevr") / "synth")
    run("data.py", "make-iclevr", "--out", root, "--n", 48, "--seed", 0, "--workers", 1)
    return root


@pytest.fixture(scope="package")
def tiny_evaluator(tmp_path_factory, iclevr_root):
    """A (barely trained) evaluator in the coursework's {'model': state_dict} format."""
    import torch
    from models import build_evaluator
    path = str(tmp_path_factory.mktemp("evaluator") / "checkpoint.pth")
    torch.save({"model": build_evaluator().state_dict()}, path)
    return path


@pytest.fixture(scope="package", autouse=True)
def private_cache(tmp_path_factory):
    """Caches (decoded i-CLEVR, evaluators, the digit classifier) go to a folder of this test run,
    never to the user's cache folder; the scripts run by the tests inherit it."""
    os.environ["GAN_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    os.environ.pop("GAN_CACHE_DIR", None)
