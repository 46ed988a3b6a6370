"""Four small jobs: one after another (Hydra's basic launcher) against two at a time
(`hydra/launcher=joblib hydra.launcher.n_jobs=2`, one torch thread each on two cores).

Each sweep is the whole `vbench -m` process, start-up, plots and summary included: what a user
waits for. The jobs are the seed-003 CNN on 32x32 RGB fake data, four seeds. The sequential
sweep runs twice: with torch's default threads (one per core) and with one thread per job, so
the figures separate "two jobs at a time" from "one thread instead of two" (on a busy machine,
two threads lose much more than the second core brings).
Needs the joblib extra: pip install -e ".[joblib]".

    PYTHONPATH=src python benchmarks/sweep_joblib.py [--epochs 15] [--jobs 2]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VBENCH = Path(sys.executable).with_name("vbench")
JOBS = ["model=cnn", "dataset=fake", "trainer.device=cpu", "trainer.precision=32",
        "trainer.seed=0,1,2,3"]


def sweep(out: Path, epochs: int, launcher: list[str], env: dict) -> tuple[float, list[dict]]:
    """Wall time of one `vbench -m` and the metrics of its jobs."""
    start = time.perf_counter()
    subprocess.run([str(VBENCH), "-m", *JOBS, f"trainer.epochs={epochs}",
                    f"hydra.sweep.dir={out}", *launcher], env=os.environ | env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    return seconds, [json.loads(p.read_text()) for p in sorted(out.glob("*/metrics.json"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--jobs", type=int, default=2, help="joblib workers")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, 4 jobs of {args.epochs} epochs (cnn on fake 32x32x3)")
    with tempfile.TemporaryDirectory() as tmp:
        one_thread = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        runs = {"sequential": ([], {}),
                "sequential, 1 thread": ([], one_thread),
                f"joblib n_jobs={args.jobs}": (["hydra/launcher=joblib",
                                                f"hydra.launcher.n_jobs={args.jobs}"], {})}
        times = {}
        for i, (name, (launcher, env)) in enumerate(runs.items()):
            times[name], jobs = sweep(Path(tmp) / str(i), args.epochs, launcher, env)
            assert [m["status"] for m in jobs] == ["completed"] * 4, jobs
            train = sum(m["train_time_s"] for m in jobs)
            print(f"{name:>20}: {times[name]:6.1f} s wall   threads/job {jobs[0]['threads']}   "
                  f"sum of train_time_s {train:5.1f} s")
    sequential, one_thread, parallel = times.values()
    print(f"joblib speedup: {sequential / parallel:.2f}x over sequential, "
          f"{one_thread / parallel:.2f}x over sequential with 1 thread")


if __name__ == "__main__":
    main()
