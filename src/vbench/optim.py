"""Optimizers and learning-rate schedules, straight from torch by name."""

import torch

from .errors import VBenchError, choices_error

OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
}
SCHEDULERS = ("none", "step", "cosine", "onecycle")


def build_optimizer(cfg, params) -> torch.optim.Optimizer:
    if cfg.name not in OPTIMIZERS:
        raise choices_error("optimizer.name", cfg.name, OPTIMIZERS)
    cls = OPTIMIZERS[cfg.name]
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    try:
        return cls(params, **kwargs)
    except (TypeError, ValueError) as e:  # an unknown key or a value torch refuses
        raise VBenchError(f"optimizer={cfg.name} ({cls.__module__}.{cls.__name__}): {e}") from e


def build_scheduler(cfg, optimizer, epochs: int, steps_per_epoch: int):
    """Returns (scheduler or None, per_step). per_step schedulers step after every batch."""
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    if cfg.name == "none":
        return None, False
    if cfg.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, **kwargs), False
    if cfg.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, **kwargs), False
    if cfg.name == "onecycle":
        max_lr = kwargs.pop("max_lr", None) or optimizer.param_groups[0]["lr"]
        total = epochs * steps_per_epoch
        sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total,
                                                    **kwargs)
        return sched, True
    raise choices_error("scheduler.name", cfg.name, SCHEDULERS)
