"""How well D's auxiliary head names the objects, on real training images and on G's images
(the analysis behind the README's 'How it got there'). Top-k hits as the coursework counts them.

    python docs/d_classifier_check.py runs/<run>/ckpt.pt [--data-root data/iclevr-synth]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import training as T  # noqa: E402
from data import load_iclevr_cached, to_float  # noqa: E402
from evaluate import object_breakdown  # noqa: E402
from models import build_cgan, topk_hits  # noqa: E402

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("ckpt")
p.add_argument("--data-root", default="data/iclevr-synth")
p.add_argument("--n", type=int, default=2000, help="real images (a fixed random subset) and as many fakes")
args = p.parse_args()
ckpt = T.load_checkpoint(args.ckpt, kind="cgan")
config = ckpt["config"]
netG, netD = build_cgan(config)
netD.load_state_dict(ckpt["netD"])
netG.load_state_dict(T.generator_weights(ckpt))
netG.eval(), netD.eval()
images, conditions, objects = load_iclevr_cached(args.data_root, config["img_size"])
idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:args.n]
y = conditions[idx]
with torch.no_grad():
    _, aux_real = netD(to_float(images[idx]), y)
    fake = netG(torch.randn(len(y), config["noise_dim"], generator=torch.Generator().manual_seed(1)), y)
    _, aux_fake = netD(fake, y)
print(f"{args.ckpt} (epoch {ckpt['epoch']}, step {ckpt['step']})")
for name, logits in (("real images", aux_real), ("G's images", aux_fake)):
    hits = topk_hits(logits.float(), y)
    print(f"D's classifier finds {hits.sum().item() / y.sum().item():.3f} of the objects in {name}")
    print("\n".join(object_breakdown(hits.sum(0), y.sum(0), objects)))
