"""hydra/launcher=fill: a sweep that fills the machine. `run.jobs_per_device` (K) jobs run at
once on each visible GPU, job i on GPU i mod N; without a GPU, K jobs share the CPU cores
(each gets cores // K torch threads, commands/cli.py). The engine is Hydra's joblib launcher,
not a scheduler of ours: its worker processes serve the whole sweep, so each pays vbench's
start-up (imports, the CUDA context) once rather than once per job. The H200 measured why:
six processes on one GPU took 18.8 s against 16.2 s for one alone.
"""

import os
from pathlib import Path

from omegaconf import OmegaConf


def visible_gpus() -> int:
    """The NVIDIA GPUs this process may use, counted without importing torch: the launcher's
    config is resolved before any job starts."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return len([d for d in listed.split(",") if d.strip() not in ("", "-1")])
    gpus = Path("/proc/driver/nvidia/gpus")
    return len(list(gpus.iterdir())) if gpus.is_dir() else 0


# What one worker process holds at least: Python, torch and vbench imported, before any data
# (measured 0.45 GB RSS on CPU; a CUDA context adds to it on a GPU).
WORKER_GB = 0.5
# The jobs of the sweep being launched, counted by commands/preflight.py before Hydra starts
# it (None: not known, e.g. a sweeper that picks its own trials).
sweep_jobs: int | None = None


def parallel_jobs(per_device) -> int:
    """joblib's n_jobs for K jobs per GPU (K on a machine without one), never more than the
    sweep has jobs: a worker without a job would only pay vbench's start-up."""
    workers = int(per_device) * max(1, visible_gpus())
    return min(workers, sweep_jobs) if sweep_jobs else workers


def check_fits(per_device) -> None:
    """run.jobs_per_device=K asks for K worker processes per device: refused, in one line,
    when that many could not even hold torch in this machine's memory."""
    from ..core.errors import VBenchError

    devices = max(1, visible_gpus())
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    most = max(1, int(memory_gb / WORKER_GB) // devices)
    if int(per_device) > most:
        raise VBenchError(f"run.jobs_per_device={per_device} asks for {int(per_device) * devices} "
                          f"worker processes of at least {WORKER_GB} GB each, more than this "
                          f"machine's {memory_gb:.0f} GB of memory holds; use at most "
                          f"run.jobs_per_device={most}")


def pin_job(job_num: int) -> None:
    """Job i of the sweep on GPU i mod N: trainer.device=auto (or cuda) then lands there, and
    the config, which the numbers belong to, does not change."""
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        torch.cuda.set_device(job_num % torch.cuda.device_count())


OmegaConf.register_new_resolver("vbench_parallel_jobs", parallel_jobs, replace=True)
