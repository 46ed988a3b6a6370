"""The `vbench` command: a Hydra app. torch is imported only once a run starts, so
`vbench --help` and `vbench --cfg job` answer at once."""

import math
import os
import signal
import sys

import hydra
from omegaconf import DictConfig


def _interrupt(signum, frame):
    # SIGTERM (SLURM preemption, `kill`) stops the run the way Ctrl-C does: run() marks it
    # interrupted, and checkpoints/last.pt of the last finished epoch lets it resume.
    raise KeyboardInterrupt(signal.Signals(signum).name)


@hydra.main(version_base="1.3", config_path="pkg://vbench.conf", config_name="config")
def _app(cfg: DictConfig) -> float | None:
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
    previous = signal.signal(signal.SIGTERM, _interrupt)
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
        signal.signal(signal.SIGTERM, previous)
    best = metrics["best"]
    # The value a Hydra sweeper (e.g. optuna) optimizes: the best checkpoint's val accuracy.
    return best["val"]["accuracy"] if best else None


def main() -> None:
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
