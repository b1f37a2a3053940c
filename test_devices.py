"""Devices and precision: which device and precision `auto` picks (CUDA, Apple silicon, CPU; bf16
where it is native, fp16 with a gradient scaler on older GPUs), with availability mocked; and the
fp16 path itself, which runs on the CPU too: a training epoch of each model, bit-exact resume with
the scalers' state, a skipped overflow step that is no NaN stop, and the NaN stop that still is.
"""

import pytest
import torch

import training as T
from conftest import cli, narrow_infogan, write_fake_mnist

# fp16 on a CPU runs without hardware support, many times slower than fp32: one or two small steps an epoch
FAST = ["--batch-size", 10, "--seed", 3, "--no-eval"]
TINY_CGAN = ["--batch-size", 24, "--g-width", 8, "--d-width", 8, "--seed", 5, "--no-eval"]


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    """10 images: one step of 10 an epoch."""
    return write_fake_mnist(str(tmp_path_factory.mktemp("tiny_mnist")), n_train=10, n_test=10)


def mock_machine(monkeypatch, cuda=False, mps=False, capability=(8, 0), cpu_bf16=False, bf16_faster=True):
    monkeypatch.setattr(T, "cpu_bf16_is_faster", lambda: bf16_faster)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.setattr(T, "cpu_has_native_bf16", lambda: cpu_bf16)


@pytest.mark.parametrize("cuda,mps,expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_device_takes_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    mock_machine(monkeypatch, cuda=cuda, mps=mps)
    assert T.pick_device("auto").type == expected
    assert T.pick_device("cpu").type == "cpu"


def test_asking_for_a_missing_device_is_one_clear_error(monkeypatch):
    mock_machine(monkeypatch)
    with pytest.raises(T.UserError, match="no CUDA GPU"):
        T.pick_device("cuda")
    with pytest.raises(T.UserError, match="no Apple-silicon GPU"):
        T.pick_device("mps")


@pytest.mark.parametrize("device,capability,cpu_bf16,bf16_faster,expected", [
    ("cuda", (8, 0), False, False, "bf16"),   # A100 and newer: bf16 is native
    ("cuda", (9, 0), False, False, "bf16"),
    ("cuda", (7, 5), True, True, "fp16"),     # T4 (Colab), RTX 20xx: bf16 only emulated; fp16 tensor cores
    ("cuda", (6, 1), False, False, "fp16"),   # GTX 10xx
    ("cpu", None, True, True, "bf16"),        # AVX512-BF16 / AMX, and measured faster
    ("cpu", None, True, False, "fp32"),       # native, but measured slower
    ("cpu", None, False, True, "fp32"),
    ("mps", None, True, True, "fp32"),
])
def test_auto_precision_follows_the_hardware(monkeypatch, device, capability, cpu_bf16, bf16_faster, expected):
    mock_machine(monkeypatch, cuda=device == "cuda", capability=capability or (8, 0), cpu_bf16=cpu_bf16,
                 bf16_faster=bf16_faster)
    assert T.pick_precision(torch.device(device), "auto") == expected
    for explicit in ("bf16", "fp16", "fp32"):  # an explicit choice is taken as it is
        assert T.pick_precision(torch.device(device), explicit) == explicit


@pytest.mark.parametrize("fp32_s,bf16_s,expected", [(1.0, 0.5, True), (1.0, 1.0, False), (0.4, 0.96, False)])
def test_cpu_bf16_is_timed_once_and_remembered(monkeypatch, tmp_path, fp32_s, bf16_s, expected):
    monkeypatch.setenv("GAN_CACHE_DIR", str(tmp_path))
    timed = []
    monkeypatch.setattr(T, "time_dcgan_block", lambda: timed.append(1) or {"fp32": fp32_s, "bf16": bf16_s})
    assert T.cpu_bf16_is_faster() is expected and len(timed) == 1
    assert T.cpu_bf16_is_faster() is expected and len(timed) == 1  # read back, not timed again
    (tmp_path / "cpu_precision.json").write_text("{not json")
    assert T.cpu_bf16_is_faster() is expected and len(timed) == 2  # a broken file is timed again


def test_time_dcgan_block_times_both_precisions_and_leaves_the_random_stream_alone():
    torch.manual_seed(0)
    seconds = T.time_dcgan_block(batch=2, reps=1)
    assert set(seconds) == {"fp32", "bf16"} and all(0 < s < float("inf") for s in seconds.values())
    after = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(1))


def test_a_resumed_auto_run_keeps_the_precision_it_started_with(iclevr_root, tmp_path, monkeypatch):
    """(Through the cGAN: both trainers pick the precision in training.start_run.)"""
    monkeypatch.setattr(T, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(T, "cpu_bf16_is_faster", lambda: True)
    cmd = ["--data-root", iclevr_root, *TINY_CGAN, "--device", "cpu", "--out", tmp_path / "run"]
    assert "precision: bf16 autocast" in cli("train_cgan.py", *cmd, "--epochs", 1).stdout.splitlines()[0]
    monkeypatch.setattr(T, "cpu_bf16_is_faster", lambda: False)  # a later timing disagrees
    proc = cli("train_cgan.py", "--resume", tmp_path / "run", "--epochs", 2)
    assert "precision: bf16 autocast" in proc.stdout.splitlines()[0]
    assert T.load_checkpoint(str(tmp_path / "run"))["machine"]["precision"] == "bf16"


def test_a_step_whose_fp16_gradients_overflow_is_skipped_not_fatal():
    """The scaler skips a step with inf gradients (weights untouched) and lowers its scale; the next
    finite step updates the weights."""
    amp = T.Amp(torch.device("cpu"), "fp16")
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.1)
    amp.step((w * torch.tensor([1.0, float("inf"), 1.0])).sum(), opt)
    scale_after_overflow = amp.scalers[opt].get_scale()
    assert torch.equal(w.detach(), torch.ones(3)) and scale_after_overflow < 2.0 ** 16
    amp.step(w.sum(), opt)
    assert torch.allclose(w.detach(), torch.full((3,), 0.9))
    assert T.Amp(torch.device("cpu"), "bf16").scalers == {} and T.make_scaler(torch.device("cpu"), "bf16") is None


def same_weights(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_fp16_infogan_trains_records_its_precision_and_resumes_bit_exact(tiny_mnist, tmp_path, monkeypatch):
    narrow_infogan(monkeypatch)
    cmd = ["--data-root", tiny_mnist, "--precision", "fp16", *FAST]
    proc = cli("train_infogan.py", *cmd, "--epochs", 2, "--out", tmp_path / "straight")
    assert "precision: fp16 autocast, with a gradient scaler" in proc.stdout.splitlines()[0]
    assert ("warning: this CPU has no native fp16" in proc.stderr) == (not T.cpu_has_native_fp16())
    cli("train_infogan.py", *cmd, "--epochs", 1, "--out", tmp_path / "resumed")
    first = T.load_checkpoint(str(tmp_path / "resumed"))
    assert first["machine"]["precision"] == "fp16" and set(first["scalers"]) == {"optD", "optGQ"}
    assert first["scalers"]["optD"]["scale"] > 0
    cli("train_infogan.py", "--resume", tmp_path / "resumed", "--epochs", 2)
    a, b = (T.load_checkpoint(str(tmp_path / d)) for d in ("straight", "resumed"))
    assert same_weights(a["netG"], b["netG"]) and same_weights(a["netD"], b["netD"])
    assert a["history"] == b["history"] and a["scalers"] == b["scalers"]


def test_fp16_cgan_trains_and_resumes_bit_exact(iclevr_root, tmp_path):
    cmd = ["--data-root", iclevr_root, "--precision", "fp16", *TINY_CGAN]
    cli("train_cgan.py", *cmd, "--epochs", 2, "--out", tmp_path / "straight")
    cli("train_cgan.py", *cmd, "--epochs", 1, "--out", tmp_path / "resumed")
    cli("train_cgan.py", "--resume", tmp_path / "resumed", "--epochs", 2)
    a, b = (T.load_checkpoint(str(tmp_path / d)) for d in ("straight", "resumed"))
    assert a["machine"]["precision"] == "fp16" and set(a["scalers"]) == {"optG", "optD"}
    assert same_weights(a["netG"], b["netG"]) and a["history"] == b["history"] and a["scalers"] == b["scalers"]


def test_fp16_nan_loss_still_stops_the_run(tiny_mnist, tmp_path, monkeypatch):
    """A NaN in a loss (not an overflow the scaler handles) stops an fp16 run as it stops any other."""
    steps, real_train_epoch = [0], T.train_epoch

    def nan_at_step_2(state, epoch, n_items, step_fn, *args, **kwargs):
        def step(*a):
            stats = step_fn(*a)
            steps[0] += 1
            return (stats[0] * float("nan"),) + tuple(stats[1:]) if steps[0] == 2 else stats
        return real_train_epoch(state, epoch, n_items, step, *args, **kwargs)
    monkeypatch.setattr(T, "train_epoch", nan_at_step_2)
    narrow_infogan(monkeypatch)
    proc = cli("train_infogan.py", "--data-root", tiny_mnist, "--precision", "fp16", "--epochs", 2,
               "--out", tmp_path / "nan", *FAST)
    assert proc.returncode == 1
    assert "the loss became NaN/inf at epoch 2, step 1 (iteration 2)" in proc.stderr
    assert T.load_checkpoint(str(tmp_path / "nan"))["epoch"] == 1  # the last good checkpoint is kept


def test_bench_smoke_reports_device_precision_speed_and_memory(capsys):
    import bench
    bench.smoke("cpu", "fp32", warmup=0, iters=1)  # what `python bench.py --smoke` runs, with fewer steps
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("smoke check on cpu (") and ", precision fp32," in lines[0]
    rates = [float(line.split()[-2]) for line in lines if line.endswith("img/s")]
    assert len(rates) == 2 and all(r > 0 for r in rates)
    assert any(line.startswith("peak resident memory") for line in lines) and lines[-1] == "smoke check passed"


def test_bench_smoke_refuses_other_flags():
    proc = cli("bench.py", "--smoke", "--itres", 3)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: unrecognized arguments: --itres 3"


def test_the_cgan_trains_channels_last_on_the_cpu(iclevr_root, tmp_path):
    """oneDNN runs the cGAN's convolutions faster in channels_last (docs/results.md); the checkpoint
    keeps that layout."""
    cli("train_cgan.py", "--data-root", iclevr_root, "--device", "cpu", *TINY_CGAN, "--epochs", 1, "--out", tmp_path / "run")
    ckpt = T.load_checkpoint(str(tmp_path / "run"))
    convs = [w for k, w in ckpt["netD"].items() if w.dim() == 4]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in convs)
