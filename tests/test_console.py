"""What a run prints: vbench.log in the run directory, errors included, without control
codes; progress inside an epoch that never spams carriage returns in a log."""

import json

import pytest

from helpers import make_cfg
from vbench.core.errors import VBenchError


def test_run_log_holds_everything_printed(run_vbench):
    metrics, run_dir = run_vbench("debug=smoke", "trainer.epochs=2", "eval.plots=[]")
    log = (run_dir / "vbench.log").read_text()
    assert "\x1b" not in log and "\r" not in log  # no terminal control codes
    assert "mlp on digits" in log and "epoch   2" in log
    assert f"{metrics['best']['val']['accuracy']:.4f}" in log  # the summary table
    assert f"run directory: {run_dir}" in log


def test_run_log_records_the_error_that_ends_a_run(tmp_path):
    from vbench.training.run import run

    # A valid config whose data is missing, as a sweep's job: the run starts, then fails.
    with pytest.raises(VBenchError):
        run(make_cfg("debug=smoke", "dataset=mnist", f"dataset.root={tmp_path / 'none'}"),
            tmp_path / "bad", sweep_job=True)
    log = (tmp_path / "bad/vbench.log").read_text()
    assert "vbench: error: dataset=mnist: data not found" in log
    assert json.loads((tmp_path / "bad/metrics.json").read_text())["status"] == "failed"
    # A bad value is refused before the run touches its directory at all.
    with pytest.raises(VBenchError):
        run(make_cfg("debug=smoke", "model.activation=nope"), tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_progress_lines_off_a_terminal_inside_an_epoch(run_vbench):
    # pytest's stdout is not a terminal: lines every log_every_s seconds, no carriage returns.
    _, run_dir = run_vbench("debug=smoke", "trainer.epochs=1", "eval.plots=[]",
                            "trainer.log_every_s=1e-9")
    log = (run_dir / "vbench.log").read_text()
    assert "  epoch 1 batch 1/" in log and "img/s  ETA" in log
    assert "\r" not in log and "\x1b" not in log


def test_live_bars_on_a_terminal(monkeypatch):
    import io

    import torch
    from rich.console import Console

    from vbench.core import console as console_module
    from vbench.data.registry import Split
    from vbench.training.loop import StepRecipe, train_one_epoch

    screen = io.StringIO()
    monkeypatch.setattr(console_module, "console",
                        Console(file=screen, force_terminal=True, width=120))
    model = torch.nn.Linear(4, 2)
    split = Split(torch.randn(256, 4), torch.randint(0, 2, (256,)))
    recipe = StepRecipe(torch.optim.SGD(model.parameters(), lr=0.1),
                        torch.amp.GradScaler("cpu", enabled=False), None, None)
    with console_module.epoch_progress(1, "tiny", batches=8) as report:
        train_one_epoch(model, split, 32, recipe, torch.Generator(), report.batch)
        assert report.done == 8 and report.images == 256
        report({"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0,
                "val_acc": 0.5, "lr": 0.1, "epoch_s": 0.1})
    shown = screen.getvalue()
    assert "tiny" in shown and "batches" in shown and "8/8" in shown and "img/s" in shown
