"""Optimizers and learning-rate schedules, straight from torch by name."""

import inspect

import torch

from ..core import schema
from ..core.errors import VBenchError, choices_error

# schema.OPTIMIZERS, the one list of names: each is a torch.optim class, lower-cased (a name
# torch lacks fails here, at import).
_TORCH = {name.lower(): cls for name, cls in vars(torch.optim).items() if isinstance(cls, type)}
OPTIMIZERS = {name: _TORCH[name] for name in schema.OPTIMIZERS}

_VBENCH_KEYS = {"name", "no_decay_bias_norm"}  # optimizer keys that are not torch arguments


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    if cfg.name not in OPTIMIZERS:
        raise choices_error("optimizer.name", cfg.name, OPTIMIZERS)
    cls = OPTIMIZERS[cfg.name]
    kwargs = {k: v for k, v in schema.values(cfg).items() if k not in _VBENCH_KEYS}
    groups = _param_groups(model, cfg)
    kwargs |= _fused(cls, groups)
    try:
        return cls(groups, **kwargs)
    except (TypeError, ValueError) as e:  # an unknown key or a value torch refuses
        raise VBenchError(f"optimizer={cfg.name} ({cls.__module__}.{cls.__name__}): {e}") from e


def _fused(cls, groups: list[dict]) -> dict:
    """fused=True on CUDA where torch has a fused kernel for `cls` (Adam, AdamW, SGD, ...): one
    kernel for all parameters instead of a few per tensor, which for seed-size models is much
    of a step's host time (the H200 measured 0.906 s per epoch against 1.021 for the CNN). On
    CPU torch's default (foreach) stays, so CPU numbers do not move."""
    params = [p for group in groups for p in group["params"]]
    supported = "fused" in inspect.signature(cls.__init__).parameters
    if params and supported and all(p.is_cuda for p in params):
        return {"fused": True}
    return {}


def _param_groups(model: torch.nn.Module, cfg) -> list[dict]:
    """The trainable parameters; with no_decay_bias_norm, biases and normalization weights
    (every parameter with fewer than 2 dimensions, timm's rule) get no weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not cfg.no_decay_bias_norm:
        return [{"params": params}]
    return [{"params": [p for p in params if p.ndim >= 2]},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def build_scheduler(cfg, optimizer, epochs: int, steps_per_epoch: int):
    """Returns (scheduler or None, per_step). per_step schedulers step after every batch,
    the others after every epoch."""
    lr_scheduler = torch.optim.lr_scheduler
    kwargs = {k: v for k, v in schema.values(cfg).items() if k != "name"}
    total_steps = epochs * steps_per_epoch
    if cfg.name == "none":
        return None, False
    if cfg.name == "step":
        return lr_scheduler.StepLR(optimizer, **kwargs), False
    if cfg.name == "multistep":
        return lr_scheduler.MultiStepLR(optimizer, milestones=list(kwargs.pop("milestones")),
                                        **kwargs), False
    if cfg.name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, **kwargs), False
    if cfg.name == "onecycle":
        max_lr = kwargs.pop("max_lr", None) or optimizer.param_groups[0]["lr"]
        return lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps,
                                       **kwargs), True
    if cfg.name == "warmup_cosine":
        warmup = min(round(kwargs["warmup_epochs"] * steps_per_epoch), total_steps - 1)
        schedule = lr_scheduler.SequentialLR(optimizer, milestones=[warmup], schedulers=[
            lr_scheduler.LinearLR(optimizer, start_factor=kwargs["start_factor"],
                                  total_iters=max(warmup, 1)),
            lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps - warmup,
                                           eta_min=kwargs["eta_min"])])
        return schedule, True
    raise choices_error("scheduler.name", cfg.name, schema.SCHEDULERS)
