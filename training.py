"""Training plumbing shared by train_infogan.py, train_cgan.py and sample.py.

Run folders, atomic checkpoints, resume, RNG state, image grids, CSV logs, curves, GIFs,
progress bars, Ctrl-C handling and one-line errors. Nothing here knows about a specific GAN.
"""
import os

# Ops the Apple-silicon (MPS) backend lacks then run on the CPU, with PyTorch's one-line warning,
# instead of stopping the run. It is read when torch loads, so the scripts import this module first.
os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")

import argparse
import copy
import csv
import glob
import hashlib
import json
import pickle
import platform
import random
import re
import shlex
import shutil
import signal
import sys
import tempfile
import time
import warnings
import zipfile

import numpy as np
import torch

CHECKPOINT = "ckpt.pt"      # full state: continue with --resume
GENERATOR = "g.pt"          # generator + config: all that sample.py needs


class UserError(Exception):
    """A problem with the user's input: reported as one line on stderr, exit code 2."""


def run_cli(main):
    """Call main(); turn UserError into one clear line and exit code 2, never a traceback."""
    try:
        code = main()
    except KeyboardInterrupt:  # Ctrl-C before training started (or a second Ctrl-C): nothing to save
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except TrainingStopped as e:  # NaN, Ctrl-C or SIGTERM inside training: already saved and said
        sys.exit(e.exit_code)
    finally:
        for lock in HELD_LOCKS:
            lock.release()
    sys.exit(code or 0)


class TrainingStopped(Exception):
    """Training ended early (NaN/inf, or a stop request after saving); run_cli exits with exit_code."""

    def __init__(self, exit_code):
        super().__init__(exit_code)
        self.exit_code = exit_code


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help of every script: every flag's default, and the script's docstring with its line breaks
    (the example commands would otherwise run together)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help  # no "(default: None)" after a help that already says what happens
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: 'error: ... (see --help)', exit code 2, no usage dump."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def add_output_flags(group, name, cache_what):
    """--out, --resume, --overwrite and --cache-dir, the same for both trainers."""
    group.add_argument("--out", default=None, help=f"run folder (default: runs/{name}, or runs/{name}-2, ... if taken)")
    group.add_argument("--resume", default=None, metavar="PATH", help="continue a run: its folder or its ckpt.pt")
    group.add_argument("--overwrite", action="store_true", help="replace the run already in --out (its files are removed once the data and every flag have passed)")
    group.add_argument("--cache-dir", default=None, help=f"where {cache_what} are cached (default: the user cache folder)")


def add_machine_flags(parser, seed_help="random seed"):
    group = parser.add_argument_group("machine")
    group.add_argument("--seed", type=int, default=1, help=seed_help)
    group.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA, then Apple silicon (mps), then the CPU")
    group.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto: bf16 on GPUs that have it, fp16 + gradient scaling on older ones; on a CPU with native "
                       "bf16, bf16 only where a timing shows it faster (once per CPU); else fp32")


def check(condition, message):
    if not condition:
        raise UserError(message)


# ---------------------------------------------------------------------------- devices, precision, RNG

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def mps_available():
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def pick_device(name):
    """auto: a CUDA GPU, else Apple silicon (MPS), else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"
    check(name != "cuda" or torch.cuda.is_available(), "--device cuda was asked for but no CUDA GPU is available")
    check(name != "mps" or mps_available(), "--device mps was asked for but this machine has no Apple-silicon GPU")
    return torch.device(name)


def cpu_has_native_bf16():
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def cpu_has_native_fp16():
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_fp16_supported()


def pick_precision(device, name):
    """auto: bf16 autocast where bf16 is native (CUDA compute capability >= 8.0; CPUs with
    AVX512-BF16/AMX, where it is also measured faster); fp16 autocast with a gradient scaler on older
    CUDA GPUs (T4, V100, GTX 10xx, RTX 20xx), where bf16 is only emulated and slower than fp32; fp32
    elsewhere (MPS included)."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"
    if device.type == "cpu" and cpu_has_native_bf16() and cpu_bf16_is_faster():
        return "bf16"
    return "fp32"


def warn_if_emulated(device, name):
    """Once per command, where the user's --precision is read: a CPU without native fp16/bf16 emulates it."""
    if device.type == "cpu" and name in ("bf16", "fp16") and not (cpu_has_native_bf16 if name == "bf16" else cpu_has_native_fp16)():
        print(f"warning: this CPU has no native {name}: --precision {name} trains several times slower than fp32 "
              f"(--precision auto picks the faster)", file=sys.stderr)


BF16_MIN_SPEEDUP = 1.1  # below this, fp32's exact arithmetic is worth more than the time


def cpu_bf16_is_faster():
    """Whether bf16 autocast trains a DCGAN block faster than fp32 on this CPU. Native bf16 does not
    settle it: it is faster on an AMX Xeon and a Zen 4 EPYC, and slower on a Xeon with AVX512-BF16 but
    no AMX (docs/results.md). Timed once per CPU, thread count and torch version, and remembered in the
    user cache folder, so every run on a machine picks the same."""
    key = f"{device_name(torch.device('cpu'))} | {torch.backends.cpu.get_cpu_capability()} | torch {torch.__version__}"
    path = os.path.join(user_cache_dir(), "cpu_precision.json")
    try:
        with open(path) as f:
            known = json.load(f)
    except (OSError, ValueError):
        known = {}
    known = known if isinstance(known, dict) else {}
    if not isinstance(known.get(key), dict):
        seconds = time_dcgan_block()
        known[key] = {"fp32_s": seconds["fp32"], "bf16_s": seconds["bf16"]}
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            atomic_write(path, lambda tmp: write_text(tmp, json.dumps(known, indent=1)))
        except OSError:
            pass  # a read-only home: timed again next run
    times = known[key]
    return times["fp32_s"] >= BF16_MIN_SPEEDUP * times["bf16_s"]


def write_text(path, text):
    with open(path, "w") as f:
        f.write(text)


def time_dcgan_block(precisions=("fp32", "bf16"), batch=32, reps=5):
    """Median seconds of one forward and backward pass of a small DCGAN discriminator, per precision.
    The precisions take turns, so a load that comes and goes (another program) falls on each alike."""
    with isolated_rng():
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 64, 4, 2, 1), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(64, 128, 4, 2, 1),
            torch.nn.BatchNorm2d(128), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(128, 256, 4, 2, 1))
        x = torch.randn(batch, 3, 32, 32)
    seconds = {p: [] for p in precisions}
    for i in range(reps + 1):  # the first round builds oneDNN's kernels: not timed
        for p in precisions:
            start = time.perf_counter()
            with autocast(torch.device("cpu"), p):
                out = net(x)
            out.float().square().mean().backward()
            if i:
                seconds[p].append(time.perf_counter() - start)
    return {p: float(np.median(s)) for p, s in seconds.items()}


AUTOCAST_DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def autocast(device, precision):
    """The forward passes' context: autocast to bf16/fp16, or nothing for fp32 (losses are always
    computed in fp32, optimizer state stays fp32)."""
    dtype = AUTOCAST_DTYPE[precision]
    return torch.autocast(device.type, dtype, enabled=dtype is not None)


def make_scaler(device, precision):
    """fp16 needs loss scaling (its range is small enough for gradients to underflow); a step whose
    gradients overflowed is skipped by the scaler and the scale lowered. None for bf16/fp32."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


class Amp:
    """Mixed precision for a training step: the forward passes' autocast, and for fp16 one gradient
    scaler per optimizer (made on first use), so a step is `with amp.autocast(): ...` then amp.step(loss, opt)."""

    def __init__(self, device, precision):
        self.device, self.precision, self.scalers = device, precision, {}

    def autocast(self):
        return autocast(self.device, self.precision)

    def step(self, loss, optimizer):
        if optimizer not in self.scalers:
            self.scalers[optimizer] = make_scaler(self.device, self.precision)
        backward_step(loss, optimizer, self.scalers[optimizer])


def backward_step(loss, optimizer, scaler=None):
    """zero_grad, backward, step: through the gradient scaler when there is one."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple silicon GPU (MPS), {platform.machine()}"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    n = torch.get_num_threads()
    return f"{model}, {n} thread{'s' if n != 1 else ''}"


def describe_machine(device, precision):
    """What the run's first lines say and its checkpoint records: where it ran and in which precision."""
    return {"device": device.type, "device_name": device_name(device), "precision": precision,
            "torch": str(torch.__version__)}


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def isolated_rng():
    """A context in which random draws (building a helper network, say) leave the run's CPU and
    CUDA random streams exactly as they were: cached or not, the run stays the same."""
    return torch.random.fork_rng(devices=list(range(torch.cuda.device_count())))


def rng_state():
    """Every random stream the run draws from, as plain types and tensors (loadable with
    weights_only=True): Python's, NumPy's, torch's CPU and CUDA generators."""
    numpy_state = np.random.get_state(legacy=False)
    state = {"python": list(random.getstate()), "torch": torch.get_rng_state(),
             "numpy": {"bit_generator": numpy_state["bit_generator"], "key": torch.from_numpy(
                 numpy_state["state"]["key"].astype(np.int64)), "pos": int(numpy_state["state"]["pos"]),
                 "has_gauss": int(numpy_state["has_gauss"]), "gauss": float(numpy_state["gauss"])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):
        np.random.set_state({"bit_generator": numpy_state["bit_generator"], "has_gauss": numpy_state["has_gauss"],
                             "gauss": numpy_state["gauss"], "state": {
                                 "key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]}})
    else:  # a checkpoint written before the states were stored as plain types
        np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------- files

def atomic_write(path, write):
    """write(tmp_path) then rename over path: a crash (even SIGKILL) leaves the old file intact."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes owner-only files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_checkpoint(obj, path):
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


# Checkpoints written before RNG states were stored as plain types hold NumPy arrays and scalars:
# these NumPy functions rebuild an array or a number from its bytes and run nothing else
# (PyTorch's documentation names them as safe to allow).
NUMPY_SAFE_GLOBALS = [np._core.multiarray._reconstruct, np._core.multiarray.scalar, np.ndarray, np.dtype,
                      type(np.dtype(np.uint32)), type(np.dtype(np.float64)), type(np.dtype(np.int64))] \
    if hasattr(np, "_core") else []


# what torch.load raises for a file it will not or cannot read: a refused object, a truncated or
# foreign file, random bytes
LOAD_FAILURES = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError, AttributeError, TypeError,
                 zipfile.BadZipFile, OSError, UnicodeDecodeError, IndexError)


def load_file(path, what):
    """torch.load with weights_only=True: tensors, numbers, strings, lists and dicts come back; a file
    that holds anything else (a pickle that could run code) is refused with one line, unrun."""
    check(os.path.isfile(path), f"{what} not found: {path}")
    check(os.path.getsize(path) > 0, f"{what} is empty: {path}")
    try:
        # torch's own warnings about the file's pickle protocol would only bury the one line said below
        with torch.serialization.safe_globals(NUMPY_SAFE_GLOBALS), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except LOAD_FAILURES as e:
        if "Unsupported global" in str(e):  # the weights-only unpickler refused to build an object
            reason = "it holds Python objects other than tensors, numbers, strings, lists and dicts, and loading it could run code"
        else:
            reason = f"truncated or not a torch file ({type(e).__name__})"
        raise UserError(f"cannot load {what} {path}: {reason}") from None


def load_checkpoint(path, kind=None):
    """Load a checkpoint written by this toolkit; a run folder means its ckpt.pt.
    kind ('infogan' or 'cgan') refuses a checkpoint of the other model."""
    if os.path.isdir(path):
        folder, path = path, os.path.join(path, CHECKPOINT)
        owner = lock_owner(folder)
        check(os.path.exists(path) or owner in (None, os.getpid()) or not process_alive(owner),
              f"{folder} is in use by another run (process {owner}) that has not saved a checkpoint yet")
    ckpt = load_file(path, "checkpoint")
    check(isinstance(ckpt, dict) and "kind" in ckpt and "config" in ckpt,
          f"{path} is not a checkpoint of this toolkit (no 'kind'/'config' inside)")
    if kind is not None and ckpt["kind"] != kind:
        other = {"infogan": "train_infogan.py --resume or sample.py",
                 "cgan": "train_cgan.py --resume, sample.py or evaluate.py"}.get(ckpt["kind"], "?")
        article = "an" if ckpt["kind"][:1] in "aeiou" else "a"
        raise UserError(f"{path} is {article} {ckpt['kind']} checkpoint, not {kind}; use it with {other}")
    ckpt["path"] = path
    return ckpt


def user_cache_dir(override=None):
    """Where caches go (--cache-dir, else $GAN_CACHE_DIR, else the platform's usual user cache folder):
    never into a data folder, which may be read-only or someone else's."""
    if override or os.environ.get("GAN_CACHE_DIR"):
        return override or os.environ["GAN_CACHE_DIR"]
    if sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    elif os.name == "nt":
        base = os.environ.get("LOCALAPPDATA", os.path.expanduser("~"))
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "gan-coursework")


def fingerprint(paths, *extra):
    """A digest of what a cache is made from: every file's path, size and modification time (plus
    `extra`, e.g. an image size); a file added, removed, replaced or touched changes it."""
    h = hashlib.sha256(json.dumps([str(e) for e in extra]).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def folder_key(path):
    """A short name for a data folder in the cache: one cache file per folder, replaced when its data change."""
    return hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:12]


def cached(cache_dir, name, digest, build, what):
    """build() once and keep it in cache_dir/name with its fingerprint; rebuilt when the fingerprint
    differs or the file cannot be loaded safely (one-line warning). Returns build()'s dict."""
    path = os.path.join(cache_dir, name)
    if os.path.isfile(path):
        try:
            data = load_file(path, what)
            if isinstance(data, dict) and data.get("fingerprint") == digest:
                return data
            print(f"note: {what} {path} was made from other data or settings; rebuilding it", file=sys.stderr)
        except UserError as e:
            print(f"warning: {e}; rebuilding it", file=sys.stderr)
    data = dict(build(), fingerprint=digest)
    try:
        os.makedirs(cache_dir, exist_ok=True)
        save_checkpoint(data, path)
    except OSError as e:
        print(f"warning: cannot write the {what} to {cache_dir} ({e.strerror or e}); it is rebuilt next time "
              f"(--cache-dir chooses another folder)", file=sys.stderr)
    return data


# ---------------------------------------------------------------------------- run folders

LOCK = "run.lock"
# what a run writes into its folder: a folder holding any of these holds a run, and --overwrite
# removes exactly these (never other files the user keeps there)
RUN_OUTPUTS = (CHECKPOINT, GENERATOR, "g_best.pt", "losses.csv", "accuracy.csv", "curves.png", "progress.gif",
               "report.md", "report", "grids", "grid_*.png", "sample_*.png", "sample_*.npz")


def run_files(path):
    """The run outputs in path; an empty folder (the grids/ of a run that stopped at a bad flag) is none."""
    return sorted(f for pattern in RUN_OUTPUTS for f in glob.glob(os.path.join(glob.escape(path), pattern))
                  if not (os.path.isdir(f) and not os.listdir(f)))


def claim_run_dir(out, default, resume=False, overwrite=False):
    """The folder this run writes to, locked for it alone (see RunLock). With no --out (out is
    None) the first of default, default-2, default-3, ... that holds no run; an --out that holds
    another run is refused unless this is its --resume or --overwrite (Run clears it: clear_run_dir)."""
    if out is None:
        for i in range(1, 10000):
            candidate = default if i == 1 else f"{default}-{i}"
            if os.path.isdir(candidate) and (run_files(candidate) or os.path.exists(os.path.join(candidate, LOCK))):
                continue
            make_run_dir(candidate)
            try:
                lock = RunLock(candidate)
            except UserError:  # another run took it a moment ago
                continue
            if run_files(candidate):
                lock.release()
                continue
            return candidate, lock
    make_run_dir(out)
    lock = RunLock(out)
    existing = run_files(out)
    if existing and not resume and not overwrite:
        lock.release()
        raise UserError(f"{out} already holds a run ({', '.join(os.path.basename(f) for f in existing[:3])}"
                        f"{', ...' if len(existing) > 3 else ''}); continue it with --resume {out}, "
                        f"or replace it with --overwrite")
    return out, lock


def clear_run_dir(out):
    """--overwrite: remove the previous run's outputs from out. Called once the data has loaded and
    every flag has passed, so a typo gives its error and leaves the old run as it was."""
    existing = run_files(out)
    for f in existing:
        shutil.rmtree(f) if os.path.isdir(f) else os.remove(f)
    os.makedirs(os.path.join(out, "grids"), exist_ok=True)
    if existing:
        print(f"--overwrite: removed the previous run's {len(existing)} files from {out}", file=sys.stderr)


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def lock_owner(folder):
    """The process id in FOLDER/run.lock, or None (no lock, or not readable)."""
    try:
        with open(os.path.join(folder, LOCK)) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class RunLock:
    """One writer per run folder: FOLDER/run.lock holds the owner's process id, created atomically
    (O_EXCL). A lock whose process is gone (killed with -9, say) is stale and taken over with a note.
    Released on every exit path: release() from run_cli, and atexit for anything else."""

    def __init__(self, folder):
        self.path = os.path.join(folder, LOCK)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.owner()
                if owner is not None and owner != os.getpid() and process_alive(owner):
                    raise UserError(f"{folder} is in use by another run (process {owner}); wait for it to end, "
                                    f"stop it, or choose another --out") from None
                print(f"note: taking over the stale lock of {folder} (process {owner} is no longer running)",
                      file=sys.stderr)
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            import atexit
            atexit.register(self.release)
            HELD_LOCKS.append(self)
            return
        raise UserError(f"{folder} is in use by another run (its lock {self.path} keeps being taken)")

    def owner(self):
        return lock_owner(os.path.dirname(self.path))

    def release(self):
        if self.owner() == os.getpid():
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass


HELD_LOCKS = []


def make_run_dir(path):
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UserError(f"cannot write to output folder {path}: {e.strerror or e}") from None
    return path


def write_logs(out, state, loss_columns, accuracy_columns, curve_panels):
    """losses.csv (one row per iteration), accuracy.csv (one per evaluated epoch) and curves.png,
    whose panels curve_panels(iterations, history array, accuracy array or None) chooses."""
    write_growing_csv(os.path.join(out, "losses.csv"), ("epoch", "iteration") + tuple(loss_columns), state["history"])
    if state["accuracy"]:
        write_csv(os.path.join(out, "accuracy.csv"), accuracy_columns, state["accuracy"])
    if state["history"]:
        h = np.asarray(state["history"], dtype=float)
        a = np.asarray(state["accuracy"], dtype=float) if state["accuracy"] else None
        plot_curves(os.path.join(out, "curves.png"), curve_panels(h[:, 1], h, a))


def write_csv(path, header, rows):
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
    atomic_write(path, write)


GROWING_CSVS = {}  # path -> (header, list of rows, rows written, file size) as this process last wrote it


def write_growing_csv(path, header, rows):
    """A csv whose rows only ever grow (losses.csv: one per iteration, written every epoch): the new
    rows are appended when the file is as this process left it for this same list; otherwise (the
    first write, a resumed run, a file changed since) it is rewritten whole, atomically. At 37,100 rows
    it and curves.png took 0.95-1.40 s rewritten, 0.52-0.63 s appended (docs/results.md). A crash mid-append
    can leave a partial last row (the report skips rows of the wrong width); a resumed run rewrites the file."""
    path = os.path.abspath(path)
    if path not in GROWING_CSVS:  # hold one run's rows at a time, not every run's of a long process
        GROWING_CSVS.clear()
    known = GROWING_CSVS.get(path)
    try:
        size = os.path.getsize(path)
    except OSError:
        size = None
    if known and known[0] == tuple(header) and known[1] is rows and known[2] <= len(rows) and known[3] == size:
        with open(path, "a", newline="") as f:
            csv.writer(f).writerows(rows[known[2]:])
    else:
        write_csv(path, header, rows)
    GROWING_CSVS[path] = (tuple(header), rows, len(rows), os.path.getsize(path))


def save_grid(images, path, nrow):
    """Images in [-1, 1] -> one PNG grid (torchvision's make_grid layout, 2 px padding)."""
    from torchvision.utils import save_image
    atomic_write(path, lambda tmp: save_image(images.float(), tmp, format="png", nrow=nrow,
                                              normalize=True, value_range=(-1, 1)))


def to_uint8(images):
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


GIF_HEADER = 14  # px of white above each frame, for its epoch


def make_gif(frame_paths, path, ms_per_frame=300, frames_made=None):
    """The grids epoch by epoch, each frame headed by its epoch (from the file name, grids/epochNNN_...).
    frames_made: {grid path: frame}, kept by the caller between epochs, so each epoch converts only its
    own grid (the palette of 100 frames takes seconds; writing them, a tenth of one)."""
    frames_made = {} if frames_made is None else frames_made
    for p in frame_paths:
        if p not in frames_made and os.path.exists(p):
            frames_made[p] = gif_frame(p)
    frames = [frames_made[p] for p in frame_paths if p in frames_made]
    if frames:
        atomic_write(path, lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                                                      duration=ms_per_frame, loop=0))


def gif_frame(grid_path):
    from PIL import Image, ImageDraw
    grid = Image.open(grid_path).convert("RGB")
    frame = Image.new("RGB", (grid.width, grid.height + GIF_HEADER), "white")
    frame.paste(grid, (0, GIF_HEADER))
    epoch = re.search(r"epoch0*(\d+)", os.path.basename(grid_path))
    if epoch:
        ImageDraw.Draw(frame).text((4, 2), f"epoch {epoch.group(1)}", fill="black")
    return frame.convert("P", palette=Image.Palette.ADAPTIVE)  # not the web palette: 6 greys, dithered


CURVE_POINTS = 2000  # more points than the 900-px-wide plot (9 in at 100 dpi) can show apart


def plot_curves(path, panels):
    """panels: list of (title, x label, {series name: (xs, ys)}) -> one PNG, one subplot per panel.
    Dense per-iteration series get a moving average drawn over the raw (faint) values. A long run's
    raw values are drawn as the band from their lowest to their highest in each of CURVE_POINTS / 2
    slices: each slice's full range, every extreme kept, for a fraction of the time a line through
    every point takes to draw (the trainers draw it every epoch)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels)), squeeze=False)
    for ax, (title, x_label, series) in zip(axes[:, 0], panels):
        for name, (xs, ys) in series.items():
            xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
            if len(ys) > 200:
                window = max(len(ys) // 100, 5)
                smooth = np.convolve(ys, np.ones(window) / window, mode="valid")
                every = np.unique(np.linspace(0, len(smooth) - 1, CURVE_POINTS).round().astype(int))  # ends included
                line, = ax.plot(xs[window - 1:][every], smooth[every], label=name)
                if len(ys) > CURVE_POINTS:
                    starts = np.linspace(0, len(ys), CURVE_POINTS // 2, endpoint=False).astype(int)
                    low, high = np.fmin.reduceat(ys, starts), np.fmax.reduceat(ys, starts)
                    ax.fill_between(np.r_[xs[starts], xs[-1]], np.r_[low, low[-1]], np.r_[high, high[-1]], step="post",
                                    color=line.get_color(), alpha=0.2, linewidth=0)
                else:
                    ax.plot(xs, ys, color=line.get_color(), alpha=0.2, linewidth=0.5)
            else:
                ax.plot(xs, ys, marker="o" if len(ys) < 30 else None, label=name)
        ax.set_title(title)
        ax.set_xlabel(x_label)
        if x_label == "epoch":  # whole epochs on the axis, not 1.0, 1.2, ...
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


# ---------------------------------------------------------------------------- run control

def progress(total, desc):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr,
                disable=None if sys.stderr.isatty() else True)


class StopRequest:
    """Ctrl-C / SIGTERM set a flag instead of killing the process: the trainer finishes the
    current step, saves, and exits with 130 / 143."""

    def __init__(self):
        self.signum = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.signum is not None:  # a second Ctrl-C: the user really wants out
            raise KeyboardInterrupt
        self.signum = signum

    def __bool__(self):
        return self.signum is not None

    @property
    def exit_code(self):
        return 128 + self.signum


def resume_command(run_dir, script=None):
    """The command that continues this run (by default the running script's): on --resume every flag
    comes from the checkpoint."""
    script = script or (os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "train.py")
    return shlex.join(["python", script, "--resume", run_dir])


def sample_command(ckpt, *args):
    """The sample.py command a user can paste to draw from ckpt (paths quoted)."""
    return shlex.join(["python", "sample.py", "--ckpt", ckpt, *args])


def given_flags(parser):
    """The options typed on this command line (by dest), as opposed to their defaults."""
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return vars(parser.parse_known_args()[0])


def resume_args(args, ckpt, parser, model_keys, flags_before=None):
    """--resume: flags not typed on this command line take the checkpoint run's values (data root,
    losses, learning rates, epochs...); the model's config always comes from the checkpoint. A flag
    newer than the checkpoint takes its value in flags_before: what runs made before it did."""
    check("optD" in ckpt, f"{ckpt['path']} holds only a generator; resume from the run's ckpt.pt or its folder")
    given = given_flags(parser)
    saved = {**(flags_before or {}), **ckpt.get("args", {})}
    for key, value in saved.items():
        if key not in given and key not in ("resume", "out") and hasattr(args, key):
            setattr(args, key, value)
    warn_resume_conflicts(ckpt["config"], given, model_keys)
    if ckpt.get("step") and args.batch_size != ckpt["args"]["batch_size"]:
        print(f"warning: --batch-size {args.batch_size} ignored until the interrupted epoch ends: it was "
              f"saved mid-epoch with batch size {ckpt['args']['batch_size']}", file=sys.stderr)
        args.batch_size = ckpt["args"]["batch_size"]
    args.out = os.path.dirname(ckpt["path"]) or "."  # as typed: the commands printed stay short
    return args


def warn_resume_conflicts(saved_config, given, keys):
    """On --resume the checkpoint's architecture wins; name every flag that tried to change it."""
    for key in keys:
        if key in given and given[key] != saved_config.get(key):
            print(f"warning: --{key.replace('_', '-')} {given[key]} ignored: the checkpoint was trained with "
                  f"{saved_config.get(key)}", file=sys.stderr)


def generator_weights(ckpt):
    """G's state_dict to sample from: the moving average when the run kept one (--g-ema), so g.pt,
    ckpt.pt and the run folder give the same generator."""
    return ckpt.get("netG_ema") or ckpt["netG"]


def make_ema(model, decay):
    """A frozen copy of G to hold the moving average of its weights (--g-ema), or None when decay is 0."""
    return copy.deepcopy(model).eval().requires_grad_(False) if decay else None


@torch.no_grad()
def ema_update(ema, model, decay, num_updates=None):
    """ema <- decay * ema + (1 - decay) * model, over the parameters and the float buffers (BatchNorm's
    running statistics, which eval mode uses); integer buffers are copied. Given num_updates (the
    updates so far, this one included), the decay is min(decay, (1 + n) / (10 + n)), as TensorFlow's
    ExponentialMovingAverage does, so a short run's average is not dominated by the initial weights."""
    if num_updates is not None:
        decay = min(decay, (1 + num_updates) / (10 + num_updates))
    for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
        if e.dtype.is_floating_point:
            e.lerp_(m, 1 - decay)
        else:
            e.copy_(m)


def set_optimizer_hparams(optimizer, lr, betas):
    """After loading an optimizer's state on --resume, the learning rate and betas of this command win."""
    for group in optimizer.param_groups:
        group["lr"], group["betas"] = lr, betas


def is_finite_rows(stats):
    """Index of the first row with a NaN/inf, or None."""
    bad = ~torch.isfinite(stats).all(dim=1)
    return int(bad.nonzero()[0]) if bad.any() else None


LOG_EVERY = 25  # steps between the host's looks at the statistics (progress bar, NaN check)


class StepStats:
    """Per-step training statistics kept on the device; the host reads them only every log_every
    steps (progress bar, NaN check), so a GPU never waits for the CPU inside the loop."""

    def __init__(self, columns, steps_per_epoch, first_step, log_every, device, desc):
        self.columns, self.first, self.log_every = columns, first_step, log_every
        self.values = torch.zeros(steps_per_epoch, len(columns), device=device)
        self.done = first_step
        self.bar = progress(steps_per_epoch - first_step, desc)

    def record(self, step, *values):
        with torch.no_grad():
            self.values[step] = torch.stack([v.detach().float() for v in values])
        self.done = step + 1

    def check(self, force=False):
        """Every log_every steps: progress bar update; returns the first bad (NaN/inf) step or None."""
        if not (force or self.done % self.log_every == 0 or self.done == len(self.values)):
            return None
        start = max(self.first, self.done - self.log_every)
        window = self.values[start:self.done]
        bad = is_finite_rows(window)
        if bad is not None:
            return start + bad
        means = window.mean(0).tolist()
        self.bar.set_postfix({c: f"{m:.3f}" for c, m in zip(self.columns, means)})
        self.bar.update(self.done - self.first - self.bar.n)
        return None

    def rows(self):
        self.bar.close()
        return self.values[self.first:self.done].tolist()


def train_epoch(state, epoch, n_items, step_fn, columns, args, stop, device, out, save_partial):
    """Run one epoch's steps, from state["step"] on, over a random permutation of the n_items
    training examples (kept in state, so an interrupted epoch resumes on the same batches).
    step_fn(batch_indices, iteration) does one training step (iteration counts over the whole run)
    and returns the statistics of `columns`.
    Appends them to state["history"]; state["step"] is the next step (0 after a full epoch).
    Returns the epoch's rows. Raises TrainingStopped when the loss became NaN/inf (the last good
    checkpoint is kept) or when a stop request came mid-epoch (after save_partial() and the resume hint)."""
    bs = args.batch_size
    steps_per_epoch, first_step = n_items // bs, state["step"]  # ragged last batch dropped: static shapes
    if state["perm"] is None:
        state["perm"] = torch.randperm(n_items)
    state["perm"] = state["perm"].to(device)
    stats = StepStats(columns, steps_per_epoch, first_step, LOG_EVERY, device, f"epoch {epoch + 1}/{args.epochs}")
    for step in range(first_step, steps_per_epoch):
        stats.record(step, *step_fn(state["perm"][step * bs:(step + 1) * bs], epoch * steps_per_epoch + step))
        bad_step = stats.check(force=bool(stop))
        if bad_step is not None:
            stats.bar.close()
            print(nan_message(epoch + 1, bad_step, steps_per_epoch, out), file=sys.stderr)
            raise TrainingStopped(1)
        if stop:
            break
    rows = stats.rows()
    state["history"] += [[epoch + 1, epoch * steps_per_epoch + first_step + i + 1] + r for i, r in enumerate(rows)]
    state["step"] = stats.done if stats.done < steps_per_epoch else 0
    if state["step"]:  # stopped mid-epoch
        save_partial()
        interrupted(out, epoch + 1, state["step"], steps_per_epoch)
        raise TrainingStopped(stop.exit_code)
    return rows


def stop_after_epoch(stop, out, epoch, steps_per_epoch):
    """A stop request that came while the epoch's end was being saved: exit now, it is all on disk."""
    if stop:
        interrupted(out, epoch, 0, steps_per_epoch)
        raise TrainingStopped(stop.exit_code)


def epoch_line(epoch, epochs, seconds, n_images):
    """The start of the one summary line per epoch: "epoch 3/20 | 47.1s, 505 img/s"."""
    return f"epoch {epoch}/{epochs} | {seconds:.1f}s, {n_images / seconds:.0f} img/s"


def nan_message(epoch, step, steps_per_epoch, out):
    where = f"epoch {epoch}, step {step + 1} (iteration {(epoch - 1) * steps_per_epoch + step + 1})"
    if os.path.isfile(os.path.join(out, CHECKPOINT)):
        kept = f"the last good checkpoint is kept in {out}"
    else:
        kept = "no checkpoint was saved yet; try a lower --lr-d/--lr-g"
    return f"error: the loss became NaN/inf at {where}; stopped, {kept}"


def interrupted(out, epoch, step, steps_per_epoch):
    where = f"at epoch {epoch}, step {step}/{steps_per_epoch}" if step else f"after epoch {epoch}"
    print(f"\ninterrupted {where}; saved. Resume with:\n  {resume_command(out)}", file=sys.stderr)


# ---------------------------------------------------------------------------- the run

def start_run(kind, get_parser, validate, model_keys, default_out, flags_before=None):
    """Everything both trainers do before their data and models: parse the flags (on --resume: the
    checkpoint's, where not typed again), claim and lock the run folder, pick device and precision,
    seed, and say where the run goes. Returns (args, ckpt or None, device, machine)."""
    args = get_parser().parse_args()
    check(not (args.resume and args.overwrite), "--resume continues a run and --overwrite replaces it: give one")
    ckpt = load_checkpoint(args.resume, kind=kind) if args.resume else None
    if ckpt:
        args = resume_args(args, ckpt, get_parser(), model_keys, flags_before)
    validate(args, ckpt)
    device = pick_device(args.device)
    precision = pick_precision(device, args.precision)
    warn_if_emulated(device, args.precision)
    if ckpt and args.precision == "auto" and ckpt.get("machine", {}).get("device") == device.type:
        precision = ckpt["machine"]["precision"]  # a resumed run keeps its arithmetic
    args.out, _ = claim_run_dir(args.out, default_out, resume=ckpt is not None, overwrite=args.overwrite)
    os.makedirs(os.path.join(args.out, "grids"), exist_ok=True)
    seed_everything(args.seed)
    machine = describe_machine(device, precision)
    scaler_note = ", with a gradient scaler" if precision == "fp16" else ""
    print(f"run folder: {args.out} | device: {device.type} ({machine['device_name']}) | precision: "
          f"{precision}{' autocast' if precision != 'fp32' else ''}{scaler_note}", flush=True)
    return args, ckpt, device, machine


def to_device(nets, device, channels_last_on_cpu=False):
    """Models onto the device; channels_last on CUDA, where cuDNN's convolutions run faster in it,
    and on a CPU where asked: oneDNN runs the cGAN's step faster in it, InfoGAN's no faster
    (docs/results.md, Speed)."""
    nets = [net.to(device) for net in nets]
    if device.type == "cuda" or (device.type == "cpu" and channels_last_on_cpu):
        return [net.to(memory_format=torch.channels_last) for net in nets]
    return nets


class Run:
    """What both trainers share around their own training step: the moving average of G, gradient
    scalers (fp16), checkpoints (ckpt.pt to resume, g.pt to sample, g_best.pt), resume, the epoch
    loop with its progress bar, NaN stop, Ctrl-C and summary line, the logs, the GIF and the report.

    nets: {checkpoint key: module}, "netG" among them; optimizers: {key: (optimizer, learning rate)};
    state: the trainer's own training state on top of the shared one; extra: constant fields of
    ckpt.pt (fixed noise, object names...); g_keys: the fields of state/extra that g.pt also needs."""

    def __init__(self, kind, args, config, device, machine, ckpt, nets, optimizers, state, extra, g_keys, g_ema):
        self.kind, self.args, self.config, self.device, self.machine = kind, args, config, device, machine
        self.out, self.nets, self.optimizers, self.extra, self.g_keys = args.out, nets, optimizers, extra, g_keys
        self.amp = Amp(device, machine["precision"])
        # the averaged G is what gets judged, drawn and saved: its weights wobble less than the trained G's
        self.netG_ema = make_ema(nets["netG"], g_ema)
        self.netG_eval = self.netG_ema if self.netG_ema is not None else nets["netG"]
        self.state = {"epoch": 0, "step": 0, "perm": None, "history": [], "accuracy": [], "epoch_seconds": [],
                      "partial_seconds": 0.0,  # spent in an epoch that was interrupted, counted when it ends
                      "best": {"accuracy": -1.0, "epoch": None}, **state}
        self.command = ["python"] + [os.path.basename(sys.argv[0])] + sys.argv[1:]
        self.resumes = []  # the --resume commands that continued the run, for its report
        self.gif_frames = {}  # progress.gif's frames so far, converted once each
        if ckpt:
            self.restore(ckpt)
        elif args.overwrite:
            clear_run_dir(self.out)

    def restore(self, ckpt):
        """--resume: models, optimisers (this command's learning rates and betas win), scalers, the
        moving average, RNG streams and the training state, from the checkpoint."""
        betas = (self.args.beta1, self.args.beta2)
        for key, net in self.nets.items():
            net.load_state_dict(ckpt[key])
        for key, (optimizer, lr) in self.optimizers.items():
            optimizer.load_state_dict(ckpt[key])
            set_optimizer_hparams(optimizer, lr, betas)
            scaler = make_scaler(self.device, self.amp.precision)
            if scaler is not None and ckpt.get("scalers", {}).get(key):
                scaler.load_state_dict(ckpt["scalers"][key])
            self.amp.scalers[optimizer] = scaler
        if self.netG_ema is not None:  # a run that had no average yet starts it from the current G
            self.netG_ema.load_state_dict(ckpt.get("netG_ema") or self.nets["netG"].state_dict())
        set_rng_state(ckpt["rng"])
        self.state.update({k: ckpt[k] for k in self.state if k in ckpt})
        self.resumes = list(ckpt.get("resumes", [])) + [self.command]
        self.command = ckpt.get("command", self.command)
        print(f"resuming {ckpt['path']} at epoch {ckpt['epoch'] + 1}, step {ckpt['step']}", file=sys.stderr)

    def save(self, end_of_epoch):
        """ckpt.pt (everything, to resume) and, at an epoch's end, g.pt (what sample.py needs),
        both atomically and both plain data (loadable with weights_only=True); returns what was
        written, (ckpt.pt's dict, g.pt's dict or None)."""
        full = dict(kind=self.kind, config=self.config, args=vars(self.args), command=self.command, resumes=self.resumes,
                    machine=self.machine, rng=rng_state(), **self.extra, **self.state,
                    netG_ema=self.netG_ema.state_dict() if self.netG_ema is not None else None,
                    scalers={k: self.amp.scalers[opt].state_dict() for k, (opt, _) in self.optimizers.items()
                             if self.amp.scalers.get(opt) is not None},
                    **{k: net.state_dict() for k, net in self.nets.items()},
                    **{k: opt.state_dict() for k, (opt, _) in self.optimizers.items()})
        save_checkpoint(full, os.path.join(self.out, CHECKPOINT))
        if not end_of_epoch:
            return full, None
        both = {**self.extra, **self.state}
        generator = dict(kind=self.kind, config=self.config, netG=self.netG_eval.state_dict(),
                         epoch=self.state["epoch"], machine=self.machine, **{k: both[k] for k in self.g_keys})
        save_checkpoint(generator, os.path.join(self.out, GENERATOR))
        return full, generator

    def fit(self, n_items, columns, step_fn, end_of_epoch, write_logs, gif_frames):
        """The epoch loop. step_fn(batch indices, iteration) -> statistics of `columns`;
        end_of_epoch(epoch, mean statistics) -> (score or None, text for the summary line), after
        which come the checkpoints, g_best.pt, write_logs(out, state), the GIF of gif_frames() so far,
        the report and the line."""
        args, out, state = self.args, self.out, self.state
        steps_per_epoch, stop = n_items // args.batch_size, StopRequest()
        if state["epoch"] >= args.epochs:
            print(f"nothing to train: the run in {out} is at epoch {state['epoch']} of {args.epochs}; "
                  f"--resume {out} --epochs N trains it on to epoch N", file=sys.stderr)
        for epoch in range(state["epoch"], args.epochs):
            t0 = time.time() - state["partial_seconds"]
            rows = train_epoch(state, epoch, n_items, step_fn, columns, args, stop, self.device, out,
                               save_partial=lambda: (state.update(partial_seconds=round(time.time() - t0, 2)),
                                                     self.save(end_of_epoch=False), write_logs(out, state)))
            seconds = time.time() - t0
            state.update(epoch=epoch + 1, perm=None, partial_seconds=0.0)
            state["epoch_seconds"].append([epoch + 1, round(seconds, 2)])
            score, summary = end_of_epoch(epoch + 1, np.mean(rows, axis=0))
            if score is not None and score > state["best"]["accuracy"]:
                state["best"] = {"accuracy": float(score), "epoch": epoch + 1}
            saved = self.save(end_of_epoch=True)
            if state["best"]["epoch"] == epoch + 1:
                atomic_write(os.path.join(out, "g_best.pt"),
                             lambda tmp: shutil.copyfile(os.path.join(out, GENERATOR), tmp))
            write_logs(out, state)
            make_gif(gif_frames(), os.path.join(out, "progress.gif"), frames_made=self.gif_frames)
            write_report(out, saved, self.netG_eval)
            print(epoch_line(epoch + 1, args.epochs, seconds, steps_per_epoch * args.batch_size) + summary, flush=True)
            stop_after_epoch(stop, out, epoch + 1, steps_per_epoch)


def write_report(out, saved, netG_eval=None):
    """report.md in the run folder (report.py), rewritten every epoch from the checkpoints just saved
    (they are in memory; reading them back took 0.07-0.20 s for InfoGAN's 187 MB ckpt.pt, docs/results.md),
    its figures drawn in eval mode by the G whose weights g.pt holds (None: a G is built from them);
    a failure there is said, never fatal."""
    import report
    was_training = netG_eval is not None and netG_eval.training
    try:
        report.write_report(out, saved=saved, netG=netG_eval.eval() if netG_eval is not None else None)
    except Exception as e:  # the report is a convenience: it must never cost the run
        print(f"warning: report.md not written ({type(e).__name__}: {e})", file=sys.stderr)
    finally:
        if was_training:  # --g-ema 0: the G being trained, back to training mode
            netG_eval.train()
