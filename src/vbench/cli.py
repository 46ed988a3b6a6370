"""The `vbench` command: a Hydra app. torch is imported only once a run starts, so
`vbench --help` and `vbench --cfg job` answer at once."""

import math
import os
import signal
import sys
import threading

import hydra
from omegaconf import DictConfig


def _interrupt(signum, frame):
    # SIGTERM (SLURM preemption, `kill`) stops the run the way Ctrl-C does: run() marks it
    # interrupted, and checkpoints/last.pt of the last finished epoch lets it resume.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _threads_per_job(launcher) -> int | None:
    """Torch's intra-op threads for one job of a parallel launcher, so that jobs running side
    by side share the cores instead of each starting one thread per core; None: torch's own."""
    if (launcher.get("_target_") or "").endswith("JoblibLauncher"):
        from joblib import cpu_count  # joblib's own count: honours CPU affinity and cgroups

        cpus, n_jobs = cpu_count(), launcher.get("n_jobs") or 1
        workers = n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs)  # joblib: -1 = all cores
        return max(1, cpus // workers)
    return launcher.get("cpus_per_task")  # submitit: the CPUs each job was given


@hydra.main(version_base="1.3", config_path="pkg://vbench.conf", config_name="config")
def _app(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .console import err_console
    from .errors import VBenchError
    from .run import run

    hydra_cfg = HydraConfig.get()
    run_dir = hydra_cfg.runtime.output_dir
    # In a sweep a failing job returns NaN instead of raising: Hydra's sweeper would abort
    # the whole sweep at the first failed job and skip the summary callback. run() has already
    # written metrics.json with status "failed"; main() exits non-zero after the summary.
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    threads = _threads_per_job(hydra_cfg.launcher) if multirun else None
    if threads:
        import torch

        torch.set_num_threads(threads)
    # signal.signal works only in a process's main thread; a launcher running jobs in threads
    # keeps the default handlers.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        metrics = run(cfg, run_dir)
    except VBenchError as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        err_console.print(f"vbench: error: {e}", markup=False, highlight=False, soft_wrap=True)
        if multirun:
            return math.nan  # a failed trial to a sweeper (optuna records NaN as failed)
        sys.exit(2)
    except KeyboardInterrupt as e:
        err_console.print(f"vbench: interrupted ({e or 'SIGINT'}); continue with: vbench ... "
                          f"hydra.run.dir={run_dir} trainer.resume=true (sweeps: run the same "
                          "command with the same hydra.sweep.dir)",
                          markup=False, highlight=False, soft_wrap=True)
        sys.exit(130)
    except Exception:
        if not multirun or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        err_console.print_exception()
        return math.nan
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    best = metrics["best"]
    # The value a Hydra sweeper (e.g. optuna) optimizes: the best checkpoint's val accuracy.
    return best["val"]["accuracy"] if best else math.nan  # no best epoch: a failed trial


def main() -> None:
    from . import distributed

    if distributed.launched():  # torchrun: one run directory for all ranks (distributed.py)
        sys.argv = distributed.agree_on_run_dir(sys.argv)
    _app()
    from .report import SweepSummary

    if SweepSummary.failed_jobs:
        from .console import err_console

        err_console.print(f"vbench: {len(SweepSummary.failed_jobs)} job(s) of the sweep did not "
                          f"finish: {', '.join(SweepSummary.failed_jobs)}", highlight=False,
                          soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
