"""The cGAN side of "nothing lost, nothing cryptic": bad i-CLEVR input, flags and evaluator files give
one line and exit code 2 (main() run in-process, conftest.cli, and one case through the real entry
point); resuming train_cgan.py is bit-exact."""
import json
import os
import shutil
import sys

import pytest
import torch

import training as T
from conftest import cli, run

ENV = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
# explicit model flags, so a change of train_cgan.py's defaults does not change what these tests run
TINY = ["--img-size", 32, "--batch-size", 16, "--g-width", 16, "--d-width", 16, "--g-upsample", "--g-cond", "cbn",
        "--seed", 5, "--precision", "fp32", "--device", "cpu"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """ENV plus a cache folder of this module's own (decoded images, evaluators)."""
    return {**ENV, "GAN_CACHE_DIR": str(tmp_path_factory.mktemp("cgan_cache"))}


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
    "no JSON files": (lambda r: [os.remove(os.path.join(r, f)) for f in ("train.json", "objects.json")],
                      "holds no i-CLEVR (no objects.json or train.json; make a synthetic one with: python data.py"),
    "malformed train.json": (lambda r: write(os.path.join(r, "train.json"), "{not json"), "not valid JSON"),
    "malformed objects.json": (lambda r: write(os.path.join(r, "objects.json"), "[1, 2"), "not valid JSON"),
    "unknown object": (unknown_object, "unknown object 'pink cube'"),
    "missing image": (drop_first_image, "image listed in train.json is missing"),
    "no image folder": (lambda r: shutil.rmtree(os.path.join(r, "iclevr")), "no image folder"),
}
# found before the run folder is made, so they leave none behind
BEFORE_RUN_FOLDER = {"no JSON files", "no image folder"}


def assert_one_line_error(proc, phrase):
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], proc.stderr


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_bad_iclevr_folder_is_one_clear_line(iclevr_root, tmp_path, env, case):
    damage, phrase = DAMAGE[case]
    root = broken_copy(iclevr_root, str(tmp_path / "data"), damage)
    proc = cli("train_cgan.py", "--data-root", root, "--no-eval", "--out", tmp_path / "run", *TINY, env=env)
    assert_one_line_error(proc, phrase)
    if case in BEFORE_RUN_FOLDER:
        assert not os.path.exists(tmp_path / "run") and not proc.stdout, proc.stdout


def test_missing_iclevr_folder_says_how_to_make_one(tmp_path, env):
    """Through the real entry point (`python train_cgan.py`), as a user types it."""
    proc = run("train_cgan.py", "--data-root", tmp_path / "nope", "--out", tmp_path / "run", *TINY, env=env, check=False)
    assert_one_line_error(proc, "make-iclevr")
    assert not os.path.exists(tmp_path / "run") and not proc.stdout, proc.stdout  # a typo leaves no empty run


@pytest.mark.parametrize("flags,phrase", [
    (["--aux-weight", -1], "--aux-weight, --gp-weight and --spectral-weight must be finite and >= 0"),
    (["--gp-weight", -1], "--aux-weight, --gp-weight and --spectral-weight must be finite and >= 0"),
    (["--spectral-weight", -1], "--aux-weight, --gp-weight and --spectral-weight must be finite and >= 0"),
    (["--spectral-weight", "nan"], "--aux-weight, --gp-weight and --spectral-weight must be finite and >= 0"),
    (["--n-critic", 0], "--n-critic must be > 0"),
    (["--eval-draws", 0], "--eval-draws must be > 0"),
    (["--g-ema", 1], "--g-ema must be in [0, 1)"),
    (["--lr-d", 0], "--lr-g and --lr-d must be > 0"),
    (["--loss", "wgan-gp", "--d-norm", "batch"], "gradient penalty is per sample"),
    (["--batch-size", 1000], "larger than the data set"),
])
def test_bad_cgan_flags_are_one_clear_line(iclevr_root, tmp_path, env, flags, phrase):
    proc = cli("train_cgan.py", "--data-root", iclevr_root, "--no-eval", "--out", tmp_path / "run", "--epochs", 1,
               *TINY, *flags, env=env)
    assert_one_line_error(proc, phrase)


def test_default_length_is_a_number_of_images(iclevr_root, tmp_path, env, monkeypatch):
    """Without --epochs a run lasts as many epochs as show D DEFAULT_IMAGES real images, whatever
    the set's size, and the checkpoint keeps that number for --resume."""
    import train_cgan
    n_images = len(json.load(open(os.path.join(iclevr_root, "train.json"))))
    monkeypatch.setattr(train_cgan, "DEFAULT_IMAGES", 2 * n_images)
    proc = cli("train_cgan.py", "--data-root", iclevr_root, "--no-eval", "--out", tmp_path / "run", *TINY, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "epoch 2/2 " in proc.stdout, proc.stdout
    saved = T.load_checkpoint(str(tmp_path / "run"))
    assert saved["epoch"] == 2 and saved["args"]["epochs"] == 2


@pytest.mark.parametrize("content,phrase", [
    ({"model": {"fc.0.weight": torch.zeros(10, 512)}}, "does not hold a ResNet-18"),
    ({"weights": {}}, "not an evaluator file"),
    (None, "cannot load evaluator"),
])
def test_bad_evaluator_file_is_one_clear_line(iclevr_root, tmp_path, env, content, phrase):
    path = tmp_path / "checkpoint.pth"
    if content is None:
        path.write_bytes(b"\x00garbage" * 10)
    else:
        torch.save(content, path)
    proc = cli("train_cgan.py", "--data-root", iclevr_root, "--evaluator", path, "--out", tmp_path / "run", *TINY, env=env)
    assert_one_line_error(proc, phrase)


def test_infogan_checkpoint_to_cgan_commands_is_refused(tmp_path, env):
    from models import build_infogan
    config = dict(arch="paper", noise_dim=8, n_cat=10, n_cont=2, noise="uniform", img_size=28)
    with T.isolated_rng():
        netG, _ = build_infogan(config)
    os.makedirs(tmp_path / "infogan")
    g = str(tmp_path / "infogan" / "g.pt")
    torch.save(dict(kind="infogan", config=config, netG=netG.state_dict(), epoch=1, code_to_digit=None), g)
    proc = cli("train_cgan.py", "--resume", g, env=env)
    assert_one_line_error(proc, "is an infogan checkpoint, not cgan; use it with train_infogan.py --resume or sample.py")
    proc = cli("evaluate.py", "--ckpt", g, env=env)
    assert_one_line_error(proc, "use it with train_infogan.py --resume or sample.py")


def test_cgan_resume_is_bit_exact(iclevr_root, tmp_path, env):
    """wgan-gp (n_critic 2 across epoch boundaries: 3 steps per epoch) with G's moving average,
    for 2 epochs in one go, against 1 epoch + --resume in a process of its own, as a user resumes."""
    common = ["--data-root", iclevr_root, "--no-eval", "--loss", "wgan-gp", "--n-critic", 2, "--g-ema", 0.9,
              "--d-norm", "instance", *TINY]
    for epochs, name in ((2, "full"), (1, "half")):
        cli("train_cgan.py", *common, "--epochs", epochs, "--out", tmp_path / name, env=env, check=True)
    run("train_cgan.py", *common, "--epochs", 2, "--resume", tmp_path / "half", env=env)
    full, half = T.load_checkpoint(str(tmp_path / "full")), T.load_checkpoint(str(tmp_path / "half"))
    assert half["epoch"] == full["epoch"] == 2
    for net in ("netG", "netD", "netG_ema"):
        assert full[net].keys() == half[net].keys()
        for key, value in full[net].items():
            assert torch.equal(value, half[net][key]), (net, key)
    assert half["history"] == full["history"]


def test_the_evaluator_only_judges(iclevr_root, tiny_evaluator, tmp_path, env):
    """Judged every epoch or never judged, the same seed trains the same G and D to the bit: no
    gradient, reward or random draw of the evaluation reaches training. The evaluator's choice shows
    only in g_best.pt, the best judged epoch.
    The blind run keeps a moving average of G with decay 0.5 instead of 0.999: in its 3 steps the
    warm-up decay (1 + n) / (10 + n) is below both, so both averages follow G alike, to the bit."""
    common = ["--data-root", iclevr_root, "--epochs", 1, *TINY]
    cli("train_cgan.py", *common, "--evaluator", tiny_evaluator, "--eval-draws", 2, "--out", tmp_path / "judged", env=env)
    cli("train_cgan.py", *common, "--no-eval", "--g-ema", 0.5, "--out", tmp_path / "blind", env=env)
    judged, blind = T.load_checkpoint(str(tmp_path / "judged")), T.load_checkpoint(str(tmp_path / "blind"))
    for net in ("netG", "netD", "netG_ema"):
        for key, value in judged[net].items():
            assert torch.equal(value, blind[net][key]), (net, key)
    assert torch.equal(judged["rng"]["torch"], blind["rng"]["torch"])  # the next epoch would draw the same
    assert len(judged["accuracy"]) == 1 and blind["accuracy"] == []


def moves_of(moved, x, max_shift):
    """For each image of moved: the one (mirrored, dx, dy) that makes it from x (edges repeated)."""
    padded, size, span = torch.nn.functional.pad(x, [max_shift] * 4, mode="replicate"), x.shape[-1], 2 * max_shift + 1
    moves = []
    for i in range(len(x)):
        found = [(flip, dx, dy) for flip in (False, True) for dx in range(span) for dy in range(span)
                 if torch.equal(moved[i], (padded[i].flip(-1) if flip else padded[i])[:, dy:dy + size, dx:dx + size])]
        assert len(found) == 1, i
        moves.append(found[0])
    return moves


def test_judge_training_sees_mirrored_and_shifted_scenes(monkeypatch):
    """The evaluator trains on scenes mirrored half the time and moved by up to 4 px (the same objects,
    so the same label); each output is its input under one such move, and the moves vary."""
    import evaluate
    x = torch.rand(64, 3, 16, 16)
    moved = evaluate.flip_and_shift(x)
    assert moved.shape == x.shape
    moves = set(moves_of(moved, x, 4))
    assert {flip for flip, _, _ in moves} == {False, True} and len(moves) > 20

    seen = []
    monkeypatch.setattr(evaluate, "flip_and_shift", lambda batch: seen.append(batch.shape) or batch)
    images = torch.randint(0, 256, (40, 3, 64, 64), dtype=torch.uint8)
    evaluate.train_evaluator(images, (torch.rand(40, 24) < 0.1).float(), "cpu", epochs=1, batch_size=16)
    assert seen == [(16, 3, 64, 64)] * 2  # every training batch (36 of 40 train; the last short one is skipped)


@pytest.mark.parametrize("augment", [True, False])
def test_d_sees_real_and_generated_scenes_moved_alike(augment):
    """--augment (the default): each scene D scores, real or G's, is a mirrored and shifted copy (up
    to img_size/8 px), and G still learns through the move; --no-augment: D sees the scenes as they are."""
    from argparse import Namespace
    from models import build_cgan
    from train_cgan import Losses, train_step
    config = dict(img_size=32, noise_dim=8, g_width=8, d_width=8, g_upsample=True, g_cond="cbn",
                  cond="projection", d_norm="spectral", n_classes=24)
    losses = Losses.from_args(Namespace(loss="hinge", aux_weight=1.0, gp_weight=10.0, n_critic=1, augment=augment,
                                        spectral_weight=0.0), 32)
    assert losses.max_shift == (4 if augment else 0)
    torch.manual_seed(0)
    netG, netD = build_cgan(config)
    real, y = torch.rand(8, 3, 32, 32) * 2 - 1, (torch.rand(8, 24) < 0.1).float()
    seen, d_forward = [], netD.forward
    netD.forward = lambda x, y, **kw: seen.append(x.detach().clone()) or d_forward(x, y, **kw)
    fakes, g_forward = [], netG.forward
    netG.forward = lambda z, y: fakes.append(g_forward(z, y)) or fakes[-1]
    optG, optD = torch.optim.SGD(netG.parameters(), lr=1e-3), torch.optim.SGD(netD.parameters(), lr=0.0)
    g_weights = [p.detach().clone() for p in netG.parameters()]
    train_step(real, y, netG, netD, optG, optD, losses, T.Amp(torch.device("cpu"), "fp32"), g_step=True)
    fake = fakes[0].detach()
    assert len(seen) == 3  # real and fake for D's step, fake again for G's
    for view, scene in zip(seen, (real, fake, fake)):
        if augment:
            moves = moves_of(view, scene, 4)
            assert len(set(moves)) > 1  # each scene moved its own way
        else:
            assert torch.equal(view, scene)
    assert any(not torch.equal(a, p) for a, p in zip(g_weights, netG.parameters()))  # G's gradient came through


def test_separate_aux_body_keeps_the_classifier_and_the_game_apart():
    """D's classifier on a body of its own: the classifier's loss trains its own body, never D's spectral-norm body,
    and the real/fake score never reaches the classifier's body, which has no spectral norm."""
    from models import CondDiscriminator
    torch.manual_seed(0)
    netD = CondDiscriminator(24, img_size=32, width=8, aux_body="separate")
    x, y = torch.randn(4, 3, 32, 32), (torch.rand(4, 24) < 0.1).float()
    netD(x, y)[1].sum().backward()
    assert all(p.grad is None for p in netD.body.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in netD.aux_body.parameters())
    netD.zero_grad(set_to_none=True)
    netD(x, y)[0].sum().backward()
    assert all(p.grad is None for p in netD.aux_body.parameters())
    assert all(p.grad is not None for p in netD.body.parameters())
    assert not any(name.endswith("_orig") for name, _ in netD.aux_body.named_parameters())


@pytest.mark.parametrize("aux_weight,has_own_body", [(1.0, True), (0.0, False)])
def test_d_builds_a_classifier_body_only_for_a_classifier_term(aux_weight, has_own_body):
    """The classifier's own body only with a classifier term; --aux-weight 0, as in seed 002's command: no second body
    that every D step would run and nothing would train."""
    from models import build_cgan
    from train_cgan import get_parser, model_config, validate
    args = get_parser().parse_args(["--aux-weight", str(aux_weight), "--img-size", "32"])
    validate(args)
    _, netD = build_cgan(model_config(args))
    assert (netD.aux_body is not None) == has_own_body


def test_the_classifier_body_has_its_3x3_convolutions_and_old_checkpoints_build_without():
    """The default D's classifier body has a 3x3 convolution after each downsampling but the last; a
    checkpoint from before aux_refine existed (no such key) rebuilds the body it was trained with."""
    from models import build_cgan
    from train_cgan import get_parser, model_config, validate
    args = get_parser().parse_args(["--img-size", "32"])
    validate(args)
    config = model_config(args)

    def kernels(netD):
        return [m.kernel_size[0] for m in netD.aux_body.modules() if isinstance(m, torch.nn.Conv2d)]
    assert kernels(build_cgan(config)[1]) == [4, 3, 4, 3, 4]
    assert kernels(build_cgan({k: v for k, v in config.items() if k != "aux_refine"})[1]) == [4, 4, 4]


@pytest.mark.parametrize("typed,saved,augment", [([], {}, False), ([], {"augment": True}, True),
                                                 (["--augment"], {}, True), (["--no-augment"], {"augment": True}, False)])
def test_a_run_from_before_augment_resumes_as_it_was_trained(monkeypatch, typed, saved, augment):
    """A checkpoint without the augment flag comes from a run that saw the scenes as they are: its
    --resume goes on without augmentation unless the command line asks for it."""
    from train_cgan import FLAGS_BEFORE, MODEL_KEYS, get_parser
    monkeypatch.setattr(sys, "argv", ["train_cgan.py", "--resume", "RUN", *typed])
    ckpt = {"path": "RUN/ckpt.pt", "optD": {}, "args": saved, "config": {}}
    args = T.resume_args(get_parser().parse_args(), ckpt, get_parser(), MODEL_KEYS, FLAGS_BEFORE)
    assert args.augment is augment
    assert args.spectral_weight == 0.0  # nor had it a spectral loss


@pytest.mark.parametrize("device,typed,ckpt_model,model", [
    ("cpu", ["--img-size", "64"], None, (32, 32, False, 0.0)),
    ("cpu", ["--img-size", "64", "--spectral-weight", "1"], None, (32, 32, False, 1.0)),
    ("cpu", ["--img-size", "32"], None, (32, 32, True, 0.0)),
    ("cpu", [], None, (32, 32, True, 0.0)),
    ("cpu", ["--img-size", "64", "--g-width", "48", "--g-upsample"], None, (48, 32, True, 0.0)),
    ("cpu", ["--img-size", "64"], (64, 64, True), (64, 64, True, 0.0)),
    ("cuda", [], None, (64, 64, True, 0.0))])
def test_a_cpu_trains_the_narrower_networks(monkeypatch, device, typed, ckpt_model, model):
    """On a CPU, both sizes default to half the channels (more epochs in the hour), 64 px with a transposed-conv G,
    32 px (the CPU's size) with upsampling (docs/results.md); a GPU (64 px) keeps 64 wide with
    upsampling, typed flags what was typed (the spectral loss included, off unless typed), and a checkpoint
    keeps its own."""
    from train_cgan import Losses, get_parser, validate
    monkeypatch.setattr(T, "pick_device", lambda name: torch.device(device))  # a GPU's choice, without one
    args = get_parser().parse_args(typed)
    ckpt = None if ckpt_model is None else {"config": {"img_size": 64, "d_norm": "spectral", "g_width": ckpt_model[0],
                                                       "d_width": ckpt_model[1], "g_upsample": ckpt_model[2]}}
    validate(args, ckpt)
    assert (args.g_width, args.d_width, args.g_upsample, args.spectral_weight) == model
    assert Losses.from_args(args, args.img_size).spectral_weight == model[3]  # what train_step is given
    assert device == "cpu" or args.img_size == 64
