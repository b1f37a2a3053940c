"""The summary figures of docs/results.md, computed from the training logs in docs/ (nothing typed by hand).

    python docs/figures.py

InfoGAN: code->digit accuracy after epoch 3 (and 10) per seed, how many seeds reach 0.90, the mean.
cGAN: per run, the first epoch at which test.json and new_test.json are both >= 0.80 (and 0.90), the best epoch
(mean of the two), and the minutes of training to each, summed from the log's epoch times (the
training loop only: evaluation, saving and start-up come on top; the wall-clock total is the log's
/usr/bin/time line where it has one).
"""
import os
import re
import statistics

DOCS = os.path.dirname(os.path.abspath(__file__))
EPOCH = re.compile(r"epoch (\d+)/(\d+) \| ([0-9.]+)s, .*?(?:code->digit acc ([0-9.]+))?$")
CGAN = re.compile(r"epoch (\d+)/\d+ \| ([0-9.]+)s, .*\| test ([0-9.]+)\+-([0-9.]+) \| new_test ([0-9.]+)\+-([0-9.]+)")

# InfoGAN runs with the default flags: log file -> the seeds of its runs, in order (seed ranges are
# in the file names; each run's own command line is in the log)
INFOGAN_LOGS = {
    "ttq_amd_seed1.log": [1], "infogan_ema_seeds2-3_amd.log": [2, 3], "infogan_ema_seeds4-6.log": [4, 5, 6],
    "infogan_ema_seeds7-12.log": list(range(7, 13)), "infogan_ema_seeds13-20_amd.log": list(range(13, 21)),
}
INFOGAN_10_EPOCHS = {"ttq_amd_seed1.log": 1, "infogan_ema_seed2.log": 2, "infogan_ema_seed3.log": 3}
CGAN_LOGS = {"cgan32_recipe.log": "one-look set, seed 1, no augmentation", "cgan32_recipe_seed2.log": "one-look set, seed 2, no augmentation",
             "cgan_setD_noaug_xeon2.log": "set D, --no-augment", "cgan_setE_noaug_xeon2.log": "set E, --no-augment",
             "cgan_setD_shared_xeon2.log": "set D, classifier on D's body", "cgan_setE_shared_xeon2.log": "set E, classifier on D's body",
             "cgan_setD_plainbody_xeon2.log": "set D, classifier body without 3x3 convolutions",
             "cgan_setE_plainbody_xeon2.log": "set E, classifier body without 3x3 convolutions",
             "cgan_setD_xeon2.log": "set D", "cgan_setE_xeon2.log": "set E",
             "cgan_setD_noemawarmup_xeon2.log": "set D, G's moving average without warm-up",
             "cgan_setE_64px_xeon2.log": "set E, 64 px, upsample G", "cgan_setD_64px_xeon2.log": "set D, 64 px, upsample G",
             "cgan_setE_64px_batch32_xeon2.log": "set E, 64 px, batches of 32",
             "cgan_setE_64px_w64_xeon2.log": "set E, 64 px, widths 64",
             "cgan_setE_epyc.log": "set E, EPYC, bf16",
             "cgan_setE_2threads_hour_epyc2.log": "set E, EPYC without AVX-512, fp32",
             "cgan_setE_2threads_hour_seed2_epyc2.log": "set E, EPYC without AVX-512, fp32, --seed 2",
             "cgan_setD_2threads_hour_epyc2.log": "set D, EPYC without AVX-512, fp32",
             "cgan_setF_2threads_hour_epyc2.log": "set F (a look not tuned on), EPYC without AVX-512, fp32",
             "cgan_setF_hour_epyc.log": "set F (a look not tuned on), EPYC, bf16",
             "cgan_setG_hour_epyc.log": "set G (small objects, a look not tuned on), EPYC, bf16",
             "cgan_setE_aux2_hour_epyc2.log": "set E, --aux-weight 2, EPYC without AVX-512, fp32",
             "cgan_setE_batch32_hour_epyc2.log": "set E, --batch-size 32, EPYC without AVX-512, fp32",
             "cgan_setE_w64_1thread_hour_epyc.log": "set E, widths 64, one thread of the EPYC, fp32",
             "cgan_setE_w48_1thread_hour_epyc.log": "set E, widths 48, one thread of the EPYC, fp32",
             "cgan_setF_w48_1thread_hour_epyc.log": "set F (a look not tuned on), the default (widths 48), one thread of the EPYC, fp32, beside set G's",
             "cgan_setG_w48_1thread_hour_epyc.log": "set G (small objects, a look not tuned on), the default (widths 48), one thread of the EPYC, fp32, beside set F's",
             "cgan_setE_w32_1thread_hour_epyc.log": "set E, widths 32, one thread of the EPYC, fp32",
             "cgan_setG_w32_1thread_hour_epyc.log": "set G (small objects, a look not tuned on), widths 32, one thread of the EPYC, fp32, beside set G's widths 48, seed 2",
             "cgan_setG_w48_1thread_hour_seed2_epyc.log": "set G (small objects, a look not tuned on), the default (widths 48), --seed 2, one thread of the EPYC, fp32, beside set G's widths 32",
             "cgan_setF_w32_1thread_hour_epyc.log": "set F (a look not tuned on), widths 32, one thread of the EPYC, fp32",
             ("cgan_setE_w32_1thread_hour_epyc.log", "cgan_setE_w32_1thread_resumed_hour_epyc.log"):
                 "set E, widths 32, one thread of the EPYC, fp32, resumed to the hour's end",
             ("cgan_setF_w32_1thread_hour_epyc.log", "cgan_setF_w32_1thread_resumed_hour_epyc.log"):
                 "set F (a look not tuned on), widths 32, one thread of the EPYC, fp32, resumed to the hour's end",
             "cgan_setF_w48_1thread_35min_epyc.log": "set F (a look not tuned on), widths 48, one thread of the EPYC, fp32, 35 minutes",
             "cgan_setF_w64_1thread_35min_epyc.log": "set F (a look not tuned on), widths 64, one thread of the EPYC, fp32, 35 minutes",
             "cgan_setF_w48_hour_epyc.log": "set F (a look not tuned on), widths 48, EPYC, bf16",
             "cgan_setG_w48_hour_epyc.log": "set G (small objects, a look not tuned on), widths 48, EPYC, bf16",
             "cgan_setE_w48_hour_epyc.log": "set E, widths 48, EPYC, bf16",
             "cgan_setE_w32_bf16_2threads_epyc.log": "set E, widths 32, both cores of the EPYC, bf16 (auto)",
             "cgan_setF_w32_bf16_1thread_epyc.log": "set F (a look not tuned on), widths 32, one thread of the EPYC, bf16, beside set G's",
             "cgan_setG_w32_bf16_1thread_epyc.log": "set G (small objects, a look not tuned on), widths 32, one thread of the EPYC, bf16, beside set F's",
             "cgan_setH_w32_bf16_2threads_epyc.log": "set H (small objects, a high camera, a look not tuned on), the default (widths 32), both cores of the EPYC, bf16 (auto)",
             "cgan_setH_w32_1thread_hour_seed1_epyc.log": "set H (small objects, a high camera, a look not tuned on), the default, one thread of the EPYC, fp32, beside seed 2",
             "cgan_setH_w32_1thread_hour_seed2_epyc.log": "set H (small objects, a high camera, a look not tuned on), the default, --seed 2, one thread of the EPYC, fp32, beside seed 1",
             "cgan_setR_w32_bf16_2threads_epyc.log": "set R (the second renderer, ray-cast, never tuned on), the default (widths 32), both cores of the EPYC, bf16 (auto)",
             "cgan_setR_w32_1thread_hour_seed1_epyc.log": "set R (the second renderer, ray-cast, never tuned on), the default, one thread of the EPYC, fp32, beside seed 2",
             "cgan_setR_w32_1thread_hour_seed2_epyc.log": "set R (the second renderer, ray-cast, never tuned on), the default, --seed 2, one thread of the EPYC, fp32, beside seed 1",
             ("cgan_setF_w48_hour_epyc.log", "cgan_setF_w48_resumed120_epyc.log"):
                 "set F (a look not tuned on), widths 48, EPYC, bf16, resumed to 120 epochs",
             ("cgan_setE_w48_hour_epyc.log", "cgan_setE_w48_resumed120_epyc.log"):
                 "set E, widths 48, EPYC, bf16, resumed to 120 epochs",
             ("cgan_setG_w48_hour_epyc.log", "cgan_setG_w48_resumed120_epyc.log"):
                 "set G (small objects, a look not tuned on), widths 48, EPYC, bf16, resumed to 120 epochs",
             ("cgan_setE_64px_20min_epyc.log", "cgan_setE_64px_hour_epyc.log"): "set E, 64 px, upsample G, EPYC, bf16",
             ("cgan_setE_64px_transposed_20min_epyc.log", "cgan_setE_64px_transposed_resumed_epyc.log",
              "cgan_setE_64px_transposed_hour_epyc.log"): "set E, 64 px, transposed-conv G, EPYC, bf16",
             ("cgan_setD_64px_transposed_20min_epyc.log", "cgan_setD_64px_transposed_resumed_epyc.log",
              "cgan_setD_64px_transposed_hour_epyc.log"): "set D, 64 px, transposed-conv G, EPYC, bf16",
             "cgan_setE_64px_spectral_hour_epyc.log": "set E, 64 px, transposed-conv G with the spectral loss, EPYC, bf16",
             "cgan_setE_64px_spectral03_hour_epyc.log": "set E, 64 px, transposed-conv G with the spectral loss at weight 0.3, EPYC, bf16",
             "cgan_setG_64px_hour_epyc.log": "set G (small objects, a look not tuned on), 64 px, transposed-conv G, EPYC, bf16",
             "cgan_setE_64px_lastup_hour_epyc.log": "set E, 64 px, transposed-conv G with an upsampling last layer, EPYC, bf16",
             ("cgan_setE_64px_blur_20min_epyc.log", "cgan_setE_64px_blur_resumed_epyc.log"):
                 "set E, 64 px, transposed-conv G with a blur before its tanh, EPYC, bf16",
             "cgan_setE_64px_auxpool_20min_epyc.log": "set E, 64 px, transposed-conv G, classifier on a 32-px view, EPYC, bf16"}


def runs(path):
    """The accuracies per epoch of each run in a log (a run starts at 'epoch 1/')."""
    out = []
    with open(path) as f:
        for line in f:
            m = EPOCH.search(line.strip())
            if m and m.group(4):
                if m.group(1) == "1":
                    out.append([])
                out[-1].append(float(m.group(4)))
    return out


def infogan():
    after3 = {}
    for name, seeds in INFOGAN_LOGS.items():
        found = runs(os.path.join(DOCS, name))
        assert len(found) == len(seeds), (name, len(found))
        for seed, accs in zip(seeds, found):
            after3[seed] = accs[2]
    print("InfoGAN, default flags, code->digit accuracy after epoch 3 per seed:")
    print("  " + ", ".join(f"{s}: {a:.3f}" for s, a in sorted(after3.items())))
    hits = [s for s, a in after3.items() if a >= 0.90]
    print(f"  >= 0.90 after 3 epochs: {len(hits)} of {len(after3)} seeds; mean {sum(after3.values()) / len(after3):.3f}; "
          f"misses: seeds {', '.join(str(s) for s in sorted(set(after3) - set(hits)))}")
    for name, seed in INFOGAN_10_EPOCHS.items():
        accs = runs(os.path.join(DOCS, name))[0]
        print(f"  seed {seed}, 10 epochs: " + " ".join(f"{a:.3f}" for a in accs) + f"  ({name})")


def log_lines(name):
    """The lines of a log, or of a run's logs in order (a run resumed into a log of its own: a tuple of names)."""
    for part in (name,) if isinstance(name, str) else name:
        with open(os.path.join(DOCS, part)) as f:
            yield from f


def cgan():
    for name, label in CGAN_LOGS.items():
        rows, wall, whole, resumed = [], None, [], False
        for line in log_lines(name):
            resumed = resumed or line.startswith("resuming ")
            m = CGAN.search(line)
            if m:
                rows.append((int(m.group(1)), float(m.group(2)), float(m.group(3)), float(m.group(4)),
                             float(m.group(5)), float(m.group(6))))
                if not resumed:  # the first epoch after a resume ran only its remaining steps
                    whole.append(float(m.group(2)))
                resumed = False
            if "Elapsed (wall clock)" in line:
                wall = line.split("): ")[1].strip()
        minutes, total = {}, 0.0
        for epoch, seconds, *_ in rows:
            total += seconds
            minutes[epoch] = total / 60
        both = {line: next((r for r in rows if r[2] >= line and r[4] >= line), None) for line in (0.80, 0.90)}
        means = {r[0]: round((r[2] + r[4]) / 2, 4) for r in rows}  # rounded: the log's three digits can tie
        ties = [r for r in rows if means[r[0]] == max(means.values())]
        best = ties[0]
        logs = name if isinstance(name, str) else " + ".join(name)
        print(f"cGAN, {label} ({logs}): {len(rows)} epochs, {minutes[rows[-1][0]]:.1f} min of training loop"
              + (f", {wall} wall clock in all" if wall else ""))
        print(f"  whole epochs: {min(whole):.1f}-{max(whole):.1f} s, median {statistics.median(whole):.1f} s ({len(whole)})")
        for line, r in both.items():
            if r:
                print(f"  both >= {line:.2f} first at epoch {r[0]} ({minutes[r[0]]:.1f} min of training loop): "
                      f"{r[2]:.3f} / {r[4]:.3f}")
        print(f"  best of the run: epoch {best[0]} ({minutes[best[0]]:.1f} min): "
              f"test {best[2]:.3f} +- {best[3]:.3f}, new_test {best[4]:.3f} +- {best[5]:.3f}"
              + "".join(f"; tied at these digits by epoch {r[0]}: {r[2]:.3f} / {r[4]:.3f}" for r in ties[1:]))
        print("  curve (epoch: test / new_test): " + ", ".join(
            f"{r[0]}: {r[2]:.2f}/{r[4]:.2f}" for r in rows if r[0] % 10 == 0 or r[0] == rows[-1][0]))


if __name__ == "__main__":
    infogan()
    cgan()
