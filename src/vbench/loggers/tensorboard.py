"""TensorBoard: scalars per epoch, plots as images, and the HParams plugin's summary so runs
compare in the HParams tab (`tensorboard --logdir outputs`: every run and sweep under it)."""

from pathlib import Path

from .base import Backend, RunInfo, final_metrics, plots


class TensorBoardBackend(Backend):
    name = "tensorboard"

    def __init__(self, options, info: RunInfo):
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = info.run_dir / options.dir  # an absolute dir stays absolute
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v)
                        for k, v in info.hparams.items()}

    def log_epoch(self, row: dict) -> None:
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(key, value, global_step=int(row["epoch"]))
        self.writer.flush()

    def finish(self, metrics: dict, run_dir: Path) -> None:
        import numpy as np
        from PIL import Image

        for path in plots(run_dir):
            image = np.asarray(Image.open(path).convert("RGB"))
            self.writer.add_image(f"plots/{path.stem}", image, dataformats="HWC")
        # run_name=".": the HParams summary goes beside the scalars, not into a new subfolder.
        self.writer.add_hparams(self.hparams, {f"hparam/{k}": v
                                               for k, v in final_metrics(metrics).items()},
                                run_name=".")
        self.writer.close()

    def close(self, status: str) -> None:
        self.writer.close()
