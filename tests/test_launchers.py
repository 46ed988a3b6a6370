"""Sweeps through Hydra's launcher and sweeper plugins, run as a user would: the installed
`vbench -m` in a subprocess. Each test is skipped when its plugin is not installed."""

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

from helpers import vbench


def needs(module: str):
    return pytest.mark.skipif(importlib.util.find_spec(module) is None,
                              reason=f"{module} is not installed")


def sweep(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    result = vbench("-m", "debug=smoke", "hydra.sweep.dir=sweep", *args, cwd=cwd, env=env,
                    timeout=180)
    assert result.returncode == 0, result.stderr
    return result


def job_metrics(sweep_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/metrics.json"))]


@needs("hydra_plugins.hydra_joblib_launcher")
def test_joblib_sweep_runs_jobs_in_parallel_with_a_share_of_the_cores(tmp_path):
    from joblib import cpu_count

    # One thread per core in each worker would oversubscribe the machine. joblib lowers the
    # thread variables only where the environment leaves them unset; vbench lowers torch's
    # threads in any case.
    cores = str(cpu_count())
    sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "trainer.seed=0,1",
          cwd=tmp_path, OMP_NUM_THREADS=cores, MKL_NUM_THREADS=cores)
    jobs = job_metrics(tmp_path / "sweep")
    assert [(m["status"], m["seed"]) for m in jobs] == [("completed", 0), ("completed", 1)]
    assert {m["threads"] for m in jobs} == {max(1, cpu_count() // 2)}
    # The summary callback runs in the main process once every worker has finished.
    summary = (tmp_path / "sweep/summary.csv").read_text().splitlines()
    assert len(summary) == 3 and all(",completed," in row for row in summary[1:])


@needs("hydra_plugins.hydra_submitit_launcher")
def test_submitit_local_sweep_gives_each_job_its_cpus(tmp_path):
    sweep("hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1",
          "hydra.launcher.timeout_min=3", "trainer.seed=0,1", cwd=tmp_path)
    jobs = job_metrics(tmp_path / "sweep")
    assert [(m["status"], m["seed"], m["threads"]) for m in jobs] == [("completed", 0, 1),
                                                                       ("completed", 1, 1)]
    assert (tmp_path / "sweep/summary.csv").exists()


@needs("optuna")  # hydra/sweeper=optuna is vbench's own (src/hydra_plugins/vbench_optuna)
def test_optuna_search_preset_maximizes_the_val_accuracy(tmp_path):
    sweep("hparams_search=digits_optuna", "hydra.sweeper.n_trials=2", cwd=tmp_path)
    jobs = job_metrics(tmp_path / "sweep")
    assert len(jobs) == 2 and all(m["status"] == "completed" for m in jobs)
    assert all(m["monitor"] == "val_acc" for m in jobs)
    from omegaconf import OmegaConf

    result = OmegaConf.load(tmp_path / "sweep/optimization_results.yaml")
    assert result.best_value == max(m["best"]["val"]["accuracy"] for m in jobs)
    assert set(result.best_params) == {"optimizer.lr", "model.width", "model.depth",
                                       "model.dropout"}


@needs("hydra_plugins.hydra_submitit_launcher")
@pytest.mark.parametrize("launcher", ["submitit_slurm", "slurm_ddp"])
def test_a_slurm_launcher_without_slurm_is_one_line_and_writes_nothing(tmp_path, launcher):
    """No sbatch on PATH: refused before Hydra writes the sweep directory, pointing to the
    local launcher; printing the config (--cfg) still works there."""
    bare = tmp_path / "bin"  # a PATH without sbatch or srun
    bare.mkdir()
    env = {"PATH": str(bare)}
    work = tmp_path / "work"
    work.mkdir()
    done = vbench("-m", f"hydra/launcher={launcher}", "debug=smoke", "trainer.seed=0,1",
                  cwd=work, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("vbench: error: ")
    assert "sbatch" in done.stderr and "hydra/launcher=submitit_local" in done.stderr
    assert not list(work.iterdir())  # no outputs/, no sweep directory, no multirun.yaml

    shown = vbench(f"hydra/launcher={launcher}", "--cfg", "hydra", "-p", "hydra.launcher",
                   cwd=work, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "SlurmLauncher" in shown.stdout
    both = vbench("-m", "--cfg", "job", cwd=work, env=env, timeout=120)
    assert both.returncode == 2 and both.stderr.count("\n") == 1, both.stderr
    assert "leave out -m" in both.stderr


@needs("hydra_plugins.hydra_joblib_launcher")
def test_fill_runs_k_jobs_per_device_with_a_serial_sweeps_numbers(tmp_path):
    """hydra/launcher=fill run.jobs_per_device=K: K jobs at once per device (here the CPU,
    whose cores they share); the numbers are a serial sweep's at the same torch thread count,
    as the README states it: `OMP_NUM_THREADS=<threads> vbench -m ...`."""
    from joblib import cpu_count

    threads = max(1, cpu_count() // 2)
    grid = ("eval.plots=[]", "model.depth=1,2")
    (tmp_path / "par").mkdir()
    sweep(*grid, "hydra/launcher=fill", "run.jobs_per_device=2", cwd=tmp_path / "par")
    sweep(*grid, cwd=tmp_path, OMP_NUM_THREADS=str(threads))
    parallel, serial = job_metrics(tmp_path / "par/sweep"), job_metrics(tmp_path / "sweep")
    assert len(parallel) == len(serial) == 2
    for p, s in zip(parallel, serial, strict=True):
        assert p["threads"] == s["threads"] == threads and p["config"] == s["config"]
        for which in ("best", "final"):
            for split in ("val", "test"):
                for name, value in s[which][split].items():
                    assert p[which][split][name] == pytest.approx(value, rel=1e-4, abs=1e-6)


def test_fill_counts_the_visible_gpus_and_pins_job_i_to_gpu_i_mod_n(monkeypatch):
    import torch

    from vbench.commands import parallel

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,3")
    assert parallel.visible_gpus() == 3 and parallel.parallel_jobs(5) == 15
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert parallel.visible_gpus() == 0 and parallel.parallel_jobs(5) == 5
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    for job in range(7):
        parallel.pin_job(job)
    assert chosen == [0, 1, 2, 0, 1, 2, 0]


@pytest.mark.slow
@needs("hydra_plugins.hydra_joblib_launcher")
def test_the_readme_fill_example_runs_as_written(tmp_path):
    """`vbench -m experiment=fmnist_depth hydra/launcher=fill run.jobs_per_device=5`, with a
    small Fashion-MNIST in ./data (the dataset's default root)."""
    from helpers.formats import write_mnist

    write_mnist(tmp_path / "data", folder="FashionMNIST", train=200, test=50)
    done = vbench("-m", "experiment=fmnist_depth", "hydra/launcher=fill", "run.jobs_per_device=5",
                  cwd=tmp_path, env={"VBENCH_DATA": None}, timeout=600)
    assert done.returncode == 0, done.stderr
    (sweep,) = (tmp_path / "outputs/sweeps").iterdir()
    jobs = job_metrics(sweep)
    assert sorted(m["config"]["model"]["depth"] for m in jobs) == [1, 2, 3, 5, 8]
    assert all(m["status"] == "completed" for m in jobs)
