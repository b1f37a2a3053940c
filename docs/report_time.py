"""What rewriting report.md costs a trainer each epoch: from the checkpoints just saved (what the
trainers do) against reading ckpt.pt and g.pt back first.

    python docs/report_time.py RUN [--repeats 3]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import training as T  # noqa: E402
import report as R  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a run folder with ckpt.pt and g.pt")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    ckpt_path, g_path = os.path.join(args.run, T.CHECKPOINT), os.path.join(args.run, T.GENERATOR)
    print(f"{args.run}: ckpt.pt {os.path.getsize(ckpt_path) / 1e6:.1f} MB, g.pt {os.path.getsize(g_path) / 1e6:.1f} MB")
    for i in range(args.repeats):
        t = time.perf_counter()
        saved = T.load_checkpoint(ckpt_path), T.load_checkpoint(g_path)
        read_back = time.perf_counter() - t
        t = time.perf_counter()
        R.write_report(args.run, saved=saved)
        from_memory = time.perf_counter() - t
        print(f"repeat {i + 1}: reading both back {read_back:.2f} s, the report from the dicts {from_memory:.2f} s")


if __name__ == "__main__":
    main()
