"""Tests that fail when what a user relies on breaks: each one pins an exact expected value, and
mutation_check.py shows each one failing against a deliberately broken copy of the code.

* code->digit accuracy matches categorical values to digits one-to-one (Hungarian), not by identity
  or by each value's majority digit;
* sample.py --digit D draws the categorical value that g.pt's code->digit map assigns to D;
* checkpoints are written atomically: a failure after the new file is written, before it replaces
  the old one, or in the middle of writing it, leaves the old file byte for byte and no temp file;
* a NaN/inf loss stops training with a message naming the exact epoch, step and iteration;
* the evaluator's top-k accuracy (k = the number of objects asked for), per image, per draw, per
  object and through evaluate.py;
* the RNG state a checkpoint stores restores Python's, NumPy's and torch's streams.

All in-process on CPU with stand-in networks (no training), except sample.py, run through its main() as a user runs it (conftest.cli).
"""
import json
import os
import random
import re
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import training as T
from conftest import cli


@pytest.fixture
def keep_global_rng():
    """Tests that draw from or reseed the global random streams leave them as they found them."""
    state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    yield
    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])


# ---------------------------------------------------------------------------- code -> digit accuracy

# The digits a stand-in generator draws for each categorical value, 10 images per value. Values 0-5
# draw a permutation of digits 0-5; values 6 and 7 both draw mostly 7s (a merge), and 8 and 9 both 9s.
DRAWS = {0: [3] * 10, 1: [0] * 10, 2: [1] * 10, 3: [2] * 10, 4: [5] * 10, 5: [4] * 10,
         6: [7] * 10, 7: [7] * 6 + [8] * 4, 8: [9] * 10, 9: [6] * 7 + [9] * 3}
# The one-to-one assignment with the most matches: 6 -> 7 (10) and 7 -> 8 (4) beat 7 -> 7 (6) with 6
# left on a digit it never draws; 9 -> 6 (7). 91 of 100 images match. (By identity: 9 of 100; by each
# value's majority digit, 6 and 7 both -> 7: 93 of 100, not a one-to-one map.)
HUNGARIAN = {0: 3, 1: 0, 2: 1, 3: 2, 4: 5, 5: 4, 6: 7, 7: 8, 8: 9, 9: 6}


class DrawsTable(nn.Module):
    """'Generator': reads the categorical value from the latent and outputs a 1x10 'image' that is
    the one-hot of the next digit of that value's row of DRAWS (the k-th image asked of a value,
    counted within each batch, is its k-th digit)."""

    def __init__(self, noise_dim, n_cat):
        super().__init__()
        self.noise_dim, self.n_cat = noise_dim, n_cat

    def forward(self, z):
        codes = z[:, self.noise_dim:self.noise_dim + self.n_cat].argmax(1).tolist()
        seen, digits = Counter(), []
        for c in codes:
            digits.append(DRAWS[c][seen[c] % len(DRAWS[c])])
            seen[c] += 1
        return F.one_hot(torch.tensor(digits), 10).float().view(-1, 1, 1, 10)


class ReadsOneHot(nn.Module):
    """'Classifier': the digit is where the 1 is."""

    def forward(self, x):
        return x.flatten(1)


def test_code_digit_accuracy_matches_values_to_digits_one_to_one():
    from train_infogan import code_digit_accuracy
    config = dict(arch="paper", noise_dim=4, n_cat=10, n_cont=1, noise="uniform")
    acc, mapping, counts = code_digit_accuracy(DrawsTable(4, 10), ReadsOneHot(), config, n_per_code=10,
                                               device="cpu", seed=0, return_counts=True)
    expected_counts = np.zeros((10, 10))
    for code, digits in DRAWS.items():
        for d in digits:
            expected_counts[code, d] += 1
    assert np.array_equal(counts, expected_counts)  # row = categorical value, column = digit read
    assert mapping == HUNGARIAN
    assert sorted(mapping.values()) == list(range(10))  # one-to-one
    assert acc == pytest.approx(0.91, abs=1e-12)


# ---------------------------------------------------------------------------- sample.py --digit

CODE_TO_DIGIT = {c: (3 * c + 1) % 10 for c in range(10)}  # a permutation: digit 7 <- value 2


def code_revealing_generator(config, seed=0):
    """G of build_infogan whose first layer ignores the noise and the continuous codes and weighs
    the categorical value strongly: every image it draws is a function of the value alone."""
    from models import build_infogan
    with T.isolated_rng():
        torch.manual_seed(seed)
        netG, _ = build_infogan(config)
        first = next(m for m in netG.modules() if isinstance(m, nn.Linear))
        nd, nc = config["noise_dim"], config["n_cat"]
        with torch.no_grad():
            first.weight.zero_()
            first.weight[:, nd:nd + nc] = 20 * torch.randn(first.weight.shape[0], nc)
    return netG.eval()


@pytest.fixture(scope="module")
def mapped_generator(tmp_path_factory):
    """(g.pt path with the CODE_TO_DIGIT map, the image each categorical value draws (n_cat, 1, 28, 28) in [0, 255])."""
    from models import infogan_latent, infogan_noise
    config = dict(arch="paper", noise_dim=8, n_cat=10, n_cont=2, noise="uniform", img_size=28)
    netG = code_revealing_generator(config)
    path = str(tmp_path_factory.mktemp("mapped") / "g.pt")
    with T.isolated_rng():
        fixed_noise = infogan_noise(10, config)
    T.save_checkpoint(dict(kind="infogan", config=config, netG=netG.state_dict(), fixed_noise=fixed_noise, epoch=1,
                           code_to_digit=CODE_TO_DIGIT), path)
    with torch.no_grad():
        z = infogan_latent(torch.zeros(10, 8), torch.arange(10), torch.zeros(10, 2), 10)
        per_code = (netG(z).clamp(-1, 1) + 1) * 127.5
    distances = (per_code[:, None] - per_code[None]).abs().flatten(2).mean(2)
    assert distances[~torch.eye(10, dtype=torch.bool)].min() > 10, "the values' images must tell them apart"
    return path, per_code


def drawn_codes(images, per_code):
    """The categorical value whose image each of `images` (uint8, N x 1 x 28 x 28) is: the nearest,
    which must be a match to within rounding."""
    d = (torch.as_tensor(images).float()[:, None] - per_code[None]).abs().flatten(2)
    nearest = d.mean(2).argmin(1)
    assert d[torch.arange(len(images)), nearest].max() <= 1, "an image that no categorical value draws"
    return nearest.tolist()


def test_sample_digit_draws_the_value_the_stored_map_names(mapped_generator, tmp_path):
    path, per_code = mapped_generator
    cli("sample.py", "--ckpt", path, "--digit", 7, "--n", 6, "--out", tmp_path / "d7.npz", check=True)
    images = np.load(tmp_path / "d7.npz")["images"]
    assert images.shape == (6, 1, 28, 28)
    assert drawn_codes(images, per_code) == [2] * 6  # CODE_TO_DIGIT[2] == 7


def test_sample_code_draws_that_value_unmapped(mapped_generator, tmp_path):
    path, per_code = mapped_generator
    proc = cli("sample.py", "--ckpt", path, "--code", 7, "--n", 3, "--out", tmp_path / "c7.npz")
    assert proc.returncode == 0, proc.stderr
    assert drawn_codes(np.load(tmp_path / "c7.npz")["images"], per_code) == [7] * 3


# ---------------------------------------------------------------------------- atomic checkpoints

class Crash(Exception):
    """Stands for the process dying at that point."""


def test_checkpoint_write_failing_before_the_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / "ckpt.pt")
    T.save_checkpoint({"kind": "infogan", "config": {}, "epoch": 1, "w": torch.arange(1000.0)}, path)
    before = open(path, "rb").read()
    written = []

    def crash(src, dst, *args, **kwargs):
        # the new checkpoint is complete in its temp file; the process dies before it replaces the old one
        written.append((os.path.basename(dst), torch.load(src, weights_only=True)["epoch"]))
        raise Crash("died between writing the new checkpoint and renaming it")

    monkeypatch.setattr(os, "replace", crash)
    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(Crash):
        T.save_checkpoint({"kind": "infogan", "config": {}, "epoch": 2, "w": torch.zeros(1000)}, path)
    monkeypatch.undo()
    assert written == [("ckpt.pt", 2)], "the new checkpoint must go to a temporary file first, then be renamed"
    assert open(path, "rb").read() == before, "the old checkpoint was overwritten"
    assert os.listdir(tmp_path) == ["ckpt.pt"], "a temporary file was left behind"
    assert T.load_checkpoint(path)["epoch"] == 1


class FailsToPickle:
    def __reduce__(self):
        raise Crash("disk full in the middle of writing")


def test_checkpoint_write_failing_midway_keeps_the_old_file(tmp_path):
    path = str(tmp_path / "ckpt.pt")
    T.save_checkpoint({"kind": "infogan", "config": {}, "epoch": 1, "w": torch.arange(1000.0)}, path)
    before = open(path, "rb").read()
    with pytest.raises(Crash):
        T.save_checkpoint({"kind": "infogan", "config": {}, "epoch": 2, "w": torch.zeros(10000), "x": FailsToPickle()},
                          path)
    assert open(path, "rb").read() == before, "the old checkpoint was damaged by the failed write"
    assert os.listdir(tmp_path) == ["ckpt.pt"], "a temporary file was left behind"


# ---------------------------------------------------------------------------- NaN stop

class NoStop:
    signum = None
    exit_code = None

    def __bool__(self):
        return False


NAN_WHERE = re.compile(r"epoch (\d+), step (\d+) \(iteration (\d+)\)")


@pytest.mark.parametrize("epoch,bad_step,value,saved", [
    (0, 0, float("nan"), False),   # the very first step of a run
    (2, 24, float("inf"), True),   # the last step before the host's first look at the statistics
    (2, 25, float("nan"), True),   # the first step after it
    (2, 39, -float("inf"), True),  # the epoch's last step
])
def test_nan_stop_names_the_exact_epoch_step_and_iteration(tmp_path, capsys, epoch, bad_step, value, saved):
    """40 steps per epoch; step `bad_step` (0-based) of epoch `epoch` (0-based) returns a NaN/inf
    statistic: training stops there, exit code 1, one line naming epoch epoch+1, step bad_step+1,
    iteration epoch*40 + bad_step + 1 (1-based, as the progress bar and losses.csv count)."""
    steps, calls = 40, []
    if saved:
        T.save_checkpoint({"kind": "infogan", "config": {}}, str(tmp_path / T.CHECKPOINT))

    def step_fn(idx, _):
        calls.append(len(idx))
        bad = len(calls) - 1 == bad_step
        return torch.tensor(value if bad else 0.5), torch.tensor(1.0)

    state = {"epoch": epoch, "step": 0, "perm": None, "history": []}
    args = SimpleNamespace(batch_size=2, epochs=5, log_every=25)
    with pytest.raises(T.TrainingStopped) as stopped:
        T.train_epoch(state, epoch, 2 * steps, step_fn, ("loss", "other"), args, NoStop(), torch.device("cpu"),
                      str(tmp_path), save_partial=lambda: None)
    assert stopped.value.exit_code == 1
    assert calls == [2] * len(calls) and len(calls) <= steps
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "NaN" in lines[0], lines
    m = NAN_WHERE.search(lines[0])
    assert m and tuple(map(int, m.groups())) == (epoch + 1, bad_step + 1, epoch * steps + bad_step + 1), lines[0]
    if saved:
        assert f"kept in {tmp_path}" in lines[0], lines[0]
    else:
        assert "no checkpoint" in lines[0] and "kept" not in lines[0], lines[0]


def test_finite_epoch_is_not_stopped(tmp_path):
    """The other side of the NaN check: an epoch of finite statistics runs all its steps, keeps them."""
    state = {"epoch": 1, "step": 0, "perm": None, "history": []}
    args = SimpleNamespace(batch_size=2, epochs=5, log_every=25)
    rows = T.train_epoch(state, 1, 60, lambda idx, _: (torch.tensor(0.25), torch.tensor(1e30)), ("a", "b"), args,
                         NoStop(), torch.device("cpu"), str(tmp_path), save_partial=lambda: None)
    assert rows == [[0.25, pytest.approx(1e30)]] * 30 and state["step"] == 0
    assert [h[:2] for h in state["history"]] == [[2, 31 + i] for i in range(30)]  # epoch 2, iterations 31..60


# ---------------------------------------------------------------------------- the evaluator's top-k accuracy

def test_topk_takes_as_many_outputs_as_the_image_has_objects():
    from models import topk_accuracy, topk_hits
    labels = torch.tensor([[1, 0, 0, 0, 0],    # k = 1
                           [0, 1, 0, 1, 0],    # k = 2
                           [1, 0, 1, 0, 1]])   # k = 3
    probs = torch.tensor([[0.9, 0.8, 0.1, 0.2, 0.3],   # top-1: {0} -> 1 hit
                          [0.1, 0.7, 0.9, 0.6, 0.2],   # top-2: {2, 1} -> 1 hit (3 is third)
                          [0.5, 0.9, 0.4, 0.8, 0.7]])  # top-3: {1, 3, 4} -> 1 hit (4)
    assert torch.equal(topk_hits(probs, labels), torch.tensor([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 1]]).float())
    assert topk_accuracy(probs, labels) == pytest.approx(3 / 6)
    # the outputs' scale does not matter, only their order; a perfect ranking scores 1
    assert topk_accuracy(labels * 0.3 + 0.01, labels) == 1.0


class WritesCondition(nn.Module):
    """'Generator' of 64-px images whose first row holds the condition, except that an image whose
    noise z[0] > 0 swaps its lowest-numbered object for the lowest-numbered absent one. It records
    the noise it was given."""

    def __init__(self):
        super().__init__()
        self.noises = []

    def forward(self, z, y):
        self.noises.append(z.clone())
        row = y.clone().float()
        for i in range(len(y)):
            if z[i, 0] > 0:
                row[i, int(y[i].nonzero()[0])] = 0
                row[i, int((y[i] == 0).nonzero()[0])] = 1
        images = -torch.ones(len(y), 3, 64, 64)
        images[:, 0, 0, :y.size(1)] = row * 2 - 1
        return images


class ReadsFirstRow(nn.Module):
    def forward(self, x):
        return (x[:, 0, 0, :24] + 1) / 2


def test_generator_accuracy_mean_std_and_per_object_counts():
    from evaluate import generator_accuracy, object_breakdown
    conditions = torch.zeros(6, 24)
    for i, objs in enumerate([[0], [1, 5], [2, 3, 23], [7], [0, 9], [4, 8, 12]]):
        conditions[i, objs] = 1
    netG = WritesCondition()
    mean, std, first, found = generator_accuracy(netG, 3, ReadsFirstRow(), conditions, draws=4, seed=0)
    k = conditions.sum(1)
    accs, expected_found = [], torch.zeros(24)
    for z in netG.noises:  # what the evaluator must have found, from the noise the generator was given
        swapped = z[:, 0] > 0
        accs.append(float((k - swapped.float()).sum() / k.sum()))
        for i in range(len(conditions)):
            present = conditions[i].nonzero().flatten().tolist()
            expected_found[present[1:] if swapped[i] else present] += 1
    assert len(accs) == 4 and len(set(accs)) > 1, "the draws should differ"
    assert mean == pytest.approx(float(np.mean(accs)), abs=1e-6)
    assert std == pytest.approx(float(np.std(accs, ddof=1)), abs=1e-6)
    assert torch.equal(found, expected_found)
    assert first.shape == (6, 3, 64, 64)
    objects = {"red cube": 0, "blue cube": 1, "red sphere": 2}
    assert object_breakdown(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([2.0, 1.0, 4.0]), objects) == [
        "  found by shape: cube 0.33, sphere 0.50", "  found by colour: red 0.50, blue 0.00"]


def test_evaluate_cli_prints_the_exact_topk_accuracy(iclevr_root, tmp_path):
    """An evaluator file whose ResNet-18 ignores the image (fc weights 0) and ranks the 24 objects by
    its fc bias: the accuracy evaluate.py prints over the data set is computable from train.json."""
    from models import build_evaluator
    with T.isolated_rng():
        net = build_evaluator()
    rank = torch.randperm(24, generator=torch.Generator().manual_seed(1))  # rank[j]: the j-th most likely object
    bias = torch.empty(24)
    bias[rank] = torch.linspace(2, -2, 24)
    state = net.state_dict()
    state["fc.0.weight"].zero_()
    state["fc.0.bias"].copy_(bias)
    path = tmp_path / "evaluator.pth"
    torch.save({"model": state}, path)
    objects = json.load(open(os.path.join(iclevr_root, "objects.json")))
    train = json.load(open(os.path.join(iclevr_root, "train.json")))
    hits = total = 0
    for names in train.values():
        top = set(rank[:len(names)].tolist())
        hits += len(top & {objects[n] for n in names})
        total += len(names)
    assert len({len(v) for v in train.values()}) > 1, "needs images with different numbers of objects"
    proc = cli("evaluate.py", "--data-root", iclevr_root, "--evaluator", path, "--device", "cpu",
               env={"GAN_CACHE_DIR": tmp_path / "cache"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"evaluator top-k accuracy on all {len(train)} images of {iclevr_root}: {hits / total:.4f}"


# ---------------------------------------------------------------------------- RNG state

def draw_each_stream():
    return {"python": (random.random(), random.getrandbits(64)),
            "numpy": (np.random.rand(3).tolist(), float(np.random.randn())),
            "torch": (torch.rand(3).tolist(), torch.randint(1 << 30, (2,)).tolist())}


def test_rng_state_in_a_checkpoint_restores_python_numpy_and_torch(tmp_path, keep_global_rng):
    T.seed_everything(5)
    np.random.randn(3)  # an odd number of normals: NumPy holds the next one (its cached Gaussian)
    state = T.rng_state()
    expected = draw_each_stream()
    draw_each_stream()  # every stream moves on...
    T.save_checkpoint({"kind": "infogan", "config": {}, "rng": state}, str(tmp_path / "ckpt.pt"))
    T.set_rng_state(T.load_checkpoint(str(tmp_path / "ckpt.pt"))["rng"])  # ...and is put back
    again = draw_each_stream()
    for stream in expected:
        assert again[stream] == expected[stream], f"{stream}'s random stream was not restored"


def test_help_shows_every_default():
    """--help names the defaults, a 0 included (0 == False: a test `default in (None, False)` would hide it)."""
    proc = cli("data.py", "make-iclevr", "--help")
    assert proc.returncode == 0 and "same seed = same images) (default: 0)" in " ".join(proc.stdout.split())
    proc = cli("evaluate.py", "--help")
    assert proc.returncode == 0 and "noise draws per condition file (default: 10)" in " ".join(proc.stdout.split())
