"""hydra/sweeper=optuna (issue 29): vbench's own sweeper on Optuna >= 4, run as a user runs it,
the installed `vbench -m` in a subprocess, on tiny digits runs: trials recorded, pruned trials
that keep their files, a study continued by a rerun and after a crash, two workers on one
journal file, and every bad input one line before any trial."""

import contextlib
import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import start_paused
from helpers.postgres import postgres_url

pytestmark = pytest.mark.skipif(importlib.util.find_spec("optuna") is None,
                                reason="optuna is not installed (pip install -e '.[optuna]')")

VBENCH = Path(sys.executable).with_name("vbench")
SMALL = ("debug=smoke", "eval.plots=[]", "hydra.sweep.dir=sweep")
# The grid of two learning rates, with a threshold pruner that stops the hopeless one at its
# second epoch (val accuracy 0.05 against 0.80 for lr 0.02 on the smoke split).
TWO_ARMS = ("hydra/sweeper=optuna", "hydra/sweeper/sampler=grid", "trainer.monitor=val_acc",
            "optimizer.lr=choice(0.02,0.000001)", "trainer.epochs=4",
            "hydra.sweeper.pruner={name:threshold,lower:0.3,n_warmup_steps:2}")


def _env(**extra: str) -> dict:
    return {k: v for k, v in os.environ.items()
            if k not in ("HYDRA_FULL_ERROR", "VBENCH_PAUSE_AT")} | extra


def vbench(*args: str, cwd: Path, code: int = 0, **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(VBENCH), "-m", *SMALL, *args], cwd=cwd, env=_env(**env),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == code, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def results(cwd: Path) -> dict:
    return yaml.safe_load((cwd / "sweep/optimization_results.yaml").read_text())


def jobs(cwd: Path) -> dict[int, Path]:
    """The sweep's job directories by trial number (their names start with it)."""
    return {int(p.name.split("_", 1)[0]): p for p in (cwd / "sweep").iterdir()
            if p.is_dir() and p.name.split("_", 1)[0].isdigit()}


def metrics(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


def test_a_search_records_every_trial_and_the_best_config(tmp_path):
    done = vbench("hparams_search=digits_optuna", "hydra.sweeper.n_trials=3", "trainer.epochs=2",
                  cwd=tmp_path)
    assert "hydra/sweeper=optuna: vbench's Optuna sweeper (optuna " in done.stdout
    found = jobs(tmp_path)
    assert sorted(found) == [0, 1, 2]
    study = results(tmp_path)
    assert study["states"] == {"complete": 3} and study["storage"].endswith("sweep/optuna.journal")
    values = {t["number"]: t["value"] for t in study["trials"]}
    for number, job in found.items():
        m = metrics(job)
        assert m["status"] == "completed" and m["monitor"] == "val_acc"
        # What the trial was told: the best epoch's monitored value, as history.csv has it.
        rows = list(csv.DictReader((job / "history.csv").open()))
        assert values[number] == pytest.approx(float(rows[m["best_epoch"] - 1]["val_acc"]))
        assert values[number] == pytest.approx(m["best"]["val"]["accuracy"])
        assert study["trials"][number]["run_dir"] == job.name
    best = study["best_trial"]
    assert best["value"] == study["best_value"] == max(values.values())
    assert set(best["params"]) == {"optimizer.lr", "model.width", "model.depth", "model.dropout"}
    assert best["command"].startswith("vbench optimizer.lr=")
    assert "hparams_search=digits_optuna" in best["overrides"]
    summary = (tmp_path / "sweep/summary.md").read_text()
    assert "## Optuna study" in summary and summary.count("| complete |") == 3
    assert "Optuna study" in (tmp_path / "sweep/report.html").read_text()


def test_a_pruned_trial_keeps_its_files_and_ranks_after_the_completed(tmp_path):
    done = vbench(*TWO_ARMS, "hydra.sweeper.n_trials=2", cwd=tmp_path)
    by_lr = {metrics(job)["config"]["optimizer"]["lr"]: (n, job) for n, job in jobs(tmp_path).items()}
    (bad_number, bad), (good_number, good) = by_lr[1e-6], by_lr[0.02]
    pruned, completed = metrics(bad), metrics(good)
    assert pruned["status"] == "pruned" and pruned["epochs_run"] == 2
    assert completed["status"] == "completed" and completed["epochs_run"] == 4
    for name in ("metrics.json", "history.csv", "model_card.md", "checkpoints/best.pt",
                 "checkpoints/last.pt"):
        assert (bad / name).is_file(), name
    assert len((bad / "history.csv").read_text().splitlines()) == 3  # header + 2 epochs
    study = results(tmp_path)
    states = {t["number"]: t["state"] for t in study["trials"]}
    assert states == {bad_number: "pruned", good_number: "complete"}
    assert study["best_trial"]["number"] == good_number  # chosen among the completed
    # Not failed: the sweep exits 0; ranked after the completed run, marked pruned.
    assert "did not finish" not in done.stderr
    rows = list(csv.DictReader((tmp_path / "sweep/summary.csv").open()))
    assert [r["status"] for r in rows] == ["completed", "pruned"]
    assert "## Runs without a result" not in (tmp_path / "sweep/summary.md").read_text()
    html = (tmp_path / "sweep/report.html").read_text()
    assert "class='status pruned'>pruned<" in html and "<ul class=bad-list>" not in html


def test_a_rerun_continues_the_study_and_a_crashed_trial_runs_again(tmp_path):
    """A worker killed in its first trial (SIGKILL: no goodbye) leaves that trial RUNNING; the
    same command again runs it again, as the same trial in the same directory, resuming from
    last.pt, then the rest; a third run finds the study complete and trains nothing."""
    command = [str(VBENCH), "-m", *SMALL, "hparams_search=digits_optuna",
               "hydra.sweeper.n_trials=2", "trainer.epochs=3"]
    with start_paused(command, "epoch:2", tmp_path):
        pass  # leaving the block kills the worker's process group (SIGKILL)
    (first,) = jobs(tmp_path).values()
    assert not (first / "metrics.json").exists()

    again = vbench("hparams_search=digits_optuna", "hydra.sweeper.n_trials=2",
                   "trainer.epochs=3", cwd=tmp_path)
    assert "trial 0: its worker is gone; running it again" in again.stdout
    assert "epochs 1–2 restored" in again.stdout
    found = jobs(tmp_path)
    assert sorted(found) == [0, 1] and found[0] == first
    assert all(metrics(job)["status"] == "completed" for job in found.values())
    study = results(tmp_path)
    assert study["states"] == {"complete": 2}
    assert study["trials"][0]["epochs_reported"] == 3  # restored epochs reported again

    stamps = {n: (job / "metrics.json").stat().st_mtime_ns for n, job in found.items()}
    third = vbench("hparams_search=digits_optuna", "hydra.sweeper.n_trials=2",
                   "trainer.epochs=3", cwd=tmp_path)
    assert "2 of 2 trials started before" in third.stdout and "Launching" not in third.stdout
    assert {n: (job / "metrics.json").stat().st_mtime_ns for n, job in jobs(tmp_path).items()} \
        == stamps
    more = vbench("hparams_search=digits_optuna", "hydra.sweeper.n_trials=3",
                  "trainer.epochs=3", cwd=tmp_path)
    assert more.stdout.count("Launching 1 jobs") == 1 and sorted(jobs(tmp_path)) == [0, 1, 2]


@pytest.mark.parametrize("storage", [None, "sqlite:///optuna.db", "postgresql"],
                         ids=["journal", "sqlite", "postgresql"])
def test_two_workers_on_one_study_run_n_trials_in_total(tmp_path, storage):
    """Two processes on one study: the default journal file in the sweep directory, a SQLite
    file, or a PostgreSQL server (a real one, helpers/postgres.py), whose claims a database
    lock serializes."""
    with postgres_url() if storage == "postgresql" else contextlib.nullcontext(storage) as url:
        outputs = _workers(tmp_path, 2, "hydra.sweeper.n_trials=4",
                           *([f"hydra.sweeper.storage={url}"] if url else []))
    found = jobs(tmp_path)
    assert sorted(found) == [0, 1, 2, 3]  # each trial once: no trial lost, none run twice
    assert all(metrics(job)["status"] == "completed" for job in found.values())
    study = results(tmp_path)
    assert sorted(t["number"] for t in study["trials"]) == [0, 1, 2, 3]
    assert study["states"] == {"complete": 4}
    if url:
        assert study["storage"] == url
    if storage == "sqlite:///optuna.db":
        assert (tmp_path / "optuna.db").is_file()
    # Each worker launched some of them; seeded samplers draw trial k with seed + k, so the
    # workers' first trials differ.
    launched = [out.count("Launching 1 jobs") for out, _ in outputs]
    assert sum(launched) == 4 and all(launched)
    params = [json.dumps(t["params"], sort_keys=True) for t in study["trials"]]
    assert len(set(params)) == 4


# A worker as a process: at the first go file it opens the storage and the study (creating
# them, as the sweeper does), says "ready"; at the second it claims a trial (study.claim),
# prints its number, and stays alive until its stdin closes (a trial whose worker is gone is
# claimed again).
_CLAIMER = """
import sys, time, optuna
from pathlib import Path
from vbench.commands import study
spec, go = sys.argv[1], Path(sys.argv[2])
def wait(n):
    while not go.with_suffix(n).exists():
        time.sleep(0.001)
wait(".1")
storage = study.open_storage(spec)
race = optuna.create_study(study_name="race", storage=storage, load_if_exists=True)
space = {"x": optuna.distributions.FloatDistribution(0, 1)}
print("ready", flush=True)
wait(".2")
got = study.claim(race, storage, spec, 2, 120, space, optuna.samplers.RandomSampler)
print(None if got is None else got[0].number, flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("storage", ["journal", "sqlite", "postgresql"])
def test_workers_opening_and_claiming_at_one_instant_never_exceed_n_trials(tmp_path, storage):
    """Six workers open a new storage at the same instant (a database's tables are created by
    whichever is first; the others' opens are retried), then claim at the same instant from a
    study of n_trials=2: two trials, each claimed once. (Without the lock, PostgreSQL gave six
    trials in 5 of 5 tries; without the retry, one open in 6 failed.)"""
    import optuna

    from vbench.commands.study import open_storage

    specs = {"journal": lambda: contextlib.nullcontext(str(tmp_path / "optuna.journal")),
             "sqlite": lambda: contextlib.nullcontext(f"sqlite:///{tmp_path / 'optuna.db'}"),
             "postgresql": postgres_url}
    with specs[storage]() as spec:
        go = tmp_path / "go"
        claimers = [subprocess.Popen([sys.executable, "-c", _CLAIMER, spec, str(go)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                    for _ in range(6)]
        try:
            go.with_suffix(".1").touch()
            assert [c.stdout.readline() for c in claimers] == ["ready\n"] * 6
            go.with_suffix(".2").touch()
            claimed = [c.stdout.readline().strip() for c in claimers]
        finally:  # each ends: a failed one's fellows are not left waiting for the go file
            go.with_suffix(".2").touch()
            for c in claimers:
                try:
                    c.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    c.kill()
                    c.communicate()
        assert [c.returncode for c in claimers] == [0] * 6
        assert sorted(claimed) == ["0", "1", "None", "None", "None", "None"]
        assert len(optuna.load_study(study_name="race", storage=open_storage(spec)).trials) == 2


def _workers(cwd: Path, n: int, *args: str) -> list[tuple[str, str]]:
    """`n` workers of the digits search started together; their (stdout, stderr)."""
    command = [str(VBENCH), "-m", *SMALL, "hparams_search=digits_optuna", "trainer.epochs=2",
               *args]
    workers = [subprocess.Popen(command, cwd=cwd, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(n)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0] * n, [err[-2000:] for _, err in outputs]
    return outputs


# Each is one line, exit 2, before any trial: no job directory, no study in the storage.
BAD = {
    "unknown pruner": ("hydra.sweeper.pruner=sometimes", "hydra.sweeper.pruner='sometimes'"),
    "pruner parameter": ("hydra.sweeper.pruner={name:median,n_startup:2}",
                         "median has no parameter n_startup"),
    "pruner value": ("hydra.sweeper.pruner={name:percentile,percentile:150}",
                     "hydra.sweeper.pruner={name:percentile,percentile:150} is not valid"),
    "unknown sampler": ("hydra/sweeper/sampler=bayes", "hydra/sweeper/sampler=bayes is not an"),
    "sampler value": ("hydra.sweeper.sampler.n_startup_trials=0",
                      "hydra.sweeper.sampler.n_startup_trials=0 is not valid"),
    "unknown key": ("model.widht=choice(32,64)", "model.widht is not a key"),
    "value out of range": ("model.depth=choice(0,1)", "model.depth=0 is not valid"),
    "bound out of range": ("optimizer.lr=interval(-1.0,0.1)", "optimizer.lr=-1.0 is not valid"),
    "log from zero": ("optimizer.lr=tag(log,interval(0.0,0.1))", "`low > 0` must hold"),
    "empty range": ("model.depth=range(5,3)", "it lists no value"),
    "journal folder": ("hydra.sweeper.storage=missing/optuna.journal", "cannot be opened"),
    "database URL": ("hydra.sweeper.storage=nosuchdb://host/x", "cannot be opened"),
    "database driver": ("hydra.sweeper.storage=postgresql+pg8000://u@host/db",
                        "its driver pg8000 is not installed; pip install pg8000"),
    "direction and monitor": ("trainer.monitor=val_loss", "set hydra.sweeper.direction=minimize"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_before_any_trial(tmp_path, case):
    override, words = BAD[case]
    done = vbench("hparams_search=digits_optuna", "hydra.sweeper.n_trials=1", override,
                  cwd=tmp_path, code=2)
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("vbench: error: ")
    assert words in done.stderr, done.stderr
    assert not (tmp_path / "sweep").exists() and not list(tmp_path.iterdir())


def test_a_study_searching_another_direction_or_space_is_refused(tmp_path):
    vbench("hparams_search=digits_optuna", "hydra.sweeper.n_trials=1", "trainer.epochs=1",
           cwd=tmp_path)
    before = (tmp_path / "sweep/optuna.journal").read_bytes()
    for override, words in (
            (("hydra.sweeper.direction=minimize", "trainer.monitor=val_loss"),
             "was started to maximize"),
            (("model.depth=choice(1,2)",), "the search space differs from the one of the study"),
    ):
        done = vbench("hparams_search=digits_optuna", "hydra.sweeper.n_trials=2", *override,
                      cwd=tmp_path, code=2)
        assert done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    assert (tmp_path / "sweep/optuna.journal").read_bytes() == before
    assert sorted(jobs(tmp_path)) == [0]


@pytest.mark.parametrize("launcher", [
    ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"),
    ("hydra/launcher=fill", "run.jobs_per_device=2"),
    ("hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1",
     "hydra.launcher.timeout_min=3"),
], ids=["joblib", "fill", "submitit_local"])
def test_trials_run_in_parallel_through_a_launcher_and_still_prune(tmp_path, launcher):
    module = "submitit" if "submitit" in launcher[0] else "joblib"
    if importlib.util.find_spec(f"hydra_plugins.hydra_{module}_launcher") is None:
        pytest.skip(f"hydra-{module}-launcher is not installed")
    vbench(*TWO_ARMS, "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2", *launcher,
           cwd=tmp_path)
    statuses = sorted(metrics(job)["status"] for job in jobs(tmp_path).values())
    assert statuses == ["completed", "pruned"]
    assert results(tmp_path)["states"] == {"pruned": 1, "complete": 1}


def test_with_hydra_optuna_sweeper_installed_too_one_line_says_vbenchs_runs(tmp_path):
    """The old plugin (Optuna < 3) registers hydra/sweeper/optuna as well; whatever the order
    of the plugins' folders, vbench's sweeper runs and says so in one line."""
    import vbench as package

    fake = tmp_path / "old"
    plugin = fake / "hydra_plugins/hydra_optuna_sweeper"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text("")
    (plugin / "config.py").write_text(
        "from hydra.core.config_store import ConfigStore\n"
        "ConfigStore.instance().store(group='hydra/sweeper', name='optuna', node={'_target_': "
        "'hydra_plugins.hydra_optuna_sweeper.OptunaSweeper', 'max_failure_rate': 0.0})\n")
    info = fake / "hydra_optuna_sweeper-1.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hydra-optuna-sweeper\n"
                                   "Version: 1.3.0\n")
    src = Path(package.__file__).parents[1]
    work = tmp_path / "work"
    work.mkdir()
    for path in ([src, fake], [fake, src]):
        done = vbench("hparams_search=digits_optuna", "hydra.sweeper.n_trials=1",
                      "trainer.epochs=1", f"hydra.sweep.dir=sweep{len(path)}{path[0].name}",
                      cwd=work, PYTHONPATH=os.pathsep.join(map(str, path)))
        lines = [line for line in done.stdout.splitlines() if "hydra-optuna-sweeper" in line]
        assert len(lines) == 1 and lines[0].startswith(
            "hydra/sweeper=optuna: vbench's Optuna sweeper (optuna ")
        assert "hydra-optuna-sweeper 1.3.0 is installed too and not used" in lines[0]
