"""Which digits each categorical value of an InfoGAN generator draws (the misses in docs/results.md).

    python docs/infogan_confusion.py --classifier ~/.cache/gan-coursework/mnist_classifier_<key>.pt runs/infogan/g.pt

For every value: N images (noise and continuous codes drawn as in training), read by the toolkit's
digit classifier; prints the one-to-one accuracy and each value's three most frequent digits.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import training as T  # noqa: E402
from models import DigitClassifier, build_infogan  # noqa: E402
from train_infogan import code_digit_accuracy  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpts", nargs="+", help="g.pt files")
    p.add_argument("--classifier", required=True, help="the digit-classifier cache train_infogan.py wrote")
    p.add_argument("--n", type=int, default=500, help="images per categorical value")
    args = p.parse_args()
    classifier = DigitClassifier()
    state = T.load_file(args.classifier, "digit classifier")
    classifier.load_state_dict(state.get("model", state))
    classifier.eval()
    for path in args.ckpts:
        ckpt = T.load_checkpoint(path)
        netG, _ = build_infogan(ckpt["config"])
        netG.load_state_dict(T.generator_weights(ckpt))
        acc, mapping, counts = code_digit_accuracy(netG, classifier, ckpt["config"], args.n, return_counts=True)
        print(f"{path} (epoch {ckpt['epoch']}): code->digit accuracy {acc:.3f} over {args.n} images per value")
        for value, row in enumerate(counts / counts.sum(1, keepdims=True)):
            top = np.argsort(-row)[:3]
            print(f"  value {value} -> digit {mapping[value]}: " + ", ".join(f"{d}: {row[d]:.2f}" for d in top))


if __name__ == "__main__":
    main()
