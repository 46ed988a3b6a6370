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
    try:
        metrics = run(cfg, hydra_cfg.runtime.output_dir)
    except VBenchError as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        err_console.print(f"vbench: error: {e}", markup=False, highlight=False, soft_wrap=True)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            raise  # the launcher records this job as failed
        sys.exit(2)
    best = metrics["best"]
    # The value a Hydra sweeper (e.g. optuna) optimizes: the best checkpoint's val accuracy.
    return best["val"]["accuracy"] if best else None


def main() -> None:
    _app()


if __name__ == "__main__":
    main()
