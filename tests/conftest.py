"""Tests compose the real config shipped in the package, shrink it, and run real trainings
with the run directory under tmp_path."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

# Small enough for a 2-core CI, large enough that accuracy well above chance is meaningful.
TINY = ["trainer.device=cpu", "trainer.precision=32"]


def make_cfg(*overrides: str):
    with initialize_config_module("vbench.conf", version_base="1.3"):
        return compose("config", overrides=[*TINY, *overrides])


@pytest.fixture
def run_vbench(tmp_path):
    """run_vbench(*overrides) -> (metrics dict, run dir): one real run under tmp_path."""
    from vbench.run import run

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
