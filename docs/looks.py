"""docs/iclevr_looks.png: the first training images of rendered i-CLEVR sets, one row each, labelled.

    python docs/looks.py NAME=FOLDER ...       # folders written by `python data.py make-iclevr`
    python docs/looks.py OUT.png NAME=FOLDER ...   # another figure than docs/iclevr_looks.png

It also prints the smallest object each look draws, in pixels at the evaluator's 64 px (looks.log), set R's
(docs/raycast_iclevr.py) included.
"""
import json
import os
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data import horizon_y  # noqa: E402

args = sys.argv[1:]
out = args.pop(0) if args and args[0].endswith(".png") else \
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "iclevr_looks.png")
sets = [arg.split("=", 1) for arg in args]
cols = 6
fig, axes = plt.subplots(len(sets), cols, figsize=(cols * 2.4, len(sets) * 2.5), squeeze=False)
for row, (label, root) in enumerate(sets):
    train = json.load(open(os.path.join(root, "train.json")))
    for col, name in enumerate(sorted(train)[:cols]):
        ax = axes[row][col]
        ax.imshow(Image.open(os.path.join(root, "iclevr", name)).convert("RGB"))
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_xlabel("\n".join(train[name]), fontsize=8)
        if col == 0:
            ax.set_ylabel(label, fontsize=11)
fig.tight_layout()
fig.savefig(out, dpi=80)

# The smallest object each look can draw, in pixels at the evaluator's 64 px: the smallest base size
# (58 px at 320 px wide) times the size scale, at the farthest row (v = 0.45 of the height), with the
# horizon of data._layout, for the lowest, middle and highest default camera elevation.
def smallest_at_64px(scale, elevation):
    h = 240
    horizon = horizon_y(np.sin(np.radians(elevation)), np.cos(np.radians(elevation)), h)
    return scale * 58 * (0.45 * h - horizon) / (h - horizon) * 64 / 320


print("smallest object at 64 px, camera elevation 25 / 35 / 50 degrees:")
for name, scale in [("one look (object size 1, distance 1)", 1.0), ("default (0.9 / 1.1)", 0.9 / 1.1),
                    ("set E (0.6 / 1.1)", 0.6 / 1.1), ("set F (0.7 / 1.1)", 0.7 / 1.1),
                    ("set G (0.55 / 1.2)", 0.55 / 1.2), ("set H (0.6 / 1.25)", 0.6 / 1.25),
                    ("set A (0.55 / 1.25)", 0.55 / 1.25),
                    ("set B (0.4 / 1.25)", 0.4 / 1.25)]:
    print(f"  {name}: " + " / ".join(f"{smallest_at_64px(scale, e):.1f}" for e in (25, 35, 50)) + " px")

# Set R (docs/raycast_iclevr.py) is drawn in true perspective: an object is about as wide as the lens's focal
# length times its size over its depth (raycast_iclevr.object_width). Over the first layouts of its first 2,000
# scenes (seed 21; where an object came out too hidden the set drew the scene again):
import raycast_iclevr as R  # noqa: E402
from data import image_stream, random_objects  # noqa: E402
widths = []
for i in range(2000):
    rng = image_stream(21, i)
    names = random_objects(rng)
    cam, objs = R.scene(names, rng)
    widths += [R.object_width(obj, cam) * 64 / R.WIDTH for obj in objs]
print(f"  set R (ray-cast): smallest {min(widths):.1f} px, 1st percentile {np.percentile(widths, 1):.1f} px, "
      f"median {np.median(widths):.1f} px ({len(widths)} objects)")
