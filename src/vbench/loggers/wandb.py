"""Weights & Biases: one run per job, grouped by sweep directory. WANDB_MODE=offline (or
logger.wandb.mode=offline) writes it under <run dir>/wandb/ for a later `wandb sync`."""

from pathlib import Path

from ..core.status import FAILED, INTERRUPTED
from .base import Backend, RunInfo, final_metrics, plots

EXIT_CODES = {FAILED: 1, INTERRUPTED: 130}


class WandbBackend(Backend):
    name = "wandb"

    def __init__(self, options, info: RunInfo):
        import wandb

        self.wandb = wandb
        self.run = wandb.init(
            project=options.project, entity=options.entity,
            mode=options.mode, dir=str(info.run_dir), name=info.name,
            group=info.sweep_dir.name if info.sweep_dir else None, config=info.hparams,
            reinit="create_new")  # jobs of the basic launcher share one process

    def log_epoch(self, row: dict) -> None:
        self.run.log({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))

    def finish(self, metrics: dict, run_dir: Path) -> None:
        self.run.summary.update(final_metrics(metrics))
        images = {f"plots/{p.stem}": self.wandb.Image(str(p)) for p in plots(run_dir)}
        if images:
            self.run.log(images)
        self.run.finish()

    def close(self, status: str) -> None:
        self.run.finish(exit_code=EXIT_CODES.get(status, 1))
