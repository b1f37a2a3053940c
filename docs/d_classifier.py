"""How well a cGAN run's discriminator reads the objects of real scenes: the top-k accuracy of D's
auxiliary classifier (the only thing that tells G which object is which) on 1000 of the images it
trained on and on scenes it never saw (another render of the same look). Near 1 on the first and far
lower on the second: D memorised its training images, and G learns to satisfy a memory.

    python docs/d_classifier.py --ckpt RUN/ckpt.pt --data-root DIR --unseen OTHER_DIR [--cache-dir DIR]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import training as T  # noqa: E402
from data import load_iclevr_cached, to_float  # noqa: E402
from evaluate import object_breakdown  # noqa: E402
from models import build_cgan, topk_accuracy, topk_hits  # noqa: E402

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--ckpt", required=True, help="a run's ckpt.pt (it holds D)")
p.add_argument("--data-root", required=True, help="the set the run trained on")
p.add_argument("--unseen", required=True, help="a set of the same look that it did not train on")
p.add_argument("--cache-dir", default=None)
args = p.parse_args()
ckpt = T.load_checkpoint(args.ckpt, kind="cgan")
config = ckpt["config"]
_, netD = build_cgan(config)
netD.load_state_dict(ckpt["netD"])
netD.eval()
print(f"{args.ckpt}: epoch {ckpt['epoch']}, D's classifier (top-k, as the evaluator is scored)")
for name, root in (("it trained on", args.data_root), ("it never saw", args.unseen)):
    images, conditions, objects = load_iclevr_cached(root, config["img_size"], args.cache_dir)
    images, conditions = images[:1000], conditions[:1000]
    with torch.no_grad():
        probs = torch.sigmoid(torch.cat([netD(to_float(images[i:i + 100]), conditions[i:i + 100])[1]
                                         for i in range(0, len(images), 100)]))
    print(f"  {len(images)} images {name} ({root}): {topk_accuracy(probs, conditions):.4f}")
    if name == "it never saw":
        print("\n".join("  " + line for line in object_breakdown(topk_hits(probs, conditions).sum(0), conditions.sum(0), objects)))
