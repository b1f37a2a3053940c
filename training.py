"""Training plumbing shared by train_infogan.py, train_cgan.py and sample.py.

Run folders, atomic checkpoints, resume, RNG state, image grids, CSV logs, curves, GIFs,
progress bars, Ctrl-C handling and one-line errors. Nothing here knows about a specific GAN.
"""
import argparse
import copy
import csv
import os
import random
import shlex
import shutil
import signal
import sys
import tempfile

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
    sys.exit(code or 0)


class TrainingStopped(Exception):
    """Training ended early (NaN/inf, or a stop request after saving); run_cli exits with exit_code."""

    def __init__(self, exit_code):
        super().__init__(exit_code)
        self.exit_code = exit_code


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help of the trainers: every flag's default, and the script's docstring with its line breaks
    (the example commands would otherwise run together)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: 'error: ... (see --help)', exit code 2, no usage dump."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def check(condition, message):
    if not condition:
        raise UserError(message)


# ---------------------------------------------------------------------------- devices, RNG

def pick_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check(name != "cuda" or torch.cuda.is_available(), "--device cuda was asked for but no CUDA GPU is available")
    return torch.device(name)


def autocast_dtype(device, precision):
    """bf16 autocast where the hardware does it natively (CUDA, or a CPU with AMX/AVX512-BF16);
    'fp32' turns it off. Losses and optimizer state always stay in fp32."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.bfloat16 if (native or precision == "bf16") else None


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def isolated_rng():
    """A context in which random draws (building a helper network, say) leave the run's CPU and
    CUDA random streams exactly as they were: cached or not, the run stays the same."""
    return torch.random.fork_rng(devices=list(range(torch.cuda.device_count())))


def rng_state():
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------- files

def make_run_dir(path):
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UserError(f"cannot write to output folder {path}: {e.strerror or e}") from None
    return path


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


def load_checkpoint(path, kind=None):
    """Load a checkpoint written by this toolkit; a run folder means its ckpt.pt.
    kind ('infogan' or 'cgan') refuses a checkpoint of the other model."""
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT)
    check(os.path.isfile(path), f"checkpoint not found: {path}")
    check(os.path.getsize(path) > 0, f"checkpoint is empty: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated zip, pickle of something else, random bytes...
        raise UserError(f"cannot read checkpoint {path} (truncated or not a checkpoint): {type(e).__name__}") from None
    check(isinstance(ckpt, dict) and "kind" in ckpt and "config" in ckpt,
          f"{path} is not a checkpoint of this toolkit (no 'kind'/'config' inside)")
    if kind is not None and ckpt["kind"] != kind:
        other = {"infogan": "train_infogan.py", "cgan": "train_cgan.py"}.get(ckpt["kind"], "?")
        raise UserError(f"{path} is a {ckpt['kind']} checkpoint, not {kind}; use it with {other}")
    ckpt["path"] = path
    return ckpt


def write_csv(path, header, rows):
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
    atomic_write(path, write)


def save_grid(images, path, nrow):
    """Images in [-1, 1] -> one PNG grid (torchvision's make_grid layout, 2 px padding)."""
    from torchvision.utils import save_image
    atomic_write(path, lambda tmp: save_image(images.float(), tmp, format="png", nrow=nrow,
                                              normalize=True, value_range=(-1, 1)))


def to_uint8(images):
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def make_gif(frame_paths, path, ms_per_frame=300):
    from PIL import Image
    frames = [Image.open(p).convert("P") for p in frame_paths if os.path.exists(p)]
    if frames:
        atomic_write(path, lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                                                      duration=ms_per_frame, loop=0))


def plot_curves(path, panels):
    """panels: list of (title, x label, {series name: (xs, ys)}) -> one PNG, one subplot per panel.
    Dense per-iteration series get a moving average drawn over the raw (faint) curve."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels)), squeeze=False)
    for ax, (title, x_label, series) in zip(axes[:, 0], panels):
        for name, (xs, ys) in series.items():
            ys = np.asarray(ys, dtype=float)
            if len(ys) > 200:
                window = max(len(ys) // 100, 5)
                smooth = np.convolve(ys, np.ones(window) / window, mode="valid")
                line, = ax.plot(xs, ys, alpha=0.2, linewidth=0.5)
                ax.plot(xs[window - 1:], smooth, color=line.get_color(), label=name)
            else:
                ax.plot(xs, ys, marker="o" if len(ys) < 30 else None, label=name)
        ax.set_title(title)
        ax.set_xlabel(x_label)
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


def resume_command(run_dir):
    """The command line that continues this run: the same script and flags plus --resume."""
    argv, out = [sys.executable.split("/")[-1]] + sys.argv, []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--resume":
            skip = True
            continue
        if a.startswith("--resume="):
            continue
        out.append(a)
    return " ".join(shlex.quote(a) for a in out + ["--resume", run_dir])


def given_flags(parser):
    """The options typed on this command line (by dest), as opposed to their defaults."""
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return vars(parser.parse_known_args()[0])


def resume_args(args, ckpt, parser, model_keys):
    """--resume: flags not typed on this command line take the checkpoint run's values (data root,
    losses, learning rates, epochs...); the model's config always comes from the checkpoint."""
    check("optD" in ckpt, f"{ckpt['path']} holds only a generator; resume from the run's ckpt.pt or its folder")
    given = given_flags(parser)
    for key, value in ckpt.get("args", {}).items():
        if key not in given and key not in ("resume", "out") and hasattr(args, key):
            setattr(args, key, value)
    warn_resume_conflicts(ckpt["config"], given, model_keys)
    if ckpt.get("step") and args.batch_size != ckpt["args"]["batch_size"]:
        print(f"warning: --batch-size {args.batch_size} ignored until the interrupted epoch ends: it was "
              f"saved mid-epoch with batch size {ckpt['args']['batch_size']}", file=sys.stderr)
        args.batch_size = ckpt["args"]["batch_size"]
    args.out = os.path.dirname(os.path.abspath(ckpt["path"]))
    return args


def warn_resume_conflicts(saved_config, given, keys):
    """On --resume the checkpoint's architecture wins; name every flag that tried to change it."""
    for key in keys:
        if key in given and given[key] != saved_config.get(key):
            print(f"warning: --{key.replace('_', '-')} {given[key]} ignored: the checkpoint was trained with "
                  f"{saved_config.get(key)}", file=sys.stderr)


def restore(ckpt, state, models, optimizers, betas):
    """--resume: load the models' and optimisers' states (this command's learning rates and betas
    win), and the RNG streams; returns the training state (the keys of `state`) from the checkpoint.
    models: {checkpoint key: module}; optimizers: {checkpoint key: (optimizer, learning rate)}."""
    for key, net in models.items():
        net.load_state_dict(ckpt[key])
    for key, (optimizer, lr) in optimizers.items():
        optimizer.load_state_dict(ckpt[key])
        set_optimizer_hparams(optimizer, lr, betas)
    set_rng_state(ckpt["rng"])
    print(f"resuming {ckpt['path']} at epoch {ckpt['epoch'] + 1}, step {ckpt['step']}", file=sys.stderr)
    return {k: ckpt[k] for k in state}


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
    step_fn(batch_indices, step) does one training step and returns the statistics of `columns`.
    Appends them to state["history"]; state["step"] is the next step (0 after a full epoch).
    Returns the epoch's rows. Raises TrainingStopped when the loss became NaN/inf (the last good
    checkpoint is kept) or when a stop request came mid-epoch (after save_partial() and the resume hint)."""
    bs = args.batch_size
    steps_per_epoch, first_step = n_items // bs, state["step"]  # ragged last batch dropped: static shapes
    if state["perm"] is None:
        state["perm"] = torch.randperm(n_items)
    state["perm"] = state["perm"].to(device)
    stats = StepStats(columns, steps_per_epoch, first_step, args.log_every, device, f"epoch {epoch + 1}/{args.epochs}")
    for step in range(first_step, steps_per_epoch):
        stats.record(step, *step_fn(state["perm"][step * bs:(step + 1) * bs], step))
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


def end_epoch(out, state, epoch, score, save, write_logs):
    """After an epoch's evaluation: best-so-far bookkeeping (score None: no evaluation), then
    ckpt.pt and g.pt, g_best.pt when this epoch is the best, the logs and curves."""
    if score is not None and score > state["best"]["accuracy"]:
        state["best"] = {"accuracy": score, "epoch": epoch}
    save(final_step_of_epoch=True)
    keep_best(out, state, epoch)
    write_logs(out, state)


def epoch_line(epoch, epochs, seconds, n_images):
    """The start of the one summary line per epoch: "epoch 3/20 | 47.1s, 505 img/s"."""
    return f"epoch {epoch}/{epochs} | {seconds:.1f}s, {n_images / seconds:.0f} img/s"


def keep_best(out, state, epoch):
    """g_best.pt: a copy of g.pt from the epoch with the best score so far."""
    if state["best"]["epoch"] == epoch:
        atomic_write(os.path.join(out, "g_best.pt"), lambda tmp: shutil.copyfile(os.path.join(out, GENERATOR), tmp))


def nan_message(epoch, step, steps_per_epoch, out):
    where = f"epoch {epoch}, step {step + 1} (iteration {(epoch - 1) * steps_per_epoch + step + 1})"
    if os.path.isfile(os.path.join(out, CHECKPOINT)):
        kept = f"the last good checkpoint is kept in {out}"
    else:
        kept = "no checkpoint was saved yet; try a lower --lr-d/--lr-g"
    return f"error: the loss became NaN/inf at {where}; stopped, {kept}"


def interrupted(out, epoch, step, steps_per_epoch):
    where = f"epoch {epoch}, step {step}/{steps_per_epoch}" if step else f"after epoch {epoch}"
    print(f"\ninterrupted at {where}; saved. Resume with:\n  {resume_command(out)}", file=sys.stderr)
