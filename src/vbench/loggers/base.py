"""What every backend gets (RunInfo) and implements (Backend)."""

import dataclasses
import math
from pathlib import Path

from ..core.columns import SPLIT_METRICS
from ..core.flat import flatten

# metrics.json numbers logged at the end: best/final x val/test x SPLIT_METRICS, plus these.
TOTALS = ("train_time_s", "inference_ms_per_image", "epochs_run", "best_epoch")


@dataclasses.dataclass
class RunInfo:
    run_dir: Path
    name: str                # the job's name: its run dir's name
    hparams: dict            # the resolved config, flattened: {"optimizer.lr": 0.001, ...}
    default_experiment: str  # the experiment preset's name, else the dataset's
    sweep_dir: Path | None   # the sweep directory when this run is a job of a multirun
    job_num: int | None

    @classmethod
    def of(cls, config: dict, run_dir: Path) -> "RunInfo":
        """`config`: the run's whole config as plain values (its hyperparameters)."""
        sweep_dir, job_num, choices = None, None, {}
        try:
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            hydra_cfg = HydraConfig.get()
            choices = hydra_cfg.runtime.choices
            if hydra_cfg.mode == RunMode.MULTIRUN:
                sweep_dir, job_num = Path(hydra_cfg.sweep.dir).resolve(), hydra_cfg.job.num
        except ValueError:
            pass  # not started by the vbench command (tests, notebooks): a single run
        hparams = flatten({k: v for k, v in config.items() if k != "logger"})
        return cls(run_dir.resolve(), run_dir.resolve().name, hparams,
                   choices.get("experiment") or str(config["dataset"]["name"]), sweep_dir,
                   job_num)


class Backend:
    """One tracker's run. The constructor starts it; any method may raise: the fan-out in
    __init__.py turns that into a warning and drops the backend."""

    name = "?"

    def log_epoch(self, row: dict) -> None:
        """One history.csv row: epoch, train_loss, train_acc, val_loss, val_acc, lr, epoch_s."""

    def finish(self, metrics: dict, run_dir: Path) -> None:
        """The run is complete: log final_metrics(metrics) and plots(run_dir), then close."""

    def close(self, status: str) -> None:
        """End the run early with status failed or interrupted."""


def final_metrics(metrics: dict) -> dict:
    """The metrics.json numbers worth a chart: best_val_accuracy, final_test_loss, ...
    (a split that was not evaluated, e.g. no test split, is left out)."""
    out = {}
    for when in ("best", "final"):
        for split in ("val", "test"):
            values = (metrics.get(when) or {}).get(split) or {}
            out.update({f"{when}_{split}_{m}": float(values[m]) for m in SPLIT_METRICS
                        if isinstance(values.get(m), (int, float))})
    out.update({key: float(metrics[key]) for key in TOTALS
                if isinstance(metrics.get(key), (int, float))})
    return {k: v for k, v in out.items() if math.isfinite(v)}


def plots(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "plots").glob("*.png"))


def warn(backend: str, what: str, error: Exception) -> None:
    from ..core.console import err_console

    detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
    err_console.print(f"vbench: warning: logger {backend} {what}: {type(error).__name__}: "
                      f"{detail[:300]}; the run directory has every result",
                      markup=False, highlight=False, soft_wrap=True)
