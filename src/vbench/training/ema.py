"""The exponential moving average of the weights (trainer.ema): timm's ModelEmaV3, stepped
after every optimizer step as timm's train.py steps it (update n with step=n, so the first
update copies the weights and, with warmup, the decay grows as 1 - (1 + n - 1)^(-2/3) up to
trainer.ema). Parameters and buffers (BatchNorm statistics) are averaged alike.

The EMA copy is validated every epoch beside the raw weights (history.csv ema_val_loss,
ema_val_acc), saved in best.pt (`model_ema`) and last.pt (`ema`: its weights and its update
count, so a resumed run continues the same average), and evaluated on val and test for the best
and the final epoch (metrics.json `ema`).
"""

import torch
from torch import nn


class WeightsEma:
    """The EMA of `model` (the module the loop trains, unwrapped from DDP and torch.compile:
    parameters are shared, so it sees every step)."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True):
        from timm.utils import ModelEmaV3  # here: only runs with trainer.ema import timm

        self.source = model
        self.ema = ModelEmaV3(model, decay=decay, use_warmup=warmup)
        self.updates = 0  # a host counter: no sync in the loop

    @property
    def module(self) -> nn.Module:
        """The averaged copy of the model, in eval mode."""
        return self.ema.module

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        self.ema.update(self.source, step=self.updates)

    def state_dict(self) -> dict:
        return {"model": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["model"])
        self.updates = int(state["updates"])
