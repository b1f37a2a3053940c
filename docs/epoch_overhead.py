"""What a trainer does at each epoch's end besides training and evaluating, timed at the length of a
long run: ckpt.pt and g.pt, losses.csv and curves.png, progress.gif, report.md (the report drawn from
the checkpoints as saved, with the G the trainer holds, as the trainers do; and, for comparison,
reading both checkpoints back first).

    python docs/epoch_overhead.py RUN [--epochs 100] [--repeats 3]

RUN: a run folder of at least one whole epoch. Its first epoch's losses (and accuracy) are repeated
to --epochs epochs, and its first grid stands for every epoch's frame of progress.gif, so the files
are written at the size they have at that epoch (losses.csv: the epoch's rows appended to the
epochs before, as a trainer does). RUN's files are rewritten: use a copy.
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
    p.add_argument("--epochs", type=int, default=100, help="the epoch whose end is timed")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    ckpt_path, g_path = os.path.join(args.run, T.CHECKPOINT), os.path.join(args.run, T.GENERATOR)
    ckpt, gen = T.load_checkpoint(ckpt_path), T.load_checkpoint(g_path)
    trainer = __import__("train_infogan" if ckpt["kind"] == "infogan" else "train_cgan")
    first = [row for row in ckpt["history"] if int(row[0]) == 1]
    ckpt["history"] = [[e, e_start + row[1]] + list(row[2:]) for e in range(1, args.epochs + 1)
                       for e_start in [(e - 1) * len(first)] for row in first]
    ckpt["accuracy"] = [[e] + list(ckpt["accuracy"][0][1:]) for e in range(1, args.epochs + 1)] if ckpt["accuracy"] else []
    ckpt["epoch_seconds"] = [[e, ckpt["epoch_seconds"][0][1]] for e in range(1, args.epochs + 1)]
    ckpt["epoch"] = gen["epoch"] = args.epochs
    state = {k: ckpt[k] for k in ("history", "accuracy")}
    grid = sorted(os.path.join(args.run, "grids", f) for f in os.listdir(os.path.join(args.run, "grids")))[0]
    frames = [f"{grid}#epoch{e:03d}" for e in range(1, args.epochs + 1)]
    made = {f: T.gif_frame(grid) for f in frames[:-1]}  # the trainer converts only the newest epoch's grid
    print(f"{args.run}: {ckpt['kind']}, {len(first)} iterations an epoch, timed at epoch {args.epochs} "
          f"({len(ckpt['history'])} rows of losses); ckpt.pt {os.path.getsize(ckpt_path) / 1e6:.1f} MB, "
          f"g.pt {os.path.getsize(g_path) / 1e6:.1f} MB")
    netG_ema = R.load_generator(gen)  # the trainer holds its G's moving average: the report draws with it
    steps = {"ckpt.pt + g.pt": lambda: (T.save_checkpoint(ckpt, ckpt_path), T.save_checkpoint(gen, g_path)),
             "losses.csv + curves.png": lambda: trainer.write_logs(args.run, state),
             "progress.gif": lambda: T.make_gif(frames, os.path.join(args.run, "progress.gif"),
                                                frames_made={**made, frames[-1]: T.gif_frame(grid)}),
             "report.md": lambda: R.write_report(args.run, saved=(ckpt, gen), netG=netG_ema)}
    last_epoch = state["history"][-len(first):]
    for i in range(args.repeats):
        # losses.csv grows by appending (training.write_growing_csv): let it hold the epochs before first,
        # as the trainer left it, untimed
        del state["history"][-len(first):]
        trainer.write_logs(args.run, state)
        state["history"] += last_epoch
        times = {}
        for name, step in steps.items():
            t = time.perf_counter()
            step()
            times[name] = time.perf_counter() - t
        t = time.perf_counter()
        T.load_checkpoint(ckpt_path), T.load_checkpoint(g_path)
        read_back = time.perf_counter() - t
        print(f"repeat {i + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items())
              + f"; all {sum(times.values()):.2f} s (reading ckpt.pt and g.pt back would add {read_back:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
