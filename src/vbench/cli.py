"""The `vbench` command: a Hydra app. torch is imported only once a run starts, so
`vbench --help` and `vbench --cfg job` answer at once."""

import os
import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="pkg://vbench.conf", config_name="config")
def _app(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .console import err_console
    from .errors import VBenchError
    from .run import run

    hydra_cfg = HydraConfig.get()
    # In a sweep a failing job returns None instead of raising: Hydra's sweeper would abort
    # the whole sweep at the first failed job and skip the summary callback. run() has already
    # written metrics.json with status "failed"; main() exits non-zero after the summary.
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        metrics = run(cfg, hydra_cfg.runtime.output_dir)
    except VBenchError as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        err_console.print(f"vbench: error: {e}", markup=False, highlight=False, soft_wrap=True)
        if multirun:
            return None
        sys.exit(2)
    except Exception:
        if not multirun or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        err_console.print_exception()
        return None
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
