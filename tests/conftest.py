"""Tests compose the real config shipped in the package, shrink it, and run real trainings
with the run directory under tmp_path. The fixtures are here; what tests share besides them
is in helpers/, which every test module imports (never another test module)."""

import json
from pathlib import Path

import pytest

from helpers import fake_run, make_cfg


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


@pytest.fixture
def sweep(tmp_path) -> Path:
    """A hand-made sweep directory: 4 finished, 1 failed, 1 killed job (no metrics.json)."""
    sweep = tmp_path / "sweep"
    for i, (seed, acc) in enumerate([(0, 0.70), (1, 0.80), (2, 0.90)]):
        fake_run(sweep / f"{i}_mlp", ["model=mlp", f"trainer.seed={seed}"], acc, params=1000)
    fake_run(sweep / "3_cnn", ["model=cnn", "trainer.seed=0"], 0.95, params=50_000)
    fake_run(sweep / "4_bad", ["model=cnn", "model.depth=99", "trainer.seed=0"], status="failed")
    fake_run(sweep / "5_killed", ["model=cnn", "model.depth=3", "trainer.seed=0"])
    return sweep
