#!/usr/bin/env bash
# The checks that need a GPU, in one command of at most 10 minutes (the device machine's limit):
#   1. the CUDA path: bench.py --smoke (device, precision, images/s, peak memory) and test_devices.py;
#   2. the cGAN at 64 px, where a GPU trains by default: set E rendered, its judge trained, then the
#      transposed-conv G and the nearest-upsample G (both at widths 64) for MINUTES each, judged over
#      10 draws, with their best epoch's grids (docs/results.md, "64 px"). The order puts the
#      CUDA path first: a command stopped at its limit still returns the log so far.
#
#   bash docs/gpu_check.sh OUT [MINUTES]          # OUT: logs and grids; the data stays in $WORK
#
# Environment: WORK (default /tmp/gpu_check: set E, caches, run folders), N_IMAGES (10000),
# JUDGE_EPOCHS (30). A dry run on a CPU: N_IMAGES=64 JUDGE_EPOCHS=1 bash docs/gpu_check.sh /tmp/out 0.2
set -u
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash docs/gpu_check.sh OUT [MINUTES]}
MINUTES=${2:-2}
WORK=${WORK:-/tmp/gpu_check}
N_IMAGES=${N_IMAGES:-10000}
JUDGE_EPOCHS=$JUDGE_EPOCHS
mkdir -p "$OUT" "$WORK"
export GAN_CACHE_DIR="$WORK/cache"
E="$WORK/E"
step() { echo; echo "== $* ($(date -u +%T))"; }

{
  step "machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"
  python -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available())"
  echo "CPU cores: $(nproc)"; echo "tree: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

  step "python bench.py --smoke"
  timeout 180 python bench.py --smoke
  step "python -m pytest -q -n 0 test_devices.py"
  timeout 240 python -m pytest -q -n 0 test_devices.py 2>&1 | tail -5

  step "set E: python data.py make-iclevr --out E --n $N_IMAGES ..."
  [ -f "$E/train.json" ] || timeout 300 python data.py make-iclevr --out "$E" --n "$N_IMAGES" --seed 3 \
    --object-size 0.6 0.8 --camera-elevation 30 55 --light-strength 0.85 1.15 --metal 0.3 --workers "$(nproc)"
  step "its judge: python evaluate.py --data-root E --also-32px --epochs $JUDGE_EPOCHS"
  timeout 400 python evaluate.py --data-root "$E" --also-32px --epochs "$JUDGE_EPOCHS"
  JUDGE=$(ls "$GAN_CACHE_DIR"/evaluator_*.pth | head -1)

  for G in transposed upsample; do
    FLAG=$([ "$G" = upsample ] && echo --g-upsample || echo --no-g-upsample)
    LIMIT=$(python -c "print(max(1, round($MINUTES * 60)))")
    step "G $G: timeout -s INT $LIMIT python train_cgan.py --data-root E --evaluator E_EVALUATOR --img-size 64 $FLAG --epochs 1000"
    timeout -s INT "$LIMIT" python train_cgan.py --data-root "$E" --evaluator "$JUDGE" --img-size 64 "$FLAG" \
      --epochs 1000 --out "$WORK/run_$G" --overwrite
    step "G $G, best epoch: python evaluate.py --ckpt RUN/g_best.pt --evaluator E_EVALUATOR --draws 10"
    timeout 120 python evaluate.py --ckpt "$WORK/run_$G/g_best.pt" --evaluator "$JUDGE" --draws 10
    mkdir -p "$OUT/run_$G"
    for SET in test new_test; do  # the best epoch's scenes, labelled, as in docs/results.md
      timeout 60 python sample.py --ckpt "$WORK/run_$G/g_best.pt" --json "$E/$SET.json" --evaluator "$JUDGE" \
        --out "$OUT/run_$G/best_$SET.png"
    done
    cp "$WORK/run_$G"/{curves.png,losses.csv,accuracy.csv,report.md} "$OUT/run_$G/" 2>/dev/null
    cp -r "$WORK/run_$G/report" "$OUT/run_$G/" 2>/dev/null
  done
  step "done"
} 2>&1 | sed "s#$WORK/E#E#g; s#$GAN_CACHE_DIR/evaluator_[0-9a-f]*.pth#E_EVALUATOR#g; s#$WORK/run_#RUN_#g" | tee "$OUT/gpu_check.log"
