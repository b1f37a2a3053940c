"""Where an evaluator trained by evaluate.py misses on its own held-out images: share of the objects
found, per shape and per colour.

    python docs/evaluator_breakdown.py --data-root DIR --evaluator EVALUATOR.pth [--cache-dir DIR]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import training as T  # noqa: E402
from data import load_iclevr_cached, to_float  # noqa: E402
from evaluate import heldout_split, object_breakdown, read_evaluator  # noqa: E402
from models import evaluator_probs, topk_hits  # noqa: E402

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--data-root", required=True)
p.add_argument("--evaluator", required=True)
p.add_argument("--cache-dir", default=None)
args = p.parse_args()
net, acc, _ = read_evaluator(args.evaluator)
images, conditions, objects = load_iclevr_cached(args.data_root, 64, args.cache_dir)
with T.isolated_rng():
    held_out, _ = heldout_split(len(images))
hits = topk_hits(evaluator_probs(net, to_float(images[held_out])).cpu(), conditions[held_out])
print(f"{len(held_out)} held-out images of {args.data_root}; the evaluator's recorded accuracy {acc:.4f}")
print("\n".join(object_breakdown(hits.sum(0), conditions[held_out].sum(0), objects)))
