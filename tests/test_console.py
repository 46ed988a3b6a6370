"""What a run prints: vbench.log in the run directory, errors included, without control
codes; progress inside an epoch that never spams carriage returns in a log."""

import json

import pytest

from conftest import make_cfg
from vbench.errors import VBenchError


def test_run_log_holds_everything_printed(run_vbench):
    metrics, run_dir = run_vbench("debug=smoke", "trainer.epochs=2", "eval.plots=[]")
    log = (run_dir / "vbench.log").read_text()
    assert "\x1b" not in log and "\r" not in log  # no terminal control codes
    assert "mlp on digits" in log and "epoch   2" in log
    assert f"{metrics['best']['val']['accuracy']:.4f}" in log  # the summary table
    assert f"run directory: {run_dir}" in log


def test_run_log_records_the_error_that_ends_a_run(tmp_path):
    from vbench.run import run

    with pytest.raises(VBenchError):
        run(make_cfg("debug=smoke", "model.activation=nope"), tmp_path / "bad")
    log = (tmp_path / "bad/vbench.log").read_text()
    assert "vbench: error: model.activation='nope' is not valid" in log
    assert json.loads((tmp_path / "bad/metrics.json").read_text())["status"] == "failed"
