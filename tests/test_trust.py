"""Trust round four (issue 26): fill sweeps that end cleanly, nothing written outside a sweep,
and a compile setting that does not apply said so. Each test is a hostile case a user met."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import VBENCH, make_cfg, start_paused, still_running

SMOKE = ["debug=smoke", "eval.plots=[]"]


def _env(**extra) -> dict:
    return {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | extra


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_a_fill_sweep_ends_every_worker_and_marks_each_job(tmp_path, signum):
    """kill -TERM (or Ctrl-C) to a fill sweep's main process: every worker ends, every
    unfinished job records `interrupted`, one continue line, exit 130, no traceback."""
    with start_paused([VBENCH, "-m", *SMOKE, "trainer.epochs=50", "hydra/launcher=fill",
                       "run.jobs_per_device=2", "trainer.seed=0,1", "hydra.sweep.dir=sweep"],
                      "epoch:1", tmp_path, count=2) as sweep:  # both workers wait
        workers = sweep.children()
        assert len(workers) >= 2
        sweep.proc.send_signal(signum)
        # well before interrupt.WAIT_FOR_WORKERS_S; the end of stderr: no process it started
        # holds it, so no orphan goes on training
        code, rest = sweep.finish(timeout=60)
    assert code == 130, rest
    assert "Traceback" not in rest, rest
    lines = [line for line in rest.splitlines() if "continue with:" in line]
    assert len(lines) == 1 and "hydra.sweep.dir=sweep" in lines[0], rest
    assert not still_running(workers)  # no orphan goes on training
    jobs = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    assert len(jobs) == 2
    assert {json.loads(p.read_text())["status"] for p in jobs} == {"interrupted"}
    rows = [(p.parent / "history.csv").read_text().count("\n") for p in jobs]
    time.sleep(1.0)
    assert [(p.parent / "history.csv").read_text().count("\n") for p in jobs] == rows


def test_the_lines_of_parallel_workers_arrive_whole():
    """A sweep's workers share one stderr. Two processes writing 5,000 lines each into one pipe
    at once: every line arrives whole (print() wrote text and newline apart, and a worker's
    `paused` line merged with another's; the signal test above then waited for ever)."""
    line = "vbench: paused at epoch:1 (VBENCH_PAUSE_AT)"
    script = f"from vbench.core.stderr import say\nfor _ in range(5000): say({line!r})"
    read, write = os.pipe()
    writers = [subprocess.Popen([sys.executable, "-c", script], stderr=write) for _ in range(2)]
    os.close(write)
    with os.fdopen(read) as pipe:
        lines = pipe.read().splitlines()
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    assert len(lines) == 10_000 and set(lines) == {line}


def test_fill_never_starts_more_workers_than_jobs():
    from vbench.commands import hydra_private, parallel
    from vbench.commands.preflight import check_command_line

    args = hydra_private.get_args_parser().parse_args(
        ["-m", "hydra/launcher=fill", "run.jobs_per_device=8", "trainer.seed=0,1",
         "model.depth=1,2,3"])
    try:
        base = check_command_line(args)
        assert parallel.sweep_jobs == 6
        assert parallel.parallel_jobs(base.run.jobs_per_device) == min(6, 8 * max(
            1, parallel.visible_gpus()))
        parallel.sweep_jobs = 1
        assert parallel.parallel_jobs(1000) == 1
    finally:
        parallel.sweep_jobs = None


def test_a_jobs_per_device_too_large_for_the_machine_is_one_line(tmp_path):
    done = subprocess.run([str(VBENCH), "-m", *SMOKE, "hydra/launcher=fill",
                           "run.jobs_per_device=1000000", "trainer.seed=0,1"], cwd=tmp_path,
                          env=_env(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("vbench: error: run.jobs_per_device=1000000 ")
    assert "use at most run.jobs_per_device=" in done.stderr
    assert not list(tmp_path.iterdir())  # no sweep directory, no multirun.yaml


def test_a_sweep_job_name_cannot_leave_the_sweep_directory(tmp_path):
    """run.name=../../../../x in a sweep: the job's directory stays inside hydra.sweep.dir and
    the summary lists it."""
    work = tmp_path / "a/b/c/d"
    work.mkdir(parents=True)
    done = subprocess.run([str(VBENCH), "-m", *SMOKE, "run.name=../../../../x",
                           "trainer.seed=0", "hydra.sweep.dir=sweep"], cwd=work, env=_env(),
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # nothing beside the work dir
    (job,) = [p for p in (work / "sweep").iterdir() if p.is_dir()]
    assert (job / "metrics.json").is_file() and "/" not in job.name
    summary = (work / "sweep/summary.csv").read_text()
    assert summary.count("\n") == 2 and ",completed," in summary


def test_compile_on_a_scikit_learn_baseline_says_it_does_not_apply(tmp_path, capsys):
    from vbench.training.run import run

    metrics = run(make_cfg(*SMOKE, "model=logreg", "model.max_iter=50",
                           "trainer.compile=true"), tmp_path / "run")
    assert metrics["status"] == "completed"
    assert metrics["compile"] == {"mode": "default", "eager_ms_per_step": None,
                                  "compiled_ms_per_step": None, "trained": None,
                                  "reason": "does not apply: a scikit-learn baseline has no "
                                            "torch training step"}
    assert "trainer.compile=default does not apply to logreg" in capsys.readouterr().out


@pytest.mark.skipif(sys.version_info < (3, 11), reason="PYTHONSAFEPATH is Python 3.11's")
def test_sweep_workers_import_nothing_from_the_current_folder(tmp_path):
    """joblib's workers start as `python -m ...`, which would import a pickle.py or socket.py
    lying in the folder the sweep was started from."""
    for name in ("pickle", "socket"):
        (tmp_path / f"{name}.py").write_text(
            f"open({str(tmp_path / 'imported')!r}, 'a').write('{name} ')\n")
    done = subprocess.run([str(VBENCH), "-m", *SMOKE, "hydra/launcher=joblib",
                           "hydra.launcher.n_jobs=2", "trainer.seed=0,1",
                           "hydra.sweep.dir=sweep"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "imported").exists()
    assert len(list((tmp_path / "sweep").glob("*/metrics.json"))) == 2
