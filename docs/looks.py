"""docs/iclevr_looks.png: the first training images of two rendered i-CLEVR sets, labelled.

    python docs/looks.py SET_A SET_B       # folders written by `python data.py make-iclevr`
"""
import json
import os
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

sets = sys.argv[1:]
cols = 6
fig, axes = plt.subplots(len(sets), cols, figsize=(cols * 2.4, len(sets) * 2.5))
for row, root in enumerate(sets):
    train = json.load(open(os.path.join(root, "train.json")))
    for col, name in enumerate(sorted(train)[:cols]):
        ax = axes[row][col]
        ax.imshow(Image.open(os.path.join(root, "iclevr", name)).convert("RGB"))
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_xlabel("\n".join(train[name]), fontsize=8)
        if col == 0:
            ax.set_ylabel(f"set {'AB'[row]}", fontsize=11)
fig.tight_layout()
fig.savefig(os.path.join(os.path.dirname(os.path.abspath(__file__)), "iclevr_looks.png"), dpi=80)
