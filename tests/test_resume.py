"""Runs survive being killed: resume continues to the same numbers; sweeps finish what is missing."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from helpers import VBENCH, make_cfg, start_paused
from vbench.core.errors import VBenchError
from vbench.training.run import run

# Dropout and BatchNorm: resume must restore the RNG and the running statistics too.
SLOW_ENOUGH = ["model=cnn", "model.dropout=0.3", "trainer.epochs=8", "trainer.batch_size=16",
               "dataset.subset_per_class=60", "eval.plots=[]", "trainer.device=cpu",
               "trainer.precision=32"]


def start(*args, cwd, after_epoch: int):
    """A run that waits once epoch `after_epoch` is on disk (VBENCH_PAUSE_AT)."""
    return start_paused([str(VBENCH), *args], f"epoch:{after_epoch}", cwd)


def same_results(a: dict, b: dict) -> None:
    for key in ("status", "epochs_run", "best_epoch", "best", "final", "per_class_accuracy",
                "params"):
        assert a[key] == b[key], key


def history_without_times(run_dir: Path) -> list[str]:
    return [line.rsplit(",", 1)[0] for line in (run_dir / "history.csv").read_text().splitlines()]


def test_sigkill_then_resume_gives_the_uninterrupted_numbers(tmp_path):
    whole = subprocess.run([str(VBENCH), *SLOW_ENOUGH, "hydra.run.dir=whole"], cwd=tmp_path,
                           capture_output=True, text=True, check=False)
    assert whole.returncode == 0, whole.stderr

    with start(*SLOW_ENOUGH, "hydra.run.dir=killed", cwd=tmp_path, after_epoch=3) as paused:
        paused.proc.send_signal(signal.SIGKILL)
        paused.proc.wait()
    assert not (tmp_path / "killed/metrics.json").exists()  # died mid-run, nothing claimed

    resumed = subprocess.run([str(VBENCH), *SLOW_ENOUGH, "hydra.run.dir=killed",
                              "trainer.resume=true"], cwd=tmp_path, capture_output=True,
                             text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    # one line for the restored range, then a line for each epoch trained now (4-8)
    assert f"epochs 1–3 restored from {tmp_path / 'killed/checkpoints/last.pt'}" in resumed.stdout
    assert [line.split()[1] for line in resumed.stdout.splitlines()  # "epoch   4/8  ..."
            if line.startswith("epoch ")] == [f"{e}/8" for e in range(4, 9)]
    a = json.loads((tmp_path / "whole/metrics.json").read_text())
    b = json.loads((tmp_path / "killed/metrics.json").read_text())
    same_results(a, b)
    assert history_without_times(tmp_path / "whole") == history_without_times(tmp_path / "killed")


def test_sigterm_marks_interrupted_and_the_same_command_continues(tmp_path):
    with start(*SLOW_ENOUGH, "hydra.run.dir=run", cwd=tmp_path, after_epoch=2) as paused:
        paused.proc.send_signal(signal.SIGTERM)
        code, rest = paused.finish()
    assert code == 130, rest
    assert "continue with: vbench " in rest
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["status"] == "interrupted"

    again = subprocess.run([str(VBENCH), *SLOW_ENOUGH, "hydra.run.dir=run"], cwd=tmp_path,
                           capture_output=True, text=True, check=False)  # resume=auto
    assert again.returncode == 0, again.stderr
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_run"] == 8


def test_rerunning_a_sweep_finishes_only_what_is_missing(tmp_path):
    command = [str(VBENCH), "-m", "debug=smoke", "model.depth=1,2", "hydra.sweep.dir=sweep"]
    first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    done, lost = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    done_before = done.read_text()
    lost.unlink()  # as if the second job had been killed before writing its metrics

    second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert second.returncode == 0, second.stderr
    assert done.read_text() == done_before  # untouched: not retrained
    assert "already finished" in second.stdout
    assert json.loads(lost.read_text())["status"] == "completed"


def test_corrupt_checkpoint_is_refused_clearly(run_vbench, tmp_path):
    _, run_dir = run_vbench("debug=smoke")
    (run_dir / "metrics.json").unlink()
    last = run_dir / "checkpoints/last.pt"
    last.write_bytes(last.read_bytes()[:200])  # truncated
    with pytest.raises(VBenchError, match="cannot be read \\(it is truncated or not a torch zip file"):
        run(make_cfg("debug=smoke"), run_dir)


def test_resume_refuses_another_config(run_vbench):
    _, run_dir = run_vbench("debug=smoke")
    (run_dir / "metrics.json").unlink()
    with pytest.raises(VBenchError, match="another config \\(differs in model.width, "
                                          "optimizer.lr\\)"):
        run(make_cfg("debug=smoke", "model.width=8", "optimizer.lr=0.1"), run_dir)


def test_resume_true_needs_a_checkpoint(tmp_path):
    with pytest.raises(VBenchError, match="trainer.resume=true but .*last.pt does not exist"):
        run(make_cfg("debug=smoke", "trainer.resume=true"), tmp_path)


def test_finished_runs_are_skipped_unless_resume_false(run_vbench, tmp_path):
    first, run_dir = run_vbench("debug=smoke")
    stamp = os.stat(run_dir / "metrics.json").st_mtime_ns
    assert run(make_cfg("debug=smoke"), run_dir) == first
    assert os.stat(run_dir / "metrics.json").st_mtime_ns == stamp
    again = run(make_cfg("debug=smoke", "trainer.resume=false"), run_dir)
    assert os.stat(run_dir / "metrics.json").st_mtime_ns != stamp
    assert again["best"] == first["best"]  # same seed, same numbers
