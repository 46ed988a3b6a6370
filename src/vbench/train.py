"""The inner loop, batched prediction and early stopping. No callback framework."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .data.batches import batches
from .data.registry import Split
from .device import autocast
from .freeze import keep_frozen_in_eval


def train_one_epoch(model: nn.Module, split: Split, batch_size: int, optimizer, scaler,
                    step_scheduler, generator: torch.Generator, amp_dtype,
                    augment=None) -> tuple[float, float]:
    """One pass over `split` in a fresh random order; returns (mean loss, accuracy).

    `augment(x, generator)`, when given, transforms each training batch on its device."""
    model.train()
    keep_frozen_in_eval(model)
    device = split.x.device
    # Sums stay on the device: one sync per epoch instead of one per batch.
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for x, y in batches(split, batch_size, generator):
        if augment is not None:
            x = augment(x, generator)
        with autocast(device, amp_dtype):
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if step_scheduler is not None:
            step_scheduler.step()
        loss_sum += loss.detach().float() * len(y)
        correct += (logits.argmax(1) == y).sum()
    return loss_sum.item() / len(split), correct.item() / len(split)


@torch.no_grad()
def predict(model: nn.Module, split: Split, batch_size: int, amp_dtype) -> torch.Tensor:
    """Float32 logits for every image of `split`, in order."""
    model.eval()
    out = []
    for x, _ in batches(split, batch_size):
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
