"""The `vbench` command: a Hydra app. torch is imported only once a run starts, so
`vbench --help` and `vbench --cfg job` answer at once."""

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
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        metrics = run(cfg, run_dir)
    except VBenchError as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        err_console.print(f"vbench: error: {e}", markup=False, highlight=False, soft_wrap=True)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            raise  # the launcher records this job as failed
        sys.exit(2)
    except KeyboardInterrupt as e:
        err_console.print(f"vbench: interrupted ({e or 'SIGINT'}); continue with: vbench ... "
                          f"hydra.run.dir={run_dir} trainer.resume=true (sweeps: run the same "
                          "command with the same hydra.sweep.dir)",
                          markup=False, highlight=False, soft_wrap=True)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    best = metrics["best"]
    # The value a Hydra sweeper (e.g. optuna) optimizes: the best checkpoint's val accuracy.
    return best["val"]["accuracy"] if best else None


def main() -> None:
    _app()


if __name__ == "__main__":
    main()
