"""Tests compose the real config shipped in the package, shrink it, and run real trainings
with the run directory under tmp_path."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

# Small enough for a 2-core CI, large enough that accuracy well above chance is meaningful.
# Figures drawn before run() returns: the tests read plots/ right after.
TINY = ["trainer.device=cpu", "trainer.precision=32", "eval.background_plots=false"]


def make_cfg(*overrides: str):
    with initialize_config_module("vbench.conf", version_base="1.3"):
        return compose("config", overrides=[*TINY, *overrides])


@pytest.fixture
def run_vbench(tmp_path):
    """run_vbench(*overrides) -> (metrics dict, run dir): one real run under tmp_path."""
    from vbench.training.run import run

    def _run(*overrides: str, name: str = "run"):
        run_dir = tmp_path / name
        metrics = run(make_cfg(*overrides), run_dir)
        on_disk = json.loads((run_dir / "metrics.json").read_text())
        assert on_disk == json.loads(json.dumps(metrics))  # what returns is what was written
        return metrics, run_dir

    return _run


def png_ok(path: Path) -> bool:
    """A real, non-trivial PNG file."""
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def start_paused(command: list[str], point: str, cwd: Path, env: dict | None = None):
    """Start `command` (a vbench run) that waits at `point` (vbench/core/pause.py) and return the
    process once it waits there: a signal sent now arrives at that point on any machine."""
    import os
    import subprocess

    env = {**(os.environ if env is None else env), "VBENCH_PAUSE_AT": point}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:  # ends when the process does
        if line.startswith(f"vbench: paused at {point} "):
            return proc
        seen.append(line)
    raise AssertionError(f"never paused at {point} (exit {proc.wait()}): {''.join(seen)[-2000:]}")
