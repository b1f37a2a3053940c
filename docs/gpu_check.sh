#!/usr/bin/env bash
# The checks that need a GPU, in one command sized for the device machine's 10-minute limit (not yet
# timed on a GPU; every step is cut to the time left before BUDGET seconds):
#   1. the CUDA path: bench.py --smoke (device, precision, images/s, peak memory) and test_devices.py;
#   2. the cGAN at 64 px, where a GPU trains by default: set E rendered, its judge trained, then the
#      transposed-conv G and the nearest-upsample G (both at widths 64) for MINUTES each, judged over
#      10 draws, with their best epoch's grids (docs/results.md, "64 px").
# The CUDA path comes first: a command stopped at its limit still returns the log so far.
#
#   bash docs/gpu_check.sh OUT [MINUTES]          # OUT: logs and grids; the data stays in $WORK
#
# Environment: WORK (default /tmp/gpu_check: set E, caches, run folders), N_IMAGES (10000),
# JUDGE_EPOCHS (30), BUDGET (570 s). Exit status: the number of steps that failed.
# A dry run on a CPU: N_IMAGES=64 JUDGE_EPOCHS=1 bash docs/gpu_check.sh /tmp/out 0.3
set -u -o pipefail
OUT=$(realpath -m "${1:?usage: bash docs/gpu_check.sh OUT [MINUTES]}")
MINUTES=${2:-2}
WORK=$(realpath -m "${WORK:-/tmp/gpu_check}")
N_IMAGES=${N_IMAGES:-10000}
JUDGE_EPOCHS=${JUDGE_EPOCHS:-30}
BUDGET=${BUDGET:-570}
cd "$(dirname "$0")/.."
mkdir -p "$OUT" "$WORK"
export GAN_CACHE_DIR="$WORK/cache" PYTHONUNBUFFERED=1
E="$WORK/E"
FAILED="$WORK/failed_steps"  # a file: main runs in a pipeline
: > "$FAILED"

step() { echo; echo "== $1 ($(date -u +%T), $((BUDGET - SECONDS)) s left)"; }
# run LIMIT CMD...: CMD cut to LIMIT seconds or to what is left of BUDGET; a failure is noted, not
# fatal. A trainer stopped by the cut saves and ends there: for it, timeout's 124 (OK=124) is no failure.
run() {
  local limit=$1 rc=0; shift
  local left=$((BUDGET - SECONDS))
  ((left < limit)) && limit=$left
  if ((limit < 5)); then echo "skipped: out of time"; echo "$STEP (no time)" >> "$FAILED"; return 1; fi
  timeout -k 20 -s INT "$limit" "$@" || rc=$?
  if ((rc != 0 && rc != ${OK:-0})); then echo "exit $rc"; echo "$STEP" >> "$FAILED"; return 1; fi
}

main() {
  STEP="machine"; step "$STEP"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"
  python -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available())"
  echo "CPU cores: $(nproc)"; echo "tree: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

  STEP="python bench.py --smoke"; step "$STEP"
  run 120 python bench.py --smoke
  STEP="python -m pytest -q -n 0 test_devices.py"; step "$STEP"
  run 120 python -m pytest -q -n 0 test_devices.py 2>&1 | tail -30

  STEP="set E: python data.py make-iclevr --out E --n $N_IMAGES --seed 3 --object-size 0.6 0.8 --camera-elevation 30 55 --light-strength 0.85 1.15 --metal 0.3"
  step "$STEP"
  [ -f "$E/train.json" ] || run 120 python data.py make-iclevr --out "$E" --n "$N_IMAGES" --seed 3 \
    --object-size 0.6 0.8 --camera-elevation 30 55 --light-strength 0.85 1.15 --metal 0.3 --workers "$(nproc)"
  STEP="its judge: python evaluate.py --data-root E --also-32px --epochs $JUDGE_EPOCHS"; step "$STEP"
  run 200 python evaluate.py --data-root "$E" --also-32px --epochs "$JUDGE_EPOCHS"
  JUDGE=$(python -c "import sys; from evaluate import cached_evaluator_path; print(cached_evaluator_path(sys.argv[1]))" "$E")
  [ -f "$JUDGE" ] || { echo "no judge of set E: the 64-px runs are skipped"; echo "the judge" >> "$FAILED"; return; }

  # both G's get the same time: MINUTES, or half of what is left after 150 s for judging and drawing
  LIMIT=$(python -c "print(max(1, min(round($MINUTES * 60), ($BUDGET - $SECONDS - 150) // 2)))")
  echo "each G trains for $LIMIT s"
  for G in transposed upsample; do
    FLAG=$([ "$G" = upsample ] && echo --g-upsample || echo --no-g-upsample)
    STEP="G $G: timeout -s INT $LIMIT python train_cgan.py --data-root E --evaluator E_EVALUATOR --img-size 64 $FLAG --epochs 1000"
    step "$STEP"
    OK=124 run "$LIMIT" python train_cgan.py --data-root "$E" --evaluator "$JUDGE" --img-size 64 "$FLAG" \
      --epochs 1000 --out "$WORK/run_$G" --overwrite || continue
    STEP="G $G, best epoch: python evaluate.py --ckpt RUN/g_best.pt --evaluator E_EVALUATOR --draws 10"; step "$STEP"
    run 90 python evaluate.py --ckpt "$WORK/run_$G/g_best.pt" --evaluator "$JUDGE" --draws 10
    mkdir -p "$OUT/run_$G"
    for SET in test new_test; do  # the best epoch's scenes, labelled, as in docs/results.md
      STEP="G $G: sample.py --json E/$SET.json"
      run 60 python sample.py --ckpt "$WORK/run_$G/g_best.pt" --json "$E/$SET.json" --evaluator "$JUDGE" \
        --out "$OUT/run_$G/best_$SET.png"
    done
    cp "$WORK/run_$G"/{curves.png,losses.csv,accuracy.csv,report.md} "$OUT/run_$G/" 2>/dev/null
    cp -r "$WORK/run_$G/report" "$OUT/run_$G/" 2>/dev/null
  done
}

summary() {
  echo; echo "== $(wc -l < "$FAILED") steps failed ($((SECONDS)) s in all)"
  cat "$FAILED"
}

{ main; summary; } 2>&1 | sed -u "s#$WORK/E#E#g; s#$GAN_CACHE_DIR/evaluator_[0-9a-f]*\.pth#E_EVALUATOR#g; s#$WORK/run_#RUN_#g" \
  | tee "$OUT/gpu_check.log"
exit "$(wc -l < "$FAILED")"
