"""Seeds stacked into one model (hydra/launcher=stack) against the same seeds as a serial
sweep and against one seed alone, whole `vbench -m` processes on the same machine.

    python benchmarks/stack_seeds.py                  # the default run (digits MLP), 5 seeds
    python benchmarks/stack_seeds.py --seeds 20 --device cuda \
        dataset=fashion_mnist ...                     # the GPU row, where one is lent

Rows (targets of issue 28): the stacked sweep's wall time / the serial sweep's [<= 0.5 on a
CPU], the stack's training phase (metrics.json timings.training, which every member records)
/ one seed's training phase [<= 2.5], and on a GPU the stacked sweep's wall time / one seed's
sweep [<= 2] and the serial sweep's / the stacked one's [>= 8]. Every sweep runs with the same
torch threads.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sweep(tmp: Path, name: str, seeds: int, extra: list[str]) -> tuple[float, list[dict]]:
    # One torch thread unless told otherwise: on a shared 2-core machine two threads per
    # process made one seed's training 20x slower (spinning threads), which no ratio survives.
    env = {"OMP_NUM_THREADS": "1", **os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vbench", "-m", "eval.plots=[]",
                    f"trainer.seed={','.join(map(str, range(seeds)))}", *extra,
                    f"hydra.sweep.dir={tmp / name}"], check=True, cwd=tmp, env=env,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    return wall, [json.loads(p.read_text()) for p in sorted((tmp / name).glob("*/metrics.json"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("overrides", nargs="*", help="extra vbench overrides for every run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        one_wall, one = sweep(tmp, "one", 1, args.overrides)
        serial_wall, _ = sweep(tmp, "serial", args.seeds, args.overrides)
        stack_wall, stack = sweep(tmp, "stack", args.seeds,
                                  [*args.overrides, "hydra/launcher=stack"])
    train_one = one[0]["timings"]["training"]
    train_stack = stack[0]["timings"]["training"]
    print(f"{args.seeds} seeds, {' '.join(args.overrides) or 'the default run'}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("row | stacked | baseline | ratio | target")
    print(f"sweep wall time | {stack_wall:.1f} s | serial {serial_wall:.1f} s | "
          f"{stack_wall / serial_wall:.2f}x | <= 0.5")
    print(f"training phase | {train_stack:.2f} s | one seed {train_one:.2f} s | "
          f"{train_stack / train_one:.2f}x | <= 2.5")
    print(f"against one seed | {stack_wall:.1f} s | one seed's sweep {one_wall:.1f} s | "
          f"{stack_wall / one_wall:.2f}x | <= 2 on a GPU")
    print(f"speed-up over serial | {stack_wall:.1f} s | serial {serial_wall:.1f} s | "
          f"{serial_wall / stack_wall:.1f}x faster | >= 8x on a GPU")


if __name__ == "__main__":
    main()
