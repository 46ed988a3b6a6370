"""What the default four plots (curves, confusion, per_class, gap) cost at the end of a run.

    python benchmarks/plots.py [--classes 10] [--epochs 30] [--repeat 3]

Runs in a fresh process: the first round pays matplotlib's import and font cache look-up, as
every run does; later rounds show the drawing cost alone. Prints seconds per round and the
ratio of the whole first round to one second (the target is "well under a second").
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    history = [{"epoch": e, "train_loss": 1 / e, "train_acc": 1 - 0.5 / e, "val_loss": 1.1 / e,
                "val_acc": 1 - 0.6 / e, "lr": 1e-3 / e, "epoch_s": 0.1}
               for e in range(1, args.epochs + 1)]
    classes = [f"class {i}" for i in range(args.classes)]
    y_true = rng.integers(0, args.classes, 2000)
    y_pred = np.where(rng.random(2000) < 0.8, y_true, rng.integers(0, args.classes, 2000))
    accuracy = {c: float((y_pred[y_true == i] == i).mean()) for i, c in enumerate(classes)}

    start = time.perf_counter()
    from vbench.reports import plots

    import_s = time.perf_counter() - start
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for _ in range(args.repeat):
            start = time.perf_counter()
            plots.plot_curves(history, out / "curves.png", best_epoch=args.epochs - 3)
            plots.plot_gap(history, out / "gap.png", best_epoch=args.epochs - 3)
            plots.plot_confusion(y_true, y_pred, classes, "bench", out / "confusion.png")
            plots.plot_per_class(accuracy, "bench", out / "per_class.png")
            rounds.append(time.perf_counter() - start)
    print(f"default four plots, {args.classes} classes, {args.epochs} epochs")
    print(f"  import vbench.reports.plots: {import_s:.3f} s")
    print(f"  first round (matplotlib import + four figures): {rounds[0]:.3f} s")
    for i, s in enumerate(rounds[1:], 2):
        print(f"  round {i} (four figures): {s:.3f} s")
    print(f"  first round / 1 s target: {rounds[0]:.2f}x")


if __name__ == "__main__":
    main()
