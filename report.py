"""The hand-in: one Markdown page per run folder, with figures that read without the code.

    python sample.py --ckpt runs/infogan --report        # -> runs/infogan/report.md (+ runs/infogan/report/*.png)

write_report(run_dir) reads only what the run folder holds (ckpt.pt, g.pt, losses.csv, accuracy.csv,
curves.png, progress.gif) and writes report.md beside them, its own figures in report/, all linked
relatively: zip the folder and it is the hand-in. The page is plain Markdown (tables, images, one
code block), so GitHub, VS Code and Typora render it alike.

The figures label what the run folder's raw grids leave to the code: InfoGAN rows are ordered by the
digit each categorical value draws (through g.pt's code->digit map) and say "digit 7 (code 3)", the
columns give the swept code's value; the cGAN grids write the asked-for objects under every image.
Everything is drawn on the CPU from the saved generator with fixed noise, so the same run gives the
same pictures, and inside torch's forked RNG, so a trainer can call write_report every epoch without
changing its random stream (resumed runs stay bit-exact).
"""
import csv
import math
import os
import shlex
import textwrap
import warnings

import numpy as np
import torch

import training as T
from models import build_cgan, build_infogan, infogan_grid_latent, infogan_latent

REPO = os.path.dirname(os.path.abspath(__file__))
REPORT = "report.md"
FIGURES = "report"          # folder beside report.md for the figures made here
SCRIPTS = {"infogan": "train_infogan.py", "cgan": "train_cgan.py"}
TITLES = {"infogan": "InfoGAN on MNIST", "cgan": "Conditional GAN on i-CLEVR"}
NOT_RECORDED = "not recorded"
CGAN_SETS = ("test", "new_test")
CGAN_NOISE_SEED = 0         # the trainer's grid_test.png is the first draw of this seed (on a CPU run)
LOSS_NAMES = {"loss_d": "D loss", "loss_g": "G loss", "loss_q": "Q loss", "d_real": "D(x)",
              "d_fake_before": "D(G(z)) before G step", "d_fake_after": "D(G(z)) after G step"}
CGAN_LOSS_NAMES = {"loss_d": "D loss", "loss_g": "G loss", "d_real": "D score, real", "d_fake": "D score, fake"}
RUN_FILES = (  # (file, what it is) listed at the end of the report when present
    ("ckpt.pt", "everything to continue the run (`--resume`)"),
    ("g.pt", "the generator, its config and fixed noise: all `sample.py` needs"),
    ("g_best.pt", "`g.pt` of the best epoch"),
    ("losses.csv", "losses and D's outputs per iteration"),
    ("accuracy.csv", "evaluator accuracy per epoch"),
    ("curves.png", "loss and D-output curves; accuracy per epoch where measured"),
    ("progress.gif", "the fixed-noise grid, epoch by epoch"),
    ("grids", "every epoch's raw grids"),
)


# ---------------------------------------------------------------------------- generators

def load_generator(ckpt, device="cpu"):
    """G of a checkpoint (ckpt.pt or g.pt, either model) in eval mode. Built inside a forked RNG: the
    random initialisation it overwrites must not move the caller's random stream."""
    build = {"infogan": build_infogan, "cgan": build_cgan}.get(ckpt["kind"])
    T.check(build is not None, f"{ckpt.get('path')} holds an unknown model kind {ckpt['kind']!r}")
    with T.isolated_rng():
        netG, _ = build(ckpt["config"])
    netG.load_state_dict(T.generator_weights(ckpt))
    return netG.to(device).eval()


def row_order(n_cat, code_to_digit):
    """[(code, digit or None)] top to bottom: the categorical values sorted by the digit they draw
    (a reader looks for 0-9, not for the order in which the code happened to settle), the values no
    digit was matched to after them; in code order when there is no map yet (--no-eval, epoch 0)."""
    digits = {int(c): int(d) for c, d in (code_to_digit or {}).items()}
    return sorted(((c, digits.get(c)) for c in range(n_cat)),
                  key=lambda cd: (cd[1] is None, cd[0] if cd[1] is None else cd[1]))


def row_label(code, digit, has_map):
    """'digit 7 (code 3)': the digit a reader looks for, the code value sample.py --code takes."""
    if digit is not None:
        return f"digit {digit} (code {code})"
    return f"code {code} (no digit)" if has_map else f"code {code}"


@torch.no_grad()
def infogan_grid(ckpt, netG, sweep_code=0):
    """The run's fixed-noise grid, rows in digit order: (images (rows * 10, C, H, W), row labels,
    column labels, column axis title). The latents are models.infogan_grid_latent's with the
    checkpoint's fixed_noise, so each row is the run's grid_cJ.png row of the same code.
    sweep_code: the 0-based continuous code swept over [-2, 2], or None for the 10 fixed noise vectors."""
    config, n_cols = ckpt["config"], 10
    n_cat, n_cont = config["n_cat"], config["n_cont"]
    if not n_cont:
        sweep_code = None
    order = row_order(n_cat, ckpt.get("code_to_digit"))
    z = infogan_grid_latent(config, ckpt["fixed_noise"], sweep_code=sweep_code, n_cols=n_cols)
    z = z.view(n_cat, n_cols, -1)[[c for c, _ in order]].reshape(n_cat * n_cols, -1)
    rows = [row_label(c, d, bool(ckpt.get("code_to_digit"))) for c, d in order]
    if sweep_code is None:
        cols = [str(i + 1) for i in range(n_cols)]
        x_title = "fixed noise vector 1-10 (the same ten in every row; continuous codes 0)"
    else:
        cols = [f"{v:+.2f}" for v in torch.linspace(-2, 2, n_cols).tolist()]
        x_title = (f"c{sweep_code + 1}: continuous code {sweep_code + 1} swept over [-2, 2] "
                   f"(trained on [-1, 1]; other codes 0)")
    return netG(z.to(_device(netG))).float().cpu(), rows, cols, x_title


def infogan_grid_title(ckpt):
    """The grid figure's title: the epoch, and whether the rows could be put in digit order."""
    order = "ordered by the digit each value draws" if ckpt.get("code_to_digit") else \
        "in code order (no code->digit map in this checkpoint)"
    return f"epoch {ckpt.get('epoch', '?')}: rows = categorical code, {order}"


def _device(net):
    return next(net.parameters()).device


@torch.no_grad()
def infogan_digits(ckpt, netG, noise_index=0):
    """One image per digit 0-9 (per categorical value in code order when there is no map): the same
    fixed noise vector and continuous codes 0 for all, so only the categorical code changes.
    Returns (images, labels)."""
    config = ckpt["config"]
    mapping = ckpt.get("code_to_digit")
    order = [(c, d) for c, d in row_order(config["n_cat"], mapping) if d is not None or not mapping]
    n = len(order)
    noise = ckpt["fixed_noise"][noise_index].expand(n, -1)
    codes = torch.tensor([c for c, _ in order], dtype=torch.long)
    z = infogan_latent(noise, codes, torch.zeros(n, config["n_cont"]), config["n_cat"])
    labels = [f"digit {d}\n(code {c})" if d is not None else f"code {c}" for c, d in order]
    return netG(z.to(_device(netG))).float().cpu(), labels


def condition_names(conditions, objects):
    """Multi-hot rows -> the object names of each (in objects.json order)."""
    names = {i: name for name, i in objects.items()}
    return [[names[i] for i in row.nonzero().flatten().tolist()] for row in conditions]


@torch.no_grad()
def cgan_images(ckpt, netG, conditions, seed=CGAN_NOISE_SEED):
    """One image per condition, from noise of a fixed seed (a private generator: the caller's random
    stream is left alone), as the trainer draws its grid_test.png on a CPU run."""
    z = torch.randn(len(conditions), ckpt["config"]["noise_dim"], generator=torch.Generator().manual_seed(seed))
    return netG(z.to(_device(netG)), conditions.float().to(_device(netG))).float().cpu()


def cgan_conditions(ckpt, name):
    """The 32 conditions of the coursework's test.json / new_test.json (iclevr/) as multi-hot rows."""
    from data import SPEC_DIR, load_conditions
    return load_conditions(os.path.join(SPEC_DIR, f"{name}.json"), ckpt["objects"])


# ---------------------------------------------------------------------------- figures

def _figure(width, height):
    """A matplotlib Figure drawn by the Agg backend: no pyplot, so no global figure list to leak
    from a trainer that calls this every epoch, and nothing to set up for a display."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _wrap(text, width_inches, fontsize):
    return textwrap.fill(text, max(20, int(width_inches * 130 / fontsize)))


def grid_figure(images, nrow, title=None, row_labels=None, col_labels=None, x_title=None, scale=None):
    """Images in [-1, 1] tiled by torchvision's make_grid (white 2 px gaps) and shown at an integer
    zoom, each row named on its left and each column under it. One Axes spanning the figure in
    inches, the labels plain texts: matplotlib's tick machinery took most of the drawing time.
    Returns the Figure."""
    from torchvision.utils import make_grid
    grid = make_grid(images.float(), nrow=nrow, padding=2, normalize=True, value_range=(-1, 1), pad_value=1.0)
    h, w = grid.shape[1:]
    size = images.shape[-1]
    scale = scale or max(1, round(600 / max(h, w)))
    px = scale / 100  # inches per grid pixel
    img_w, img_h = w * px, h * px
    left = 0.25 + 0.075 * max(len(s) for s in row_labels) if row_labels else 0.15
    col_lines = max(s.count("\n") + 1 for s in col_labels) if col_labels else 0
    width = left + img_w + 0.25
    x_title = _wrap(x_title, img_w + left, 9) if x_title else None
    title = _wrap(title, width, 10) if title else None
    bottom = 0.15 + 0.17 * col_lines + (0.1 + 0.17 * (x_title.count("\n") + 1) if x_title else 0)
    top = 0.15 + (0.2 * (title.count("\n") + 1) if title else 0)
    height = bottom + img_h + top
    fig = _figure(width, height)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest", extent=(left, left + img_w, bottom, bottom + img_h))
    centre = lambda i: (2 + i * (size + 2) + size / 2) * px  # noqa: E731  (make_grid's cell i, from its edge)
    for i, label in enumerate(row_labels or []):
        ax.text(left - 0.08, bottom + img_h - centre(i), label, ha="right", va="center", fontsize=9)
    for i, label in enumerate(col_labels or []):
        ax.text(left + centre(i), bottom - 0.06, label, ha="center", va="top", fontsize=9, linespacing=1.15)
    if x_title:
        ax.text(left + img_w / 2, bottom - 0.1 - 0.17 * col_lines, x_title, ha="center", va="top", fontsize=9)
    if title:
        ax.text(width / 2, height - 0.1, title, ha="center", va="top", fontsize=10)
    return fig


def captioned_grid_figure(images, captions, nrow, title=None, cell_inches=1.28):
    """Images in [-1, 1], nrow per row, each with its caption (lines of text) written under it.
    One Axes in inches for the whole figure, each image placed by imshow's extent: an Axes per image
    drew several times slower. Returns the Figure."""
    n, rows = len(images), math.ceil(len(images) / nrow)
    lines = max((c.count("\n") + 1 for c in captions), default=1)
    gap, caption_h, margin = 0.12, 0.14 * lines + 0.1, 0.15
    width = margin * 2 + nrow * cell_inches + (nrow - 1) * gap
    title = _wrap(title, width, 10) if title else None
    top = margin + (0.2 * (title.count("\n") + 1) + 0.1 if title else 0)
    row_h = cell_inches + caption_h
    height = top + rows * row_h + margin
    fig = _figure(width, height)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    pictures = ((images.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, c = divmod(i, nrow)
        x, y = margin + c * (cell_inches + gap), height - top - r * row_h - cell_inches
        picture = pictures[i][..., 0] if pictures.shape[-1] == 1 else pictures[i]
        ax.imshow(picture, cmap="gray", vmin=0, vmax=1, interpolation="nearest",
                  extent=(x, x + cell_inches, y, y + cell_inches))
        ax.text(x + cell_inches / 2, y - 0.05, captions[i], ha="center", va="top", fontsize=7.5, linespacing=1.15)
    if title:
        ax.text(width / 2, height - margin, title, ha="center", va="top", fontsize=10)
    return fig


def save_figure(fig, path):
    """PNG via atomic_write: a reader (or a zip) never sees half a figure."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    T.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    return path


def infogan_grid_figure(ckpt, path, sweep_code=0, netG=None):
    """The labelled InfoGAN grid (see infogan_grid) as a PNG at path; returns path."""
    netG = netG or load_generator(ckpt)
    images, rows, cols, x_title = infogan_grid(ckpt, netG, sweep_code)
    return save_figure(grid_figure(images, 10, infogan_grid_title(ckpt), rows, cols, x_title), path)


def infogan_digits_figure(ckpt, path, netG=None):
    """One image per digit 0-9 (see infogan_digits) as a labelled PNG at path; returns path."""
    netG = netG or load_generator(ckpt)
    images, labels = infogan_digits(ckpt, netG)
    title = (f"epoch {ckpt.get('epoch', '?')}: one image per digit (same noise, continuous codes 0)"
             if ckpt.get("code_to_digit") else
             f"epoch {ckpt.get('epoch', '?')}: one image per categorical value (no code->digit map)")
    return save_figure(grid_figure(images, len(images), title, col_labels=labels, scale=3), path)


def cgan_grid(ckpt, netG, name="test", seed=CGAN_NOISE_SEED):
    """The 32 conditions of iclevr/NAME.json: (images, captions: the asked-for objects, one per line, title)."""
    conditions = cgan_conditions(ckpt, name)
    images = cgan_images(ckpt, netG, conditions, seed)
    captions = ["\n".join(names) for names in condition_names(conditions, ckpt["objects"])]
    title = (f"{name}.json, epoch {ckpt.get('epoch', '?')}: one image per condition in file order "
             f"(left to right, top to bottom), the asked-for objects under each; noise seed {seed}")
    return images, captions, title


def cgan_grid_figure(ckpt, path, name="test", netG=None, seed=CGAN_NOISE_SEED):
    """cgan_grid as a PNG at path, 8 images per row, the objects under each; returns path."""
    images, captions, title = cgan_grid(ckpt, netG or load_generator(ckpt), name, seed)
    return save_figure(captioned_grid_figure(images, captions, 8, title), path)


# ---------------------------------------------------------------------------- the page

def _cell(value):
    """A value as a Markdown table cell (pipes escaped, floats short, None spelled out)."""
    if value is None:
        text = "none"
    elif isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def _pairs_table(name, pairs, per_row=2):
    """(name, value) pairs side by side, per_row to a table row: half the scrolling of one per row."""
    rows = [sum((list(p) for p in pairs[i:i + per_row]), []) for i in range(0, len(pairs), per_row)]
    rows = [r + [""] * (2 * per_row - len(r)) for r in rows]
    return _table([name, "value"] * per_row, rows)


def _duration(seconds):
    minutes, s = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else (f"{minutes} min {s} s" if minutes else f"{seconds:.1f} s")


def display_path(path):
    """A run folder as the commands should name it: relative to the repository (where the commands
    run) when it lies inside it, else absolute."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path, REPO)
    return path if rel == ".." or rel.startswith(".." + os.sep) else rel


def epoch_means(path):
    """losses.csv -> (column names, {epoch: [mean of each column]}, {epoch: rows}); ({}, ...) when absent."""
    if not os.path.isfile(path):
        return [], {}, {}
    with open(path, newline="") as f:
        header = next(csv.reader(f), [])
    if len(header) < 2:
        return [], {}, {}
    try:  # at once: a long run's csv is read every epoch (0.1 s at 37,000 rows; a loop over the rows, 0.3 s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no data": a csv of the header alone
            table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        if table.size == 0:
            table = np.zeros((0, len(header)))
        elif table.shape[1] != len(header):  # every row of another width than the header's
            raise ValueError
    except ValueError:  # a damaged row: keep the rows that read
        with open(path, newline="") as f:
            table = np.array([r for r in map(_floats, list(csv.reader(f))[1:]) if r and len(r) == len(header)])
        table = table.reshape(-1, len(header))
    table = table[np.isfinite(table[:, 0])]
    epochs, which, counts = np.unique(table[:, 0].astype(int), return_inverse=True, return_counts=True)
    sums = np.zeros((len(epochs), len(header) - 2))
    np.add.at(sums, which.reshape(-1), table[:, 2:])
    return header[2:], {int(e): [float(v) for v in s / n] for e, s, n in zip(epochs, sums, counts)}, \
        {int(e): int(n) for e, n in zip(epochs, counts)}


def _floats(row):
    try:
        return [float(v) for v in row]
    except ValueError:
        return None


def read_accuracy_csv(path):
    """accuracy.csv (cGAN) -> rows [epoch, test_mean, test_std, new_test_mean, new_test_std]."""
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    try:
        return [[int(float(r[0]))] + [float(v) for v in r[1:5]] for r in rows if len(r) >= 5]
    except ValueError:
        return []


def _status(ckpt, gen, gen_name):
    if ckpt is None:
        return (f"Only the generator `{gen_name}` (epoch {gen.get('epoch', '?')}) is here: no `ckpt.pt`, so no "
                "training record; the figures are drawn from it.")
    done, target, step = ckpt.get("epoch", 0), ckpt.get("args", {}).get("epochs"), ckpt.get("step", 0)
    text = f"{done} of {target} epochs done" if target else f"{done} epochs done"
    if step:
        text += f"; stopped in epoch {done + 1} at step {step}, where `--resume` continues"
    elif target and done >= target:
        text += " (finished)"
    return text + f". Figures drawn by `{gen_name}` (epoch {gen.get('epoch', '?')})."


def shell_lines(argv, width=88):
    """argv as a copy-pasteable shell command, broken before a flag with a backslash once a line
    would pass `width` characters (a long command otherwise hides its end in a scrolled code block)."""
    lines, line = [], ""
    for word in (shlex.quote(str(a)) for a in argv):
        if line and word.startswith("--") and len(line) + 1 + len(word) > width:
            lines.append(line + " \\")
            line = "  " + word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join(lines + [line])


def _commands(ckpt, kind, run_dir):
    if ckpt is None:
        return ["## Commands", "", f"No `{T.CHECKPOINT}` in this folder: its generator can be sampled "
                f"(`{T.sample_command(display_path(run_dir), '--grid')}`), the run cannot be resumed.", ""]
    command = ckpt.get("command")
    started = shell_lines(command) if command else None
    resumed = [line for argv in ckpt.get("resumes", []) for line in ("# resumed with", shell_lines(argv))]
    resume = T.resume_command(display_path(run_dir), SCRIPTS[kind])
    lines = ["## Commands", "", "Run from the repository folder. On `--resume` every flag comes from the checkpoint; "
             "a flag given there wins (`--epochs 40` trains on to epoch 40).", ""]
    if not started:
        lines += [f"The command that started the run: {NOT_RECORDED} (every flag is in the configuration below).", ""]
    lines += ["```bash"] + (["# started with", started] if started else []) + resumed + \
        ["# to train on", resume, "```", ""]
    return lines


def _machine_lines(ckpt, gen):
    machine, seconds = (ckpt or gen).get("machine"), (ckpt or {}).get("epoch_seconds")
    if machine:
        m = f"{machine.get('device', '?')}"
        if machine.get("device_name"):
            m += f" ({machine['device_name']})"
        m += f", precision {machine.get('precision', '?')}, torch {machine.get('torch', '?')}"
    else:
        m = NOT_RECORDED
    if seconds:
        s = [float(v) for _, v in seconds]
        t = f"{s[0]:.1f} s (1 epoch)" if len(s) == 1 else \
            f"{sum(s) / len(s):.1f} s, the mean of {len(s)} epochs ({min(s):.1f}-{max(s):.1f} s); {_duration(sum(s))} in all"
    else:
        t = NOT_RECORDED
    return [("time per epoch", t), ("machine", m)]


def _infogan_results(ckpt):
    rows = []
    acc = (ckpt or {}).get("accuracy")
    if ckpt is None:
        rows.append(("code->digit accuracy", NOT_RECORDED + " (no ckpt.pt)"))
    elif acc:
        epoch, value = acc[-1]
        rows.append((f"code->digit accuracy, epoch {int(epoch)}", f"**{value:.3f}**"))
        best = ckpt.get("best") or {}
        if best.get("epoch") is not None:
            rows.append(("best code->digit accuracy", f"{best['accuracy']:.3f} at epoch {best['epoch']} (`g_best.pt`)"))
    else:
        no_eval = ckpt.get("args", {}).get("no_eval")
        rows.append(("code->digit accuracy", "not measured (`--no-eval`)" if no_eval else "none yet"))
    return rows


def _cgan_accuracy(ckpt, run_dir):
    return (ckpt or {}).get("accuracy") or read_accuracy_csv(os.path.join(run_dir, "accuracy.csv"))


def _cgan_results(ckpt, run_dir):
    rows, acc = [], _cgan_accuracy(ckpt, run_dir)
    draws = (ckpt or {}).get("args", {}).get("eval_draws")
    over = f" over {draws} noise draws" if draws else ""
    if acc:
        epoch, tm, ts, nm, ns = acc[-1][:5]
        rows.append((f"test.json accuracy, epoch {int(epoch)}", f"**{tm:.3f} ± {ts:.3f}**{over}"))
        rows.append((f"new_test.json accuracy, epoch {int(epoch)}", f"**{nm:.3f} ± {ns:.3f}**{over}"))
        best = (ckpt or {}).get("best") or {}
        if best.get("epoch") is not None:
            rows.append(("best mean of the two", f"{best['accuracy']:.3f} at epoch {best['epoch']} (`g_best.pt`)"))
        rows.append(("judged by", _judge((ckpt or {}).get("judge"))))
    elif ckpt is not None and ckpt.get("args", {}).get("no_eval"):
        rows.append(("evaluator accuracy", "not measured (`--no-eval`)"))
    else:
        rows.append(("evaluator accuracy", NOT_RECORDED if ckpt is None else "none yet"))
    return rows


def _judge(judge):
    """The evaluator behind the accuracies: the file given with --evaluator, or one trained on the data."""
    if not judge:
        return NOT_RECORDED
    if judge.get("file"):
        return f"`{os.path.basename(judge['file'])}` (`--evaluator`)"
    held = judge.get("heldout_accuracy")
    held_32 = judge.get("heldout_accuracy_32px")
    return (f"an evaluator trained on `{judge.get('trained_on', '?')}` by this toolkit, not the course's: held-out "
            f"top-k {f'{held:.3f}' if held is not None else '?'} at 64 px"
            + (f", {held_32:.3f} at 32 px upsampled" if held_32 is not None else ""))


def _cgan_misses(ckpt, objects):
    """Where the misses are: evaluate.object_breakdown per condition file, and the hardest objects."""
    breakdown = (ckpt or {}).get("breakdown")
    if not breakdown and (ckpt or {}).get("args", {}).get("no_eval"):
        return []
    if not breakdown:
        return [f"Objects found by shape and by colour: {NOT_RECORDED}.", ""]
    from evaluate import object_breakdown
    names = {i: name for name, i in objects.items()}
    lines = [f"Share of the asked-for objects the evaluator found (epoch {ckpt.get('epoch', '?')}, "
             "summed over the noise draws):", ""]
    for name in CGAN_SETS:
        if name not in breakdown:
            continue
        found, asked = breakdown[name]["found"], breakdown[name]["asked"]
        for line in object_breakdown(found, asked, objects):
            lines.append(f"- {name}.json, {line.strip()}")
        shares = sorted((float(f) / float(a), names[i]) for i, (f, a) in enumerate(zip(found, asked)) if float(a) > 0)
        lines.append(f"- {name}.json, hardest objects: " + ", ".join(f"{n} {s:.2f}" for s, n in shares[:5]))
    return lines + [""]


def _per_epoch(ckpt, kind, run_dir):
    columns, means, counts = epoch_means(os.path.join(run_dir, "losses.csv"))
    names = LOSS_NAMES if kind == "infogan" else CGAN_LOSS_NAMES
    seconds = {int(e): float(s) for e, s in (ckpt or {}).get("epoch_seconds") or []}
    if kind == "infogan":
        acc = {int(e): [float(a)] for e, a in (ckpt or {}).get("accuracy") or []}
        acc_header = ["code->digit accuracy"]
    else:
        acc = {int(r[0]): [f"{r[1]:.3f} ± {r[2]:.3f}", f"{r[3]:.3f} ± {r[4]:.3f}"] for r in _cgan_accuracy(ckpt, run_dir)}
        acc_header = ["test.json", "new_test.json"]
    epochs = sorted(set(means) | set(acc) | set(seconds))
    if not epochs:
        return []
    full = max(counts.values(), default=0)
    header = ["epoch"] + acc_header + [names.get(c, c) for c in columns] + ["seconds"]
    rows = []
    for e in epochs:
        label = f"{e} (part)" if counts.get(e, full) < full and e == max(epochs) and (ckpt or {}).get("step") else e
        a = acc.get(e, [None] * len(acc_header))
        a = [f"{v:.3f}" if isinstance(v, float) else ("–" if v is None else v) for v in a]
        m = [f"{v:.3f}" for v in means[e]] if e in means else ["–"] * len(columns)
        rows.append([label] + a + m + [f"{seconds[e]:.1f}" if e in seconds else "–"])
    note = "Means over each epoch's iterations (losses.csv)." if means else "losses.csv: not in this folder."
    if kind == "cgan" and means:
        note += " D's outputs are its mean raw scores (logits with --loss bce), not probabilities."
    return ["## Per epoch", "", note, ""] + _table(header, rows) + [""]


def _config(ckpt, gen):
    lines = ["## Configuration", "", "The model (fixed for the run, rebuilt from the checkpoint by `sample.py`):", ""]
    lines += _pairs_table("setting", [(f"`{k}`", v) for k, v in (gen.get("config") or {}).items()]) + [""]
    args = (ckpt or {}).get("args")
    if args:
        lines += ["The flags, as the run last used them (defaults included):", ""]
        lines += _pairs_table("flag", [(f"`--{k.replace('_', '-')}`", v) for k, v in args.items()]) + [""]
    else:
        lines += [f"The flags: {NOT_RECORDED} (no ckpt.pt).", ""]
    return lines


def _image(alt, path):
    return f"![{alt}]({path})"


def write_report(run_dir, generator=None, saved=None, netG=None):
    """run_dir/report.md (returned) and its figures in run_dir/report/, from the files of the run
    folder only, so it can be written at the end of any epoch by the trainers or afterwards by
    `sample.py --report`. generator: the file to draw the figures from (default: g.pt, else ckpt.pt).
    saved: (ckpt.pt's dict, g.pt's dict) as a trainer has just written them, not read back; netG: the
    trainer's G in eval mode holding g.pt's weights, drawn from instead of a copy built from them
    (InfoGAN's report took 0.72-0.94 s building its own, 0.56-0.63 s without; docs/results.md).
    A field an older run did not record is named, "not recorded", never a failure."""
    with T.isolated_rng(), torch.no_grad():
        return _write_report(run_dir, generator, saved, netG)


def _write_report(run_dir, generator, saved, netG):
    ckpt_path, g_path = os.path.join(run_dir, T.CHECKPOINT), os.path.join(run_dir, T.GENERATOR)
    if saved:
        (ckpt, gen), generator = saved, g_path
    else:
        ckpt = T.load_checkpoint(ckpt_path) if os.path.isfile(ckpt_path) else None
        generator = generator or (g_path if os.path.isfile(g_path) else (ckpt_path if ckpt else None))
        T.check(generator is not None, f"nothing to report in {run_dir}: no {T.CHECKPOINT} or {T.GENERATOR}")
        gen = ckpt if ckpt is not None and os.path.abspath(generator) == os.path.abspath(ckpt_path) \
            else T.load_checkpoint(generator)
    kind = gen["kind"]
    T.check(kind in SCRIPTS, f"{generator} holds an unknown model kind {kind!r}")
    T.check(ckpt is None or ckpt["kind"] == kind, f"{ckpt_path} is a {ckpt and ckpt['kind']} run but "
            f"{generator} a {kind} generator")
    netG = netG if saved and netG is not None else load_generator(gen)
    fig_dir = os.path.join(run_dir, FIGURES)
    rel = lambda name: f"{FIGURES}/{name}"  # noqa: E731  (links work on every OS and inside a zip)
    gen_name = os.path.relpath(generator, run_dir) if os.path.abspath(generator).startswith(
        os.path.abspath(run_dir) + os.sep) else generator

    md = [f"# {TITLES[kind]}: `{os.path.basename(os.path.abspath(run_dir))}`", "", _status(ckpt, gen, gen_name), ""]
    results = (_infogan_results(ckpt) if kind == "infogan" else _cgan_results(ckpt, run_dir)) + \
        _machine_lines(ckpt, gen)
    md += ["## Results", ""] + _table(["result", "value"], results) + [""]
    if kind == "cgan":
        md += _cgan_misses(ckpt, gen["objects"])
    md += _commands(ckpt, kind, run_dir)

    if kind == "infogan":
        config = gen["config"]
        mapping = gen.get("code_to_digit")
        acc = (ckpt or {}).get("accuracy")
        order = ("top to bottom the digits 0-9, each labelled with the categorical value that draws it: the run's "
                 "code->digit map, the one-to-one match of values to the digits a classifier reads in their images"
                 + (f"; at epoch {int(acc[-1][0])}, {acc[-1][1]:.1%} of the images drawn per value show its digit"
                    if acc else "")) if mapping \
            else f"in code order: this checkpoint has no code->digit map ({NOT_RECORDED}: --no-eval or no epoch yet)"
        md += ["## Generated digits", "", f"Rows: {order}. Fixed noise, one vector per row, so every epoch's grid "
               "shows the same latents.", ""]
        sweeps = range(config["n_cont"]) if config["n_cont"] else [None]
        for j in sweeps:
            name = f"grid_c{j + 1}.png" if j is not None else "grid_noise.png"
            infogan_grid_figure(gen, os.path.join(fig_dir, name), j, netG)
            what = f"continuous code c{j + 1} swept from -2 to 2" if j is not None else "ten fixed noise vectors"
            md += [f"### Columns: {what}", "", _image(f"InfoGAN grid, {what}", rel(name)), ""]
        infogan_digits_figure(gen, os.path.join(fig_dir, "digits.png"), netG)
        md += ["### One image per digit", "", _image("one image per digit", rel("digits.png")), ""]
    else:
        acc = _cgan_accuracy(ckpt, run_dir)
        md += ["## Generated scenes", "", "Each image is G's answer to one condition of the coursework's file, the "
               f"asked-for objects written under it. Noise seed {CGAN_NOISE_SEED}, the same every epoch.", ""]
        for i, name in enumerate(CGAN_SETS):
            cgan_grid_figure(gen, os.path.join(fig_dir, f"grid_{name}.png"), name, netG)
            score = f": evaluator accuracy {acc[-1][1 + 2 * i]:.3f} ± {acc[-1][2 + 2 * i]:.3f} at epoch {int(acc[-1][0])}" \
                if acc else ""
            md += [f"### {name}.json{score}", "", _image(f"{name}.json conditions", rel(f"grid_{name}.png")), ""]

    if os.path.isfile(os.path.join(run_dir, "curves.png")):
        what = "the losses of D, G and Q; D's probabilities D(x) and D(G(z)) before and after G's step" \
            if kind == "infogan" else "the losses of D and G; D's mean score on real and generated images"
        if (ckpt or {}).get("accuracy"):
            what += "; code->digit accuracy per epoch" if kind == "infogan" else "; evaluator accuracy per epoch"
        md += ["## Curves", "", f"Per iteration (a long run's as a moving average over its raw values, drawn faint; beyond "
               f"{T.CURVE_POINTS:,} iterations as the band from their lowest to their highest): "
               f"{what}.", "",
               _image("training curves", "curves.png"), ""]
    else:
        md += ["## Curves", "", "curves.png is not in this folder.", ""]
    if os.path.isfile(os.path.join(run_dir, "progress.gif")):
        what = "the test.json grid"
        if kind == "infogan":
            mapping = gen.get("code_to_digit")
            what = "the run's own grids, rows in code order (0 at the top)"
            if mapping:
                digits = ", ".join(str(mapping.get(c, "-")) for c in range(gen["config"]["n_cat"]))
                what += f", which by epoch {gen.get('epoch', '?')}'s map draw the digits {digits}"
        md += ["## Progress", "", f"Epoch by epoch: {what}.", "",
               _image("training progress", "progress.gif"), ""]
    md += _per_epoch(ckpt, kind, run_dir)
    md += _config(ckpt, gen)
    md += ["## Files", ""] + _table(["file", "content"], [
        (f"`{f}`", what) for f, what in RUN_FILES if os.path.exists(os.path.join(run_dir, f))] + [
        (f"`{FIGURES}/`", "the figures of this page")]) + [""]

    path = os.path.join(run_dir, REPORT)
    T.atomic_write(path, lambda tmp: _write_text(tmp, "\n".join(md)))
    return path


def _write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":  # a module, not a command: say which command writes the page
    raise SystemExit("report.py is the report's module; write a run's report.md with: "
                     "python sample.py --ckpt RUN --report")
