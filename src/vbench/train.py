"""The inner loop, batched prediction and early stopping. No callback framework."""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .console import track
from .data.batches import batches, num_batches
from .data.registry import Split
from .device import autocast
from .freeze import keep_frozen_in_eval


@dataclass
class StepRecipe:
    """How one optimization step is taken, besides the model and the batch."""

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler  # a no-op unless training in float16
    per_step_scheduler: object | None  # stepped after every batch (onecycle, warmup_cosine)
    amp_dtype: torch.dtype | None
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    channels_last: bool = False
    augment: Callable | None = None  # augment(x, generator): on-device, training batches only


def train_one_epoch(model: nn.Module, split: Split, batch_size: int, recipe: StepRecipe,
                    generator: torch.Generator,
                    on_batch: Callable[[int], None] | None = None) -> tuple[float, float]:
    """One pass over `split` in a fresh random order; returns (mean loss, accuracy).
    `on_batch(images)` follows every step (the progress bar)."""
    model.train()
    keep_frozen_in_eval(model)
    device = split.x.device
    # Sums stay on the device: one sync per epoch instead of one per batch.
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for x, y in batches(split, batch_size, generator):
        if recipe.augment is not None:
            x = recipe.augment(x, generator)
        if recipe.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, recipe.amp_dtype):
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
        recipe.optimizer.zero_grad(set_to_none=True)
        recipe.scaler.scale(loss).backward()
        if recipe.grad_clip is not None:
            recipe.scaler.unscale_(recipe.optimizer)  # clip the true gradients, not scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        recipe.scaler.step(recipe.optimizer)
        recipe.scaler.update()
        if recipe.per_step_scheduler is not None:
            recipe.per_step_scheduler.step()
        loss_sum += loss.detach().float() * len(y)
        correct += (logits.argmax(1) == y).sum()
        if on_batch is not None:
            on_batch(len(y))
    return loss_sum.item() / len(split), correct.item() / len(split)


@torch.no_grad()
def predict(model: nn.Module, split: Split, batch_size: int, amp_dtype) -> torch.Tensor:
    """Float32 logits for every image of `split`, in order."""
    model.eval()
    out = []
    for x, _ in track(batches(split, batch_size), num_batches(split, batch_size), "predicting"):
        with autocast(x.device, amp_dtype):
            out.append(model(x).float())
    return torch.cat(out)


@dataclass
class EarlyStopping:
    """Tracks the monitored val metric: which epoch is best, and when to stop."""

    mode: str  # "min" or "max"
    patience: int | None  # None: never stop early
    min_delta: float = 0.0
    best: float = math.nan
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record an epoch's value; True when it is the new best."""
        if not math.isfinite(value):
            improved = False
        elif math.isnan(self.best):
            improved = True
        elif self.mode == "min":
            improved = value < self.best - self.min_delta
        else:
            improved = value > self.best + self.min_delta
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience
