"""The logger group: TensorBoard and MLflow read back with their own readers, W&B offline,
and the promise that a tracker never costs a run."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import VBENCH, vbench
from vbench.core.errors import VBenchError


def read_history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_tensorboard_events_equal_history_and_carry_hparams(run_vbench):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    metrics, run_dir = run_vbench("debug=smoke", "trainer.epochs=2", "logger=tensorboard",
                                  "eval.plots=[curves]")
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    history = read_history(run_dir)
    for column in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_s"):
        logged = [(e.step, e.value) for e in events.Scalars(column)]
        assert logged == [(int(r["epoch"]), pytest.approx(r[column], rel=1e-6))
                          for r in history], column
    final = events.Scalars("hparam/best_test_accuracy")[0].value
    assert final == pytest.approx(metrics["best"]["test"]["accuracy"], rel=1e-6)
    assert "plots/curves" in events.Tags()["images"]
    # The HParams tab's summaries: the experiment with the flattened config as hparams.
    assert "_hparams_/experiment" in events.PluginTagToContent("hparams")
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    assert b"optimizer.lr" in content and b"model.depth" in content


def test_a_failing_logger_is_a_warning_and_the_run_completes(run_vbench, monkeypatch, capsys):
    from torch.utils.tensorboard import SummaryWriter

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(SummaryWriter, "add_scalar", broken)
    metrics, run_dir = run_vbench("debug=smoke", "logger=tensorboard", "eval.plots=[]")
    assert metrics["status"] == "completed" and (run_dir / "history.csv").is_file()
    err = capsys.readouterr().err
    assert "warning: logger tensorboard failed (log_epoch)" in err and "disk full" in err


@pytest.mark.slow
def test_an_unreachable_tracking_server_is_a_warning(run_vbench, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    metrics, _ = run_vbench("debug=smoke", "logger=mlflow", "eval.plots=[]",
                            "logger.mlflow.tracking_uri=http://127.0.0.1:9")
    assert metrics["status"] == "completed"
    assert "warning: logger mlflow could not start" in capsys.readouterr().err


def test_a_missing_package_names_the_extra_before_training(run_vbench, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    with pytest.raises(VBenchError, match=r"logger=mlflow needs the mlflow package: "
                                          r"pip install 'vbench\[mlflow\]'"):
        run_vbench("debug=smoke", "logger=[tensorboard,mlflow]")
    assert not (tmp_path / "run/history.csv").exists()  # no epoch was trained


@pytest.mark.slow
def test_runs_without_loggers_import_no_tracker():
    code = ("import sys, vbench.training.run; "
            "print(sorted({'mlflow', 'wandb', 'tensorboard'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_sweep_with_tensorboard_and_mlflow(tmp_path, monkeypatch):
    """The README's command: TB events per job, one MLflow parent run with a nested run per
    job in a fresh SQLite store, and report.html in the sweep directory."""
    from mlflow import MlflowClient

    result = vbench("-m", "debug=smoke", "trainer.epochs=2", "model.depth=1,2",
                    "logger=[tensorboard,mlflow]", "eval.plots=[curves,confusion]",
                    "hydra.sweep.dir=sweep", cwd=tmp_path, src_first=True)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr, result.stderr
    sweep = tmp_path / "sweep"
    jobs = sorted(p for p in sweep.iterdir() if (p / "metrics.json").is_file())
    assert len(jobs) == 2 and not any("logger" in job.name for job in jobs)  # not in dir names
    assert all(list((job / "tb").glob("events.out.tfevents.*")) for job in jobs)
    assert (sweep / "report.html").stat().st_size > 10_000
    tensorboard = shutil.which("tensorboard") or str(VBENCH.with_name("tensorboard"))
    inspect = subprocess.run([tensorboard, "--inspect", "--logdir", "sweep"], cwd=tmp_path,
                             capture_output=True, text=True, check=True)
    assert "val_acc" in inspect.stdout and "hparam/best_test_accuracy" in inspect.stdout

    monkeypatch.chdir(tmp_path)  # the README's URI, as `mlflow ui --backend-store-uri` takes it
    client = MlflowClient("sqlite:///outputs/mlflow.db")
    experiment = client.get_experiment_by_name("digits")
    assert experiment.artifact_location == (tmp_path / "outputs/mlartifacts").as_uri()
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert parents[0].data.tags["vbench.sweep_dir"] == str(sweep.resolve())
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    for child in children:
        job = Path(child.data.tags["vbench.run_dir"])
        assert child.info.status == "FINISHED"
        assert child.data.params["model.depth"] == job.name.split("model.depth=")[1][0]
        assert child.data.params["optimizer.lr"] == "0.001"
        for column, values in {k: [r[k] for r in read_history(job)]
                               for k in ("train_loss", "val_acc", "lr", "epoch_s")}.items():
            logged = sorted(client.get_metric_history(child.info.run_id, column),
                            key=lambda m: m.step)
            assert [(m.step, m.value) for m in logged] == [
                (e, pytest.approx(v)) for e, v in enumerate(values, 1)]
        metrics = json.loads((job / "metrics.json").read_text())
        assert child.data.metrics["best_test_accuracy"] == metrics["best"]["test"]["accuracy"]
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"metrics.json", "history.csv", "plots"} <= artifacts
        assert {a.path for a in client.list_artifacts(child.info.run_id, "plots")} == {
            "plots/curves.png", "plots/confusion.png"}


@pytest.mark.slow
def test_wandb_offline(run_vbench, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    metrics, run_dir = run_vbench("debug=smoke", "trainer.epochs=2", "logger=wandb",
                                  "eval.plots=[curves]")
    offline = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 1
    # wandb 0.31 ships no reader for its offline log (a protobuf stream that `wandb sync`
    # uploads): check that every logged key and value is in it, as the JSON wandb stores.
    log = offline[0].read_bytes()
    history = read_history(run_dir)
    for key in ("train_loss", "val_acc", "lr", "epoch_s"):
        assert key.encode() in log
        assert all(json.dumps(row[key]).encode() in log for row in history), key
    assert b"best_test_accuracy" in log
    assert json.dumps(metrics["best"]["test"]["accuracy"]).encode() in log
    assert list(offline[0].parent.glob("files/media/images/plots/curves_*.png"))
