"""Does picking the best epoch flatter its figure? The trainer picks g_best.pt by 5 noise draws per
epoch (seed 0), and `evaluate.py --draws 10` starts from the same seed, so its first 5 draws are the
ones that picked the epoch. This judges each generator on those 10 draws and on 10 others (--seed).

    python docs/fresh_draws.py --evaluator E_EVALUATOR RUN/g_best.pt OTHER_RUN/g_best.pt [--seed 1000]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import training as T  # noqa: E402  (first: it sets up the Apple-silicon fallback before torch loads)
from data import SPEC_DIR, load_conditions  # noqa: E402
from evaluate import generator_accuracy, load_evaluator  # noqa: E402
from models import build_cgan  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpts", nargs="+", help="cGAN g.pt / g_best.pt files")
    p.add_argument("--evaluator", required=True, help="the judge's file (the coursework's format)")
    p.add_argument("--draws", type=int, default=10, help="noise draws per condition file")
    p.add_argument("--seed", type=int, default=1000, help="the other draws' seed (evaluate.py's is 0)")
    args = p.parse_args()
    evaluator = load_evaluator(args.evaluator, torch.device("cpu"))
    for path in args.ckpts:
        ckpt = T.load_checkpoint(path, kind="cgan")
        netG, _ = build_cgan(ckpt["config"])
        netG.load_state_dict(T.generator_weights(ckpt))
        files = {name: load_conditions(os.path.join(SPEC_DIR, name), ckpt["objects"])
                 for name in ("test.json", "new_test.json")}
        print(f"{path} (epoch {ckpt.get('epoch', '?')})")
        for seed in (0, args.seed):
            figures = []
            for name, conditions in files.items():
                mean, std, _, _ = generator_accuracy(netG, ckpt["config"]["noise_dim"], evaluator, conditions,
                                                     args.draws, seed=seed)
                figures.append(f"{name} {mean:.4f} +- {std:.4f}")
            print(f"  {args.draws} draws from seed {seed}{' (evaluate.py)' if seed == 0 else ''}: {' | '.join(figures)}",
                  flush=True)
    return 0


if __name__ == "__main__":
    T.run_cli(main)
