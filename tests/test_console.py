"""What a run prints: vbench.log in the run directory, errors included, without control
codes; progress inside an epoch that never spams carriage returns in a log."""

import json

import pytest

from helpers import make_cfg
from vbench.core.columns import TRAIN_ACC, TRAIN_LOSS, VAL_ACC, VAL_LOSS
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
    assert "tiny" in shown and "batch 8/8" in shown and "img/s" in shown


def epoch_rows(epochs: int) -> list[dict]:
    return [{"epoch": e, TRAIN_LOSS: 1 / e + 0.1234, TRAIN_ACC: 0.9 - 1 / (10 * e),
             VAL_LOSS: 0.2824 + e / 1000, VAL_ACC: 0.9612 - e / 1000, "lr": 1e-3,
             "epoch_s": 12.5} for e in range(1, epochs + 1)]


@pytest.mark.parametrize("monitor", [VAL_LOSS, VAL_ACC])
def test_live_bars_read_at_80_columns_and_each_epoch_leaves_a_line(monkeypatch, tmp_path,
                                                                     monitor):
    import io
    import re
    import types

    from rich.console import Console

    from vbench.core import console as console_module

    screen = Console(width=80, force_terminal=True, record=True, file=io.StringIO())
    monkeypatch.setattr(console_module, "console", screen)
    clock = iter(range(10**6))  # a tenth of a second a reading: every batch redraws the bars
    monkeypatch.setattr(console_module, "time",
                        types.SimpleNamespace(perf_counter=lambda: next(clock) / 10))
    title = ("resmlp on fashion_mnist: 54000 train / 6000 val images, cuda:0, up to 10 epochs, "
             "a title as long as a real one")
    rows = epoch_rows(3)
    with console_module.run_log(tmp_path), \
            console_module.epoch_progress(10, title, 469, monitor) as report:
        for row in rows:
            for _ in range(469):
                report.batch(128)
            report(row)
        for _ in range(100):  # the fourth epoch, under way
            report.batch(128)
        bars = Console(width=80, record=True, file=io.StringIO())
        bars.print(report.progress.get_renderable())
    epochs, batches = bars.export_text().splitlines()
    last = rows[-1]
    # Epoch N/M, the last epoch's train loss and monitored metric, and an ETA, none cut.
    for text in ("epoch 4/10", f"{TRAIN_LOSS} {last[TRAIN_LOSS]:.4f}",
                 f"{monitor} {last[monitor]:.4f}"):
        assert text in epochs, epochs
    assert re.search(r"ETA \d+:\d\d$", epochs.rstrip()) and "…" not in epochs, epochs
    assert "batch 100/469" in batches and re.search(r"img/s  ETA \d+:\d\d$", batches.rstrip())
    assert max(len(epochs), len(batches)) <= 80

    # Each finished epoch printed one line above the bars (the recording holds every redraw
    # of the bars, but a printed line once), within 80 columns; the log has it whole.
    recorded = screen.export_text()
    assert recorded.count(title.split()[0]) == 1  # the title: above the bars, not on one
    log = (tmp_path / "vbench.log").read_text()
    for row in rows:
        printed = re.findall(rf"epoch +{row['epoch']}/10  {TRAIN_LOSS} [^\n]*", recorded)
        assert len(printed) == 1, printed
        line = printed[0].rstrip()
        assert len(line) <= 80 and f"{monitor} {row[monitor]:.4f}" in line, line
        assert f"{TRAIN_LOSS} {row[TRAIN_LOSS]:.4f}" in line, line
        whole = re.findall(rf"epoch +{row['epoch']}/10  .*", log)
        assert len(whole) == 1 and f"lr {row['lr']:.2e}" in whole[0], whole
        assert f"{TRAIN_ACC} {row[TRAIN_ACC]:.4f}" in whole[0]
    assert log.count(title) == 1
