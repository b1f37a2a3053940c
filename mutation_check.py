"""Do the tests fail when what matters breaks? Break it on purpose, one piece at a time, and see.

    python mutation_check.py                  # every mutation (several minutes on 2 cores)
    python mutation_check.py -k nan -k topk   # the mutations whose name contains one of these
    python mutation_check.py --list           # the mutations and the tests meant to catch each

Each mutation replaces one exact piece of source text (file, old text, new text) in a temporary copy
of the repository (.git, runs/ and data/ left out) and runs only the tests meant to catch it:
`python -m pytest -q -x FILES -k EXPR`. The verdicts:

    caught   those tests failed with the code broken
    MISSED   they passed: nothing guards this behaviour
    STALE    the old text is not (or not exactly once) in the file any more: the source moved on,
             update the mutation
    ERROR    pytest could not run them (no test selected, timeout, internal error)

The selected tests first run on the unbroken copy: a mutation is only judged by tests that pass
without it. Exit code: 0 all caught; 1 something MISSED or ERROR; 2 the unbroken copy fails its
tests; 3 only STALE mutations besides caught ones. Not part of the default pytest run (its name does
not start with test_).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

REPO = os.path.dirname(os.path.abspath(__file__))
GUARDS, ROBUST, CGAN = "test_guards.py", "test_robustness.py", "test_robustness_cgan.py"
FILES, DEVICES, REPORT = "test_files.py", "test_devices.py", "test_report.py"
RENDER, COMMANDS = "test_render.py", "test_commands.py"


@dataclass
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: tuple  # test files
    k: str = ""   # pytest -k expression ("" = all tests of the files)


MUTATIONS = [
    # -- code -> digit accuracy
    Mutation("code->digit: values matched to digits by identity", "train_infogan.py",
             "rows, cols = linear_sum_assignment(counts, maximize=True)",
             "rows, cols = np.arange(n_cat), np.arange(n_cat) % 10", (GUARDS,), "code_digit_accuracy"),
    Mutation("code->digit: each value to its majority digit (not one-to-one)", "train_infogan.py",
             "rows, cols = linear_sum_assignment(counts, maximize=True)",
             "rows, cols = np.arange(n_cat), counts.argmax(1)", (GUARDS,), "code_digit_accuracy"),
    # -- sample.py
    Mutation("sample --digit D draws code D, ignoring the stored map", "sample.py",
             "        code = codes[0]", "        code = args.digit", (GUARDS,), "sample_digit"),
    Mutation("sample --digit: range check dropped", "sample.py",
             '        T.check(0 <= args.digit <= 9, f"--digit must be 0-9 (got {args.digit})")', "        pass",
             (ROBUST,), "sample-digit-10 or sample-digit-negative"),
    # -- bad i-CLEVR folders stop before the run folder is made
    Mutation("train_cgan.py checks its --data-root only when it loads it", "train_cgan.py",
             "        iclevr_image_dir(args.data_root)\n", "        pass\n", (CGAN,), "bad_iclevr or missing_iclevr"),
    # -- atomic checkpoints
    Mutation("checkpoint written in place, not through a temp file", "training.py",
             "    atomic_write(path, lambda tmp: torch.save(obj, tmp))", "    torch.save(obj, path)",
             (GUARDS,), "checkpoint_write"),
    Mutation("atomic_write writes the target, then renames the temp file over it", "training.py",
             "        write(tmp)\n", "        write(path)\n", (GUARDS,), "checkpoint_write"),
    # -- NaN stop
    Mutation("NaN message: iteration counted from the wrong epoch", "training.py",
             "(iteration {(epoch - 1) * steps_per_epoch + step + 1})", "(iteration {epoch * steps_per_epoch + step + 1})",
             (GUARDS,), "nan_stop"),
    Mutation("NaN message: step off by one", "training.py",
             'where = f"epoch {epoch}, step {step + 1} (iteration', 'where = f"epoch {epoch}, step {step} (iteration',
             (GUARDS,), "nan_stop"),
    Mutation("NaN check disabled", "training.py",
             "        bad = is_finite_rows(window)", "        bad = None", (GUARDS,), "nan_stop"),
    Mutation("NaN check skips the first step of each window", "training.py",
             "        start = max(self.first, self.done - self.log_every)",
             "        start = max(self.first, self.done - self.log_every + 1)", (GUARDS,), "nan_stop"),
    Mutation("NaN stop saves the NaN state over the last good checkpoint", "training.py",
             "            print(nan_message(epoch + 1, bad_step, steps_per_epoch, out), file=sys.stderr)",
             "            save_partial()\n"
             "            print(nan_message(epoch + 1, bad_step, steps_per_epoch, out), file=sys.stderr)",
             (ROBUST,), "nan_in_later_epoch"),
    # -- resume and RNG
    Mutation("resume does not restore the RNG streams", "training.py",
             '        set_rng_state(ckpt["rng"])', "        pass", (ROBUST,), "sigint"),
    Mutation("set_rng_state skips Python's random", "training.py",
             "    random.setstate((python[0], tuple(python[1]), python[2]))", "    pass", (GUARDS,), "rng_state"),
    Mutation("set_rng_state skips NumPy", "training.py",
             '        np.random.set_state({"bit_generator": numpy_state["bit_generator"]',
             '        (lambda state: None)({"bit_generator": numpy_state["bit_generator"]', (GUARDS,), "rng_state"),
    Mutation("set_rng_state skips torch", "training.py",
             '    torch.set_rng_state(state["torch"])', "    pass", (GUARDS,), "rng_state"),
    Mutation("Ctrl-C stops at once instead of finishing the step and saving", "training.py",
             "        self.signum = signum", "        raise KeyboardInterrupt", (ROBUST,), "sigint"),
    Mutation("stopped mid-epoch without saving", "training.py",
             "        save_partial()\n        interrupted(", "        interrupted(", (ROBUST,), "sigint"),
    Mutation("a dead run's lock is never stale (kill -9 blocks --resume)", "training.py",
             "    except ProcessLookupError:\n        return False", "    except ProcessLookupError:\n        return True",
             (ROBUST,), "kill_between"),
    Mutation("--resume ignores contradicting flags silently", "training.py",
             "        if key in given and given[key] != saved_config.get(key):",
             "        if key in given and given[key] != given[key]:", (ROBUST,), "contradicting"),
    # -- the evaluator's top-k
    Mutation("top-k with k = 1", "models.py",
             "        top = p.topk(int(y.sum().item())).indices", "        top = p.topk(1).indices",
             (GUARDS,), "topk or generator_accuracy or evaluate_cli"),
    Mutation("top-k counts every top output as a hit", "models.py",
             "        hits[i, top] = y[top].float()", "        hits[i, top] = 1.0",
             (GUARDS,), "topk or generator_accuracy or evaluate_cli"),
    # -- bad input
    Mutation("--noise-dim range check dropped", "train_infogan.py",
             '    T.check(args.noise_dim > 0, f"--noise-dim must be > 0 (got {args.noise_dim})")', "    pass",
             (ROBUST,), "train-noise-dim-0"),
    Mutation("cGAN --lr-g/--lr-d range check dropped", "train_cgan.py",
             '    T.check(args.lr_g > 0 and args.lr_d > 0, "--lr-g and --lr-d must be > 0")', "    pass",
             (CGAN,), "bad_cgan_flags"),
    Mutation("a data root that is a file is not checked", "data.py",
             "        check(os.path.isdir(root) and os.access(root, os.R_OK | os.X_OK), ",
             "        check(True, ", (ROBUST,), "data-root-is-a-file"),
    Mutation("an unreadable checkpoint escapes as a traceback", "training.py",
             "    except LOAD_FAILURES as e:", "    except () as e:", (ROBUST,), "train-resume"),
    # -- files that could run code, caches, run folders
    Mutation("files loaded by the full unpickler (weights_only off)", "training.py",
             'torch.load(path, map_location="cpu", weights_only=True)',
             'torch.load(path, map_location="cpu", weights_only=not True)', (FILES,), "crafted"),
    Mutation("a cache whose data changed is used as it is", "training.py",
             'if isinstance(data, dict) and data.get("fingerprint") == digest:', "if isinstance(data, dict):",
             (FILES,), "follows_it"),
    Mutation("a new run writes into a folder that holds a run", "training.py",
             "    if existing and not resume and not overwrite:", "    if False:", (FILES,), "explicit_out"),
    Mutation("no warning for emulated fp16 / bf16 on a CPU (forced)", "training.py",
             'name in ("bf16", "fp16") and not (cpu_has_native_bf16 if name == "bf16" else cpu_has_native_fp16)():',
             'False:', (DEVICES,), "fp16_infogan"),
    Mutation("the cGAN report does not say which evaluator judged it", "train_cgan.py",
             '"data_root": args.data_root, "judge": judge}', '"data_root": args.data_root, "judge": None}',
             ("test_smoke.py",), "train_cgan_one_epoch and hinge"),
    Mutation("an interrupted epoch's time counts only the part after the resume", "training.py",
             't0 = time.time() - state["partial_seconds"]', 't0 = time.time()',
             (ROBUST,), "sigint"),
    Mutation("sample --labels ignores --evaluator silently", "sample.py",
             '    T.check(args.json is not None or args.evaluator is None,', '    T.check(True or args.evaluator is None,',
             ("test_smoke.py",), "train_cgan_one_epoch and hinge"),
    Mutation("the cGAN's closing sample command names a test.json that is not the data's", "train_cgan.py",
             '["--json", os.path.join(spec, "test.json")]', '["--json", "iclevr/test.json"]',
             ("test_smoke.py",), "train_cgan_one_epoch and hinge"),
    Mutation("the cGAN's closing sample command leaves out the run's evaluator", "train_cgan.py",
             '+ (["--evaluator", args.evaluator] if args.evaluator else [])', '+ []',
             ("test_smoke.py",), "train_cgan_one_epoch and hinge"),
    Mutation("the printed sample command leaves a run folder with a space unquoted", "training.py",
             'return shlex.join(["python", "sample.py", "--ckpt", ckpt, *args])',
             'return " ".join(["python", "sample.py", "--ckpt", ckpt, *args])',
             ("test_smoke.py",), "sample_png_and_npz"),
    Mutation("sample --plain overwrites the labelled figure's default file", "sample.py",
             "{'_plain' if args.plain else ''}.png", ".png", (REPORT,), "cgan_grid"),
    Mutation("a --no-eval report promises an accuracy curve", "report.py",
             '        if (ckpt or {}).get("accuracy"):\n            what +=', '        if True:\n            what +=',
             (REPORT,), "without_reading_it_back"),
    Mutation("progress.gif in the web palette (6 greys, dithered)", "training.py",
             'frame.convert("P", palette=Image.Palette.ADAPTIVE)', 'frame.convert("P")',
             ("test_smoke.py",), "progress_gif"),
    Mutation("progress.gif converts every frame again each epoch", "training.py",
             '        if p not in frames_made and os.path.exists(p):', '        if os.path.exists(p):',
             ("test_smoke.py",), "progress_gif"),
    Mutation("progress.gif frames without their epoch", "training.py",
             'ImageDraw.Draw(frame).text((4, 2), f"epoch {epoch.group(1)}", fill="black")', 'pass',
             ("test_smoke.py",), "progress_gif"),
    Mutation("a failed MNIST download leaves empty folders behind", "data.py",
             '            if os.path.isdir(d) and not os.listdir(d):\n                os.rmdir(d)', '            pass',
             (ROBUST,), "no-download"),
    Mutation("--resume of a live run that has not saved yet: 'checkpoint not found'", "training.py",
             '        check(os.path.exists(path) or owner in (None, os.getpid()) or not process_alive(owner),', '        check(True,',
             (FILES,), "in_use"),
    Mutation("bench --time-to-quality leaves its run folder behind", "bench.py",
             '    with tempfile.TemporaryDirectory(prefix="ttq_") as out:', '    for out in [tempfile.mkdtemp(prefix="ttq_")]:',
             ("test_smoke.py",), "time_to_quality"),
    Mutation("bench --time-to-quality drops a typed --batch-size", "bench.py",
             '*batch, *extra])', '*extra])', ("test_smoke.py",), "time_to_quality"),
    Mutation("bench: --iters 0 reaches the loops", "bench.py",
             '    T.check(args.warmup >= 0 and args.iters >= 1,', '    T.check(args.warmup >= 0 or args.iters >= 1,',
             ("test_smoke.py",), "bench_refuses"),
    Mutation("bench's cGAN rows time the augmentation the reference loop lacks", "bench.py",
             'CGAN_REFERENCE_FLAGS = ["--no-augment"]', 'CGAN_REFERENCE_FLAGS = []',
             ("test_smoke.py",), "bench_cgan_rows"),
    Mutation("bench's cGAN rows time D without the classifier body the trainer builds", "bench.py",
             '    config = train_cgan.model_config(args)', '    config = {**{k: getattr(args, k) for k in train_cgan.MODEL_KEYS}, "n_classes": 24}',
             ("test_smoke.py",), "bench_cgan_rows"),
    Mutation("bench's cGAN defaults row times the reference flags", "bench.py",
             'args.warmup, args.iters, flags=[])', 'args.warmup, args.iters)',
             ("test_smoke.py",), "bench_cgan_rows"),
    Mutation("the report forgets the commands that resumed the run", "training.py",
             'self.resumes = list(ckpt.get("resumes", [])) + [self.command]', 'self.resumes = []',
             (REPORT,), "real_run"),
    Mutation("a report of a g.pt alone offers a --resume that fails", "report.py",
             "    if ckpt is None:\n        return [", "    if False:\n        return [", (REPORT,), "g_pt_alone"),
    Mutation("--overwrite clears the old run before the data and flags are checked", "training.py",
             "        elif args.overwrite:\n            clear_run_dir(self.out)", "        pass",
             (FILES,), "explicit_out"),
    Mutation("a run's files go unseen: the default folder is reused instead of runs/NAME-2", "training.py",
             "    return sorted(f for pattern in RUN_OUTPUTS", "    return [] and sorted(f for pattern in RUN_OUTPUTS",
             (FILES,), "same_command_twice"),
    Mutation("a live process's lock is taken over", "training.py",
             "if owner is not None and owner != os.getpid() and process_alive(owner):", "if False:",
             (FILES,), "in_use"),
    Mutation("the lock is never released at exit", "training.py",
             "        for lock in HELD_LOCKS:\n            lock.release()", "        pass", (FILES,), "same_command_twice"),
    # -- devices and precision
    Mutation("auto precision: bf16 on every CUDA GPU (emulated on a T4)", "training.py",
             'return "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"', 'return "bf16"',
             (DEVICES,), "auto_precision"),
    Mutation("auto device skips Apple silicon", "training.py",
             'name = "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"',
             'name = "cuda" if torch.cuda.is_available() else "cpu"', (DEVICES,), "auto_device"),
    Mutation("fp16 without a gradient scaler", "training.py",
             'return torch.amp.GradScaler(device.type) if precision == "fp16" else None', "return None",
             (DEVICES,), "overflow or fp16_infogan"),
    Mutation("resume does not restore the gradient scalers", "training.py",
             "                scaler.load_state_dict(ckpt[\"scalers\"][key])", "                pass",
             (DEVICES,), "fp16_cgan"),
    # -- report
    Mutation("report grid rows in code order despite the map", "report.py",
             "def row_order(n_cat, code_to_digit):", "def row_order(n_cat, code_to_digit, _unused=None):\n    code_to_digit = None",
             (REPORT,), "rows_follow"),
    Mutation("the trainer's report reads ckpt.pt and g.pt back", "training.py",
             "report.write_report(out, saved=saved, netG=", "report.write_report(out, netG=", (REPORT,),
             "from_what_it_saved"),
    Mutation("the report from what was saved takes ckpt.pt's dict for g.pt's", "report.py",
             "        (ckpt, gen), generator = saved, g_path", "        (gen, ckpt), generator = saved, g_path", (REPORT,),
             "from_what_it_saved"),
    # -- CPU precision, layout, the evaluator as judge only
    Mutation("bf16 on every CPU that has it natively, untimed", "training.py",
             'if device.type == "cpu" and cpu_has_native_bf16() and cpu_bf16_is_faster():',
             'if device.type == "cpu" and cpu_has_native_bf16():', (DEVICES,), "auto_precision"),
    Mutation("the CPU timing is not remembered", "training.py",
             "if not isinstance(known.get(key), dict):", "if True:",
             (DEVICES,), "timed_once"),
    Mutation("a resumed auto run re-picks its precision", "training.py",
             '        precision = ckpt["machine"]["precision"]  # a resumed run keeps its arithmetic', "        pass",
             (DEVICES,), "resumed_auto"),
    Mutation("the cGAN contiguous on the CPU", "train_cgan.py", "device, channels_last_on_cpu=True)", "device)",
             (DEVICES,), "channels_last"),
    Mutation("evaluation draws from the training's random stream", "train_cgan.py",
             "                accs += [mean, std]", "                accs += [mean, std]; torch.rand(1)",
             (CGAN,), "only_judges"),
    Mutation("the judge trains on its scenes as they are", "evaluate.py", "                x = flip_and_shift(x)\n", "",
             (CGAN,), "mirrored"),
    Mutation("the judge's scenes never mirrored", "data.py", "flip = torch.rand(n, device=x.device) < 0.5",
             "flip = torch.rand(n, device=x.device) < 0.0", (CGAN,), "mirrored"),
    Mutation("D sees the cGAN's scenes as they are", "train_cgan.py",
             "return flip_and_shift(x, self.max_shift) if self.max_shift else x", "return x", (CGAN,), "moved_alike"),
    Mutation("D's view of G's scenes cut from G's gradient", "train_cgan.py",
             "netD(losses.d_view(fake), y)", "netD(losses.d_view(fake).detach(), y)", (CGAN,), "moved_alike"),
    Mutation("the cGAN's default length a fixed epoch count", "train_cgan.py",
             "args.epochs = max(1, round(DEFAULT_IMAGES / len(images)))", "args.epochs = 3", (CGAN,), "default_length"),
    Mutation("the cGAN's separate classifier reads D's body", "models.py",
             "self.aux_head(features if aux_features is None else aux_features)", "self.aux_head(features)",
             (CGAN,), "aux_body"),
    Mutation("a classifier body without a classifier term", "train_cgan.py",
             '"aux_body": "separate" if args.aux_weight else "shared"}', '"aux_body": "separate"}', (CGAN,), "classifier_body"),
    Mutation("the classifier body without its 3x3 convolutions", "train_cgan.py",
             'config["aux_refine"] = config["aux_body"] == "separate"', 'config["aux_refine"] = False', (CGAN,),
             "classifier_body"),
    Mutation("the cGAN's moving average of G without its warm-up", "train_cgan.py",
             "args.g_ema, num_updates=(iteration + 1) // losses.n_critic)", "args.g_ema)", (CGAN,), "only_judges"),
    Mutation("a CPU trains the 64-wide networks", "train_cgan.py",
             "32 if on_cpu else 64)", "64)", (CGAN,), "narrower"),
    Mutation("a CPU at 32 px trains the 48-wide networks", "train_cgan.py",
             "32 if on_cpu else 64)", "(32 if cpu_at_64 else 48) if on_cpu else 64)", (CGAN,), "narrower"),
    Mutation("a GPU at 64 px trains the transposed-conv G too", "train_cgan.py",
             "cpu_at_64 = on_cpu and args.img_size == 64", "cpu_at_64 = args.img_size == 64", (CGAN,), "narrower"),
    Mutation("a resumed run's widths from the CPU rule, not its checkpoint", "train_cgan.py",
             'ckpt["config"][name] if ckpt else 32', "32", (CGAN,), "narrower"),
    Mutation("a CPU at 64 px keeps the upsample G", "train_cgan.py",
             "if ckpt else not cpu_at_64", "if ckpt else True", (CGAN,), "narrower"),
    Mutation("a resumed run's G from the CPU rule, not its checkpoint", "train_cgan.py",
             'ckpt["config"].get("g_upsample", False) if ckpt else not', "not", (CGAN,), "narrower"),
    Mutation("a run from before --augment resumes with it", "train_cgan.py",
             'FLAGS_BEFORE = {"augment": False}', 'FLAGS_BEFORE = {}', (CGAN,), "before_augment"),
    Mutation("train_cgan.py keeps its judge's held-out figure to itself", "train_cgan.py",
             'print(f"evaluator held-out top-k accuracy: {judge_acc:.4f}", flush=True)', "pass", (FILES,),
             "planted_caches"),
    Mutation("evaluate.py says the judge's held-out figure twice", "evaluate.py",
             "images_32=images_32)\n",
             'images_32=images_32)\n        print(f"evaluator held-out top-k accuracy: {acc:.4f}", file=sys.stderr)\n',
             ("test_smoke.py",), "evaluate_cli_trains"),
    # -- synthetic i-CLEVR looks
    Mutation("object size ignored", "data.py", 'scale = rng.uniform(*look["object_size"]) / look["distance"]',
             'scale = rng.uniform(*look["object_size"]) * 0 + 1 / look["distance"]', (RENDER,), "object_size"),
    Mutation("shadows ignore the light", "data.py", "away = np.array([-light[0], light[1] * look[\"sin\"]])",
             "away = np.array([1.0, -0.5])", (RENDER,), "shadow"),
    Mutation("metal drawn as rubber", "data.py", "    if metal:\n", "    if False:\n", (RENDER,), "metal"),
    Mutation("one look for every image", "data.py",
             "v = {key: float(rng.uniform(*ranges[key])) for key in LOOK_RANGES}",
             "v = {key: float(sum(ranges[key]) / 2) for key in LOOK_RANGES}", (RENDER,), "new_look"),
    Mutation("make-iclevr accepts a reversed range", "data.py",
             "check(low <= lo <= hi <= high,", "check(low <= lo and hi <= high,", (RENDER,), "bad_look"),
    Mutation("ray-cast set: an unseeded stream", "docs/raycast_iclevr.py",
             "rng = image_stream(seed, i)", "rng = np.random.default_rng()", (RENDER,), "ray_cast"),
    Mutation("ray-cast set: one stream for every image", "docs/raycast_iclevr.py",
             "rng = image_stream(seed, i)", "rng = image_stream(seed, 0)", (RENDER,), "ray_cast"),
    Mutation("ray-cast set: every object drawn red", "docs/raycast_iclevr.py",
             'np.array(COLORS[obj["color"]])', 'np.array(COLORS["red"])', (RENDER,), "ray_cast"),
    # -- curves and the report's per-epoch table
    Mutation("curves.png draws a long run's every raw value", "training.py",
             "                if len(ys) > CURVE_POINTS:\n", "                if False:\n", (REPORT,), "curves_of"),
    Mutation("curves.png's band of means, not extremes", "training.py",
             "low, high = np.fmin.reduceat(ys, starts), np.fmax.reduceat(ys, starts)",
             "low = high = np.add.reduceat(ys, starts) / np.diff(np.r_[starts, len(ys)])", (REPORT,), "curves_of"),
    Mutation("curves.png's moving average through every point", "training.py",
             "np.linspace(0, len(smooth) - 1, CURVE_POINTS)", "np.arange(len(smooth))", (REPORT,), "curves_of"),
    Mutation("per-epoch means count the rows of every epoch as one", "report.py",
             "{int(e): [float(v) for v in s / n] for e, s, n", "{int(e): [float(v) for v in s] for e, s, n",
             (REPORT,), "per_epoch_means"),
    Mutation("a damaged losses.csv row stops the report", "report.py",
             "    except ValueError:  # a damaged row: keep the rows that read\n",
             "    except ZeroDivisionError:\n", (REPORT,), "per_epoch_means"),
    Mutation("sample.py --labels with no name: the JSON file's message", "sample.py",
             "        T.check(names, '--labels names no object", "        T.check(True, '--labels names no object",
             ("test_smoke.py",), "hinge"),
    Mutation("sample.py --labels of 4 objects: no warning", "sample.py", "        if len(names) > 3:\n",
             "        if len(names) > 4:\n", ("test_smoke.py",), "hinge"),
    Mutation("losses.csv rows wider than the header read as garbage", "report.py",
             "        elif table.shape[1] != len(header):", "        elif False:", (REPORT,), "per_epoch_means"),
    Mutation("the trainer's report drawn by the trained G, not g.pt's average", "training.py",
             "write_report(out, saved, self.netG_eval)", "write_report(out, saved, self.nets['netG'])",
             (REPORT,), "without_reading_it_back"),
    Mutation("the spectral profile stops at radius 32, short of the 2-px checker", "train_cgan.py",
             ".sqrt().round().long().flatten()", ".sqrt().round().long().flatten().clamp(max=32)",
             ("test_smoke.py",), "spectral_loss_sees"),
    Mutation("the spectral loss compares G's images with themselves", "train_cgan.py",
             "F.mse_loss(spectrum_profile(fake), spectrum_profile(real))",
             "F.mse_loss(spectrum_profile(fake), spectrum_profile(fake).detach())", ("test_smoke.py",), "spectral"),
    Mutation("--spectral-weight never reaches G's loss", "train_cgan.py",
             "        if losses.spectral_weight:\n", "        if False:\n", ("test_smoke.py",), "spectral_weight_adds"),
    Mutation("the trainer drops --spectral-weight", "train_cgan.py",
             "img_size // 8 if args.augment else 0,\n                   args.spectral_weight)",
             "img_size // 8 if args.augment else 0)", (CGAN,), "narrower"),
    Mutation("the spectral loss on by default", "train_cgan.py",
             '"--spectral-weight", type=float, default=0.0,', '"--spectral-weight", type=float, default=1.0,',
             (CGAN,), "narrower"),
    Mutation("a negative --spectral-weight is taken", "train_cgan.py",
             "(args.aux_weight, args.gp_weight, args.spectral_weight)", "(args.aux_weight, args.gp_weight)",
             (CGAN,), "bad_cgan_flags"),
    Mutation("a weight of nan is taken", "train_cgan.py", "0 <= w < math.inf for w", "not w < 0 for w",
             (CGAN,), "bad_cgan_flags"),
    Mutation("the epoch's report draws with G in training mode", "training.py",
             "netG=netG_eval.eval() if netG_eval", "netG=netG_eval if netG_eval", (REPORT,), "eval_mode"),
    Mutation("G stays in eval mode after the epoch's report", "training.py",
             "        if was_training:  # --g-ema 0", "        if False:  # --g-ema 0", (REPORT,), "eval_mode"),
    Mutation("losses.csv rows of every run kept", "training.py", "        GROWING_CSVS.clear()\n", "        pass\n",
             (FILES,), "losses_csv_grows"),
    Mutation("losses.csv rewritten whole every epoch", "training.py",
             "    if known and known[0] == tuple(header) and known[1] is rows", "    if False and known[1] is rows",
             (FILES,), "losses_csv_grows"),
    Mutation("losses.csv appended to after someone else changed it", "training.py",
             " and known[2] <= len(rows) and known[3] == size:", " and known[2] <= len(rows):", (FILES,), "losses_csv_grows"),
    Mutation("losses.csv of a resumed run appended to the old run's rows", "training.py",
             "known[0] == tuple(header) and known[1] is rows and known[2] <= len(rows)",
             "known[0] == tuple(header) and known[2] <= len(rows)", (FILES,), "losses_csv_grows"),
    # -- the documented paper / seed-report commands
    Mutation("README's seed-002 command trains at the default batch, not the report's 128", "README.md",
             " --d-width 64 --batch-size 128\n", " --d-width 64\n", (COMMANDS,)),
    Mutation("the paper's Adam beta1 (0.5) changed under the InfoGAN defaults", "train_infogan.py",
             '"--beta1", type=float, default=0.5,', '"--beta1", type=float, default=0.9,', (COMMANDS,)),
    Mutation("the README's paper InfoGAN keeps the measured learning rate of G", "README.md",
             "python train_infogan.py --lambda-aug 0 --lr-g 1e-3 --g-ema 0", "python train_infogan.py --lambda-aug 0 --g-ema 0",
             (COMMANDS,)),
]


def copy_repo(dst):
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(".git", "runs", "data", "__pycache__", ".pytest_cache"))
    return dst


def pytest(repo, files, k, timeout):
    """(exit code or None on timeout, seconds, last lines of output)."""
    # one process (pytest.ini's -n 2 off): under xdist, -x ends a failing run with exit code 2, not 1
    argv = [sys.executable, "-m", "pytest", "-q", "-x", "-o", "addopts=", "-p", "no:cacheprovider", *files] + \
        (["-k", k] if k else [])
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    t0 = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - t0, "timed out"
    return proc.returncode, time.monotonic() - t0, "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])


def applies(repo, m):
    """Whether m.old is in its file exactly once."""
    path = os.path.join(repo, m.file)
    return os.path.isfile(path) and open(path).read().count(m.old) == 1


def apply(repo, m):
    """Replace m.old by m.new in the copy; the original text to restore, or None when m.old is not
    in the file exactly once."""
    path = os.path.join(repo, m.file)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        text = f.read()
    if text.count(m.old) != 1:
        return None
    with open(path, "w") as f:
        f.write(text.replace(m.old, m.new))
    return text


def restore(repo, m, text):
    with open(os.path.join(repo, m.file), "w") as f:
        f.write(text)


def selection(m):
    return " ".join(m.tests) + (f" -k '{m.k}'" if m.k else "")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-k", action="append", default=[], help="only mutations whose name contains this (repeatable)")
    p.add_argument("--list", action="store_true", help="list the mutations and exit")
    p.add_argument("--timeout", type=int, default=900, help="seconds per pytest run")
    p.add_argument("--verbose", action="store_true", help="print pytest's last lines for every mutation")
    args = p.parse_args()
    mutations = [m for m in MUTATIONS if not args.k or any(k.lower() in m.name.lower() for k in args.k)]
    if args.list:
        for m in mutations:
            print(f"{m.name}\n    {m.file}; caught by: {selection(m)}")
        return 0
    if not mutations:
        print("no mutation matches", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="mutation_check_") as tmp:
        repo = copy_repo(os.path.join(tmp, "repo"))
        results = []
        stale = {id(m) for m in mutations if not applies(repo, m)}
        live = [m for m in mutations if id(m) not in stale]

        # the tests that judge the mutations must pass on the unbroken code
        groups = {}
        for m in live:
            groups.setdefault(m.tests, []).append(m.k)
        for files, ks in groups.items():
            k = "" if "" in ks else " or ".join(f"({k})" for k in dict.fromkeys(ks))
            code, seconds, tail = pytest(repo, files, k, args.timeout)
            print(f"baseline {' '.join(files)}: {'pass' if code == 0 else f'FAIL (exit {code})'} ({seconds:.0f} s)",
                  flush=True)
            if code != 0:
                print(tail)
                print("the unbroken code fails the selected tests: no verdicts", file=sys.stderr)
                return 2

        for m in mutations:
            if id(m) in stale:
                results.append((m, "STALE", 0.0))
                print(f"{m.name}: STALE", flush=True)
                continue
            original = apply(repo, m)
            try:
                code, seconds, tail = pytest(repo, m.tests, m.k, args.timeout)
            finally:
                restore(repo, m, original)
            verdict = {0: "MISSED", 1: "caught"}.get(code, f"ERROR ({'timeout' if code is None else f'exit {code}'})")
            results.append((m, verdict, seconds))
            print(f"{m.name}: {verdict} ({seconds:.0f} s)", flush=True)
            if args.verbose or verdict != "caught":
                print("    " + tail.replace("\n", "\n    "))

    width = max(len(m.name) for m, _, _ in results)
    print(f"\n{'mutation':{width}s} | result | seconds | tests")
    print(f"{'-' * width}-+--------+---------+------")
    for m, verdict, seconds in results:
        print(f"{m.name:{width}s} | {verdict:6s} | {seconds:7.0f} | {selection(m)}")
    verdicts = [v for _, v, _ in results]
    missed = sum(v == "MISSED" or v.startswith("ERROR") for v in verdicts)
    n_stale = verdicts.count("STALE")
    print(f"\n{verdicts.count('caught')} caught, {missed} missed or errored, {n_stale} stale, of {len(results)}")
    return 1 if missed else 3 if n_stale else 0


if __name__ == "__main__":
    sys.exit(main())
