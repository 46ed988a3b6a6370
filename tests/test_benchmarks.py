"""The GPU benchmark's code paths, run small on the CPU: every row prints, with its ratio, and
the fill sweep gives the serial sweep's numbers."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_benchmark_runs_on_the_cpu():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/gpu.py"), "--device", "cpu",
                           "--tiny"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split(" | ") for line in done.stdout.splitlines() if line.count(" | ") >= 5]
    assert [row[:2] for row in rows[1:]] == [
        [model, row] for model in ("mlp", "cnn")
        for row in ("float32", "auto", "reduce-overhead")] + [["sweep", "10 jobs, 2/device"]]
    assert all(float(row[4].rstrip("x")) > 0 for row in rows[1:])
    assert rows[-1][-1].endswith("same numbers")
