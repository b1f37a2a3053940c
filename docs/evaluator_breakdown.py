"""Where an evaluator trained by evaluate.py misses on its own held-out images: share of the objects
found, per shape, per colour and per number of objects in the image; and its accuracy on 1000 of
the images it trained on (near 1: it memorised; near the held-out figure: it learned too little).
Then what real 32-px scenes (upsampled, as a 32-px generator's are) score with the object counts of
test.json and new_test.json: the figure a 32-px generator as readable as the data would reach.

    python docs/evaluator_breakdown.py --data-root DIR --evaluator EVALUATOR.pth [--cache-dir DIR]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import training as T  # noqa: E402
from data import SPEC_DIR, load_conditions, load_iclevr_cached, to_float  # noqa: E402
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


def found_by_count(hits):
    """Share of the objects found in the held-out images with 1, 2 and 3 objects."""
    return {k: (hits[per_image == k].sum() / conditions[held_out][per_image == k].sum()).item() for k in (1, 2, 3)}


print("  found by objects in the image: " + ", ".join(f"{k} {v:.2f}" for k, v in found_by_count(hits).items()))
# What a 32-px generator is compared against: real scenes at 32 px, upsampled to 64 as the judge reads them,
# weighted to each test file's mix of 1, 2 and 3 objects (new_test.json has no single objects).
small, _, _ = load_iclevr_cached(args.data_root, 32, args.cache_dir)
found_32 = found_by_count(topk_hits(evaluator_probs(net, to_float(small[held_out])).cpu(), conditions[held_out]))
print("  at 32 px upsampled, found by objects in the image: " + ", ".join(f"{k} {found_32[k]:.3f}" for k in (1, 2, 3)))
spec = args.data_root if os.path.isfile(os.path.join(args.data_root, "test.json")) else SPEC_DIR
for name in ("test", "new_test"):
    counts = load_conditions(os.path.join(spec, f"{name}.json"), objects).sum(1)
    objects_per_count = {k: (counts == k).sum().item() * k for k in (1, 2, 3)}
    expected = sum(found_32[k] * n for k, n in objects_per_count.items()) / sum(objects_per_count.values())
    print(f"  real 32-px scenes with {name}.json's object counts: {expected:.3f}")
seen = trained_on[:1000]
print(f"  accuracy on 1000 of its training images: {topk_accuracy(evaluator_probs(net, to_float(images[seen])), conditions[seen]):.4f}")
