"""Start-up and wrap-up: whole `vbench` processes against the floor of any torch run.

    python benchmarks/startup.py [--repeats 3] [--skip-sweep] [--device cuda]

Prints, each the minimum over --repeats whole processes (wall clock, as a user waits):

- the floor: a process that imports torch, creates one optimizer (which imports
  torch._dynamo) and steps it once. No training run can start faster;
- `vbench` (defaults: MLP on digits, 30 epochs) and `vbench debug=smoke`, with the phase
  breakdown from metrics.json `timings` (startup = imports + config, data, setup = model and
  optimizer, training, evaluation, plots; "rest" = writing metrics.json, the summary table,
  interpreter exit) and their ratio to the floor;
- a four-job digits sweep in one process (`vbench -m trainer.seed=0,1,2,3`) against the floor
  plus its jobs' training times.

Targets (issue 14): default <= 1.4x floor, smoke <= 1.2x floor, sweep <= floor + 1.3x the sum of
its jobs' training times. Benchmarks this checkout (src/ first on PYTHONPATH). With --device
cuda the floor steps its optimizer on the GPU and the runs train there: the breakdown's
`device` phase is CUDA's context.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))
from vbench.core.rundir import wait_for_figures
from vbench.training.timing import PHASES


def floor_code(device: str) -> str:
    return (f"import torch; m = torch.nn.Linear(8, 2).to('{device}'); "
            "o = torch.optim.Adam(m.parameters()); "
            f"m(torch.ones(4, 8, device='{device}')).sum().backward(); o.step()")


def timed(command: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def vbench(cwd: Path, *overrides: str) -> tuple[float, list[dict]]:
    """Wall time of one `vbench` process and the metrics.json of each of its runs."""
    cwd.mkdir(parents=True)
    # What a user at a terminal gets: the figures drawn after the command returns (waited for
    # here, so that the drawer does not slow the next measured process).
    wall = timed([sys.executable, "-m", "vbench", "eval.background_plots=true", *overrides], cwd)
    runs = sorted(cwd.glob("outputs/**/metrics.json"))
    for run in runs:
        wait_for_figures(run.parent)
    return wall, [json.loads(path.read_text()) for path in runs]


def breakdown(wall: float, timings: dict) -> str:
    parts = [f"{name} {timings[name]:.2f}" for name in PHASES if name in timings]
    return ", ".join(parts + [f"rest {wall - sum(timings.values()):.2f}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for a CUDA start")
    args = parser.parse_args()
    device = [f"trainer.device={args.device}"]
    cases = {"vbench": (device, 1.4), "vbench debug=smoke": (["debug=smoke", *device], 1.2)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Repeats interleave the cases, so that each sees the same load on a busy machine.
        floors, walls = [], {label: [] for label in cases}
        for i in range(args.repeats):
            floors.append(timed([sys.executable, "-c", floor_code(args.device)], tmp))
            for label, (overrides, _) in cases.items():
                walls[label].append(vbench(tmp / f"{label}-{i}".replace(" ", "_"), *overrides))
        floor = min(floors)
        print(f"floor (import torch + one optimizer step on {args.device}): {floor:.2f} s",
              flush=True)
        for label, (_, target) in cases.items():
            wall, (metrics,) = min(walls[label], key=lambda result: result[0])
            print(f"{label}: {wall:.2f} s = {wall / floor:.2f}x floor (target <= {target}x); "
                  f"{breakdown(wall, metrics['timings'])}", flush=True)
        if not args.skip_sweep:
            wall, runs = min((vbench(tmp / f"sweep-{i}", "-m", "trainer.seed=0,1,2,3", *device)
                              for i in range(args.repeats)), key=lambda result: result[0])
            trained = sum(m["train_time_s"] for m in runs)
            print(f"four-job digits sweep: {wall:.2f} s; floor + jobs' training {trained:.2f} s: "
                  f"{(wall - floor) / trained:.2f}x (target <= 1.3x); per job "
                  + "; ".join(breakdown(0, m["timings"]).rsplit(", rest", 1)[0] for m in runs),
                  flush=True)
    print(f"(minimum of {args.repeats} whole processes each, {os.cpu_count()} CPU cores)")


if __name__ == "__main__":
    main()
