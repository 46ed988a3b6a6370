"""hydra/launcher=stack (issue 28): a configuration's seeds trained as one stacked model, each
member the run of its seed, writing the run directory a separate run writes."""

import csv
import json
from pathlib import Path

import pytest

from helpers import VBENCH, vbench

SHORT = ["eval.plots=[]", "trainer.epochs=3", "trainer.seed=0,1,2"]
FILES = ("metrics.json", "history.csv", "checkpoints/best.pt", "checkpoints/last.pt",
         "model_card.md", ".hydra/config.yaml", "vbench.log")


def _sweep(cwd: Path, name: str, *args: str) -> list[Path]:
    done = vbench("-m", *args, f"hydra.sweep.dir={name}", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return sorted(p for p in (cwd / name).iterdir() if p.is_dir())


def _history(job: Path) -> list[dict]:
    return [{k: float(v) for k, v in row.items() if k != "epoch_s"}
            for row in csv.DictReader((job / "history.csv").open())]


def _worst(stacked: list[dict], serial: list[dict], column: str) -> float:
    return max(abs(a[column] - b[column]) / max(abs(b[column]), 1e-12)
               for a, b in zip(stacked, serial, strict=True))


@pytest.mark.slow
def test_each_member_is_the_run_of_its_seed(tmp_path):
    """Without BatchNorm every loss in history.csv equals a serial sweep's to 1e-5 (relative;
    measured here: 4e-8, the float32 rounding of the stacked matmuls, which another CPU's
    kernels may round otherwise) and the accuracies within one image (measured: equal). With it (the default), a Linear bias right
    before a BatchNorm has an exact gradient of zero, and Adam turns the rounding noise of that
    zero into steps of the learning rate's size, so the running means (and eval-mode numbers)
    drift apart by about 1e-4; the tolerance there is 2e-3 on val_loss, 1e-4 on train_loss
    (measured: 3e-5 after 3 epochs) and one image on each accuracy."""
    for extra, tight in ((["model.batchnorm=false"], True), ([], False)):
        stacked = _sweep(tmp_path, f"stack{tight}", *SHORT, *extra, "hydra/launcher=stack")
        serial = _sweep(tmp_path, f"serial{tight}", *SHORT, *extra)
        assert [p.name for p in stacked] == [p.name for p in serial]
        for a, b in zip(stacked, serial, strict=True):
            assert all((a / f).is_file() for f in FILES), a
            ours, theirs = _history(a), _history(b)
            assert len(ours) == len(theirs) == 3
            assert [r["epoch"] for r in ours] == [r["epoch"] for r in theirs]
            assert [r["lr"] for r in ours] == [r["lr"] for r in theirs]
            sizes = json.loads((b / "metrics.json").read_text())["sizes"]
            assert _worst(ours, theirs, "train_loss") <= (1e-5 if tight else 1e-4)
            assert _worst(ours, theirs, "val_loss") <= (1e-5 if tight else 2e-3)
            for split in ("train", "val"):  # one image may flip (measured without BN: none)
                assert max(abs(x[f"{split}_acc"] - y[f"{split}_acc"]) for x, y in
                           zip(ours, theirs, strict=True)) <= 1 / sizes[split] + 1e-9
            ma, mb = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
            assert ma["status"] == mb["status"] == "completed" and ma["seed"] == mb["seed"]
            assert ma["config"] == mb["config"] and ma["best_epoch"] == mb["best_epoch"]
    # A member's checkpoints are a separate run's: vbench-eval reproduces its best.
    member = stacked[1]
    evaluated = vbench(str(member), cwd=tmp_path, program=VBENCH.with_name("vbench-eval"))
    assert evaluated.returncode == 0, evaluated.stderr
    best = json.loads((member / "metrics.json").read_text())["best"]["test"]
    again = json.loads((member / "eval/digits_test/metrics.json").read_text())
    assert again["accuracy"] == best["accuracy"]


def test_members_stop_early_on_their_own_and_a_rerun_skips_a_finished_stack(tmp_path):
    jobs = _sweep(tmp_path, "stack", "eval.plots=[]", "trainer.epochs=5", "trainer.patience=1",
                  "trainer.min_delta=100", "trainer.seed=0,1", "hydra/launcher=stack")
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["status"] == "early_stopped" and metrics["epochs_run"] == 2
        assert len(_history(job)) == 2
    again = vbench("-m", "eval.plots=[]", "trainer.epochs=5", "trainer.patience=1",
                   "trainer.min_delta=100", "trainer.seed=0,1", "hydra/launcher=stack",
                   "hydra.sweep.dir=stack", cwd=tmp_path)
    assert again.returncode == 0 and "already finished: 2 seeds" in again.stdout


def test_an_unfinished_stack_trains_again_to_the_same_numbers(tmp_path):
    """A member whose run did not finish (its metrics.json gone, as after a SIGKILL): the rerun
    trains the stack from its first epoch, to the numbers of the uninterrupted stack."""
    args = ("eval.plots=[]", "trainer.epochs=2", "trainer.seed=0,1", "hydra/launcher=stack")
    jobs = _sweep(tmp_path, "stack", *args)
    before = [json.loads((j / "metrics.json").read_text()) for j in jobs]
    (jobs[1] / "metrics.json").unlink()
    _sweep(tmp_path, "stack", *args)
    after = [json.loads((j / "metrics.json").read_text()) for j in jobs]
    for a, b in zip(before, after, strict=True):
        assert (a["best"], a["final"], a["status"]) == (b["best"], b["final"], b["status"])


def test_what_cannot_be_stacked_runs_as_ordinary_jobs_and_says_why(tmp_path):
    done = vbench("-m", "debug=smoke", "eval.plots=[]", "model.dropout=0.2", "trainer.seed=0,1",
                  "hydra/launcher=stack", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert "not stacked: the 2 seeds of" in said and "dropout" in said
    jobs = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    assert [json.loads(p.read_text())["status"] for p in jobs] == ["completed", "completed"]


def test_a_seed_listed_twice_is_one_line_before_any_job(tmp_path):
    done = vbench("-m", "debug=smoke", "trainer.seed=0,1,0", "hydra/launcher=stack", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "trainer.seed=0,1,0 lists 0 more than once" in done.stderr
    assert "(trainer.seed=0,1)" in done.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_the_readme_stack_example_runs_as_written(tmp_path):
    """`vbench -m trainer.seed=0,1,2,3,4 hydra/launcher=stack`: the default run's five seeds."""
    done = vbench("-m", "trainer.seed=0,1,2,3,4", "hydra/launcher=stack", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "5 seeds stacked" in done.stdout
    (sweep,) = (tmp_path / "outputs/sweeps").iterdir()
    metrics = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    assert [(m["seed"], m["status"]) for m in metrics] == [(s, "completed") for s in range(5)]
    assert (sweep / "summary_groups.csv").is_file()  # one configuration, five seeds
