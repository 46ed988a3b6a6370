"""Every console table at 80, 100 and 160 columns: the identifying column never collapses
and every number of the data appears intact; the leaderboard follows vbench's rule (val
picks, test reports), lists failed runs apart, and names the dataset when several are mixed."""

import io
import json
import re

import pytest
from rich.console import Console

from helpers import fake_run
from vbench.commands.report import main
from vbench.core.console import summary_table
from vbench.reports.leaderboard import leaderboard_tables, summarize

WIDTHS = [80, 100, 160]
LONG = ["model=resnet18", "optimizer=sgd", "scheduler=onecycle", "dataset=fashion_mnist",
        "model.weights=/data/weights/resnet18-imagenet.safetensors", "trainer.batch_size=256"]


def render(items, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    for item in items:
        console.print(item)
    text = console.export_text()
    assert all(len(line) <= width for line in text.splitlines())
    return text


def numbers_of(row: dict, keys) -> list[str]:
    return [format(row[k], spec) for k, spec in keys if row.get(k) is not None]


@pytest.fixture
def wide_sweep(tmp_path):
    """Ten runs whose labels are long and whose numbers are wide (millions of params)."""
    for i in range(10):
        fake_run(tmp_path / f"{i}_job", [*LONG, f"model.width={1000 + i}",
                                          f"trainer.seed={i % 2}"], 0.8 + i / 100,
                 params=11_000_000 + i)
    fake_run(tmp_path / "10_bad", ["model=cnn", "model.depth=99"], status="failed")
    return tmp_path


@pytest.mark.parametrize("width", WIDTHS)
def test_leaderboard_keeps_every_number_at_any_width(wide_sweep, width):
    rows, _ = summarize([wide_sweep])
    text = render(leaderboard_tables(rows, "best_val_acc", "sweep", width), width)
    finished = [r for r in rows if r["status"] == "completed"]
    for r in finished:  # the headline numbers always, intact
        for number in numbers_of(r, [("best_val_acc", ".4f"), ("best_test_acc", ".4f")]):
            assert re.search(rf"(?<![\d.]){re.escape(number)}(?![\d.])", text), (width, number)
    if width >= 160:  # room for everything
        for r in finished:
            for number in numbers_of(r, [("final_test_acc", ".4f"), ("macro_f1", ".4f"),
                                         ("params", ","), ("train_time_s", ".1f")]):
                assert number in text, (width, number)
        assert "not shown" not in text
    else:
        assert "narrow terminal: not shown" in text
    # The run column is at least 12 characters wide: its header and label text survive.
    assert "model.width=1009" in text.replace("\n", "").replace(" ", "").replace("│", "") or \
        "model.width" in text
    assert "10_bad" in text or "model.depth=99" in text  # failed runs listed apart, last
    assert text.index("without a result") > text.index("sorted by best_val_acc")


@pytest.mark.parametrize("width", WIDTHS)
def test_run_summary_keeps_every_number(width):
    split = {"loss": 0.123456, "accuracy": 0.987654, "macro_f1": 0.876543, "weighted_f1": 0.9}
    metrics = {"model": "resnet18", "dataset": "cifar10", "status": "completed", "best_epoch": 3,
               "epochs_run": 5, "monitor": "val_loss", "best": {"val": split, "test": split},
               "final": {"val": split, "test": split}}
    text = render([summary_table(metrics, width)], width)
    for value in split.values():
        assert f"{value:.4f}" in text


def test_leaderboard_sorts_by_val_and_lists_failed_apart(tmp_path, capsys):
    # Run a has the better test accuracy, run b the better validation accuracy: b ranks first.
    fake_run(tmp_path / "a", ["model=cnn"], 0.90)
    fake_run(tmp_path / "b", ["model=mlp"], 0.85)
    metrics = json.loads((tmp_path / "b/metrics.json").read_text())
    metrics["best"]["val"]["accuracy"] = 0.99
    metrics["dataset"] = "fashion_mnist"
    (tmp_path / "b/metrics.json").write_text(json.dumps(metrics))
    fake_run(tmp_path / "c", ["model=resmlp"], status="failed")
    assert main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert printed.index("model=mlp") < printed.index("model=cnn") < printed.index("failed")
    assert "dataset" in printed and "fashion_mnist" in printed  # two datasets ranked together
    assert main([str(tmp_path), "--sort", "best_test_acc", "--hide-failed"]) == 0
    printed = capsys.readouterr().out
    assert printed.index("model=cnn") < printed.index("model=mlp")
    assert "model=resmlp" not in printed and "without a result" not in printed
