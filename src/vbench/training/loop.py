"""The inner loop, batched prediction and early stopping. No callback framework."""

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core.device import autocast
from ..data.registry import Split
from ..models.freeze import keep_frozen_in_eval


@dataclass
class StepRecipe:
    """How one optimization step is taken, besides the model and the batch."""

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler  # a no-op unless training in float16
    per_step_scheduler: object | None  # stepped after every optimizer step (onecycle, ...)
    amp_dtype: torch.dtype | None
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    channels_last: bool = False
    augment: Callable | None = None  # augment(x, generator): on-device, training batches only
    accumulate: int = 1  # batches per optimizer step (gradient accumulation)
    shard: tuple[int, int] = (0, 1)  # (rank, world size): this process's share of each epoch
    mix: Callable | None = None  # mix(x, y, generator) -> (x, target probabilities): mix.py
    ema: object | None = None  # ema.WeightsEma, updated after every optimizer step


def optimizer_steps(split: Split, batch_size: int, accumulate: int = 1,
                    world: int = 1) -> int:
    """Optimizer steps per epoch: the batches one rank draws, grouped by `accumulate`; a
    trailing partial group steps too."""
    return -(-split.num_batches(batch_size, drop_single=True, world=world) // accumulate)


def train_one_epoch(model: nn.Module, split: Split, batch_size: int, recipe: StepRecipe,
                    generator: torch.Generator,
                    on_batch: Callable[[int], None] | None = None) -> tuple[float, float]:
    """One pass over `split` in a fresh random order; returns (mean loss, accuracy) over the
    images this process drew. `on_batch(images)` follows every batch (the progress bar). With
    mixup/cutmix (`recipe.mix`) the loss is against the mixed targets, and so is the accuracy:
    a prediction scores the share its class has in the image's target (lambda for the image's
    own class, 1 - lambda for its partner's).

    Each optimizer step sees a group of `recipe.accumulate` batches; every batch's mean loss is
    weighted by its share of the group's images, so the step's gradient is the mean over the
    group: K batches of B give the step one batch of K*B gives."""
    loss_sum, correct, drawn = epoch_sums(model, split, batch_size, recipe, generator, on_batch)
    return loss_sum.item() / drawn, correct.item() / drawn  # the epoch's one wait for the device


def epoch_sums(model: nn.Module, split: Split, batch_size: int, recipe: StepRecipe,
               generator: torch.Generator, on_batch: Callable[[int], None] | None = None):
    """The loop of `train_one_epoch`: the sums of the loss and of the correct predictions as
    device tensors, and the images drawn. It never waits for the device: a test runs it under
    torch.cuda.set_sync_debug_mode("error")."""
    model.train()
    keep_frozen_in_eval(model)
    device = split.x.device
    drawn = split.drawn(batch_size, drop_single=True, world=recipe.shard[1])
    group_images = batch_size * recipe.accumulate
    # Sums stay on the device: one sync per epoch instead of one per batch.
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device,
                          dtype=torch.long if recipe.mix is None else torch.float32)
    batches = split.batches(batch_size, generator, recipe.augment, drop_single=True,
                            shard=recipe.shard)
    for i, (x, y) in enumerate(batches):
        first, seen = i % recipe.accumulate == 0, i * batch_size + len(y)
        last = seen % group_images == 0 or seen == drawn
        target = y
        if recipe.mix is not None:
            x, target = recipe.mix(x, y, generator)
        if recipe.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if first:
            recipe.optimizer.zero_grad(set_to_none=True)
        group = min(group_images, drawn - (i // recipe.accumulate) * group_images)
        # DDP averages gradients in the backward of a group's last batch only.
        with _syncing(model, last):
            with autocast(device, recipe.amp_dtype):
                logits = model(x)
                loss = F.cross_entropy(logits, target, label_smoothing=recipe.label_smoothing)
            recipe.scaler.scale(loss * (len(y) / group)).backward()
        if last:
            _step(model, recipe)
        loss_sum += loss.detach().float() * len(y)
        if recipe.mix is None:
            correct += (logits.argmax(1) == y).sum()
        else:
            correct += target.gather(1, logits.argmax(1, keepdim=True)).sum()
        if on_batch is not None:
            on_batch(len(y))
    return loss_sum, correct, drawn


def _syncing(model: nn.Module, sync: bool):
    """DistributedDataParallel's no_sync() on accumulating batches; otherwise nothing."""
    if sync or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()


def _step(model: nn.Module, recipe: StepRecipe) -> None:
    if recipe.grad_clip is not None:
        recipe.scaler.unscale_(recipe.optimizer)  # clip the true gradients, not scaled ones
        nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
    recipe.scaler.step(recipe.optimizer)
    recipe.scaler.update()
    if recipe.per_step_scheduler is not None:
        recipe.per_step_scheduler.step()
    if recipe.ema is not None:
        recipe.ema.update()


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
