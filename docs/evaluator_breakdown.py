"""Where an evaluator trained by evaluate.py misses on its own held-out images: share of the objects
found, per shape, per colour and per number of objects in the image; and its accuracy on 1000 of
the images it trained on (near 1: it memorised; near the held-out figure: it learned too little).

    python docs/evaluator_breakdown.py --data-root DIR --evaluator EVALUATOR.pth [--cache-dir DIR]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import training as T  # noqa: E402
from data import load_iclevr_cached, to_float  # noqa: E402
from evaluate import heldout_split, object_breakdown, read_evaluator  # noqa: E402
from models import evaluator_probs, topk_accuracy, topk_hits  # noqa: E402

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--data-root", required=True)
p.add_argument("--evaluator", required=True)
p.add_argument("--cache-dir", default=None)
args = p.parse_args()
net, acc, _ = read_evaluator(args.evaluator)
images, conditions, objects = load_iclevr_cached(args.data_root, 64, args.cache_dir)
with T.isolated_rng():
    held_out, trained_on = heldout_split(len(images))
hits = topk_hits(evaluator_probs(net, to_float(images[held_out])).cpu(), conditions[held_out])
print(f"{len(held_out)} held-out images of {args.data_root}; the evaluator's recorded accuracy {acc:.4f}")
print("\n".join(object_breakdown(hits.sum(0), conditions[held_out].sum(0), objects)))
per_image = conditions[held_out].sum(1)
print("  found by objects in the image: " + ", ".join(
    f"{k} {hits[per_image == k].sum() / conditions[held_out][per_image == k].sum():.2f}" for k in (1, 2, 3)))
seen = trained_on[:1000]
print(f"  accuracy on 1000 of its training images: {topk_accuracy(evaluator_probs(net, to_float(images[seen])), conditions[seen]):.4f}")
