"""Freeze policies: which parameters the optimizer may change."""

from torch import nn

from .errors import VBenchError, choices_error

POLICIES = ("none", "layers")


def apply_freeze(model: nn.Module, cfg) -> None:
    if cfg.policy == "none":
        return
    if cfg.policy == "layers":
        _freeze_prefixes(model, list(cfg.modules))
        return
    raise choices_error("freeze.policy", cfg.policy, POLICIES)


def _freeze_prefixes(model: nn.Module, prefixes: list[str]) -> None:
    """Freeze every module whose qualified name is, or starts with, one of `prefixes`
    (seed 004 freezes ResNet blocks by name this way)."""
    if not prefixes:
        raise VBenchError("freeze=layers needs freeze.modules, e.g. 'freeze.modules=[features]'")
    names = [name for name, _ in model.named_modules() if name]
    for prefix in prefixes:
        hits = [n for n in names if n == prefix or n.startswith(prefix + ".")]
        if not hits:
            top = [name for name, _ in model.named_children()]
            raise VBenchError(f"freeze.modules: {prefix!r} names no module of this model; "
                              f"its top-level modules are: {', '.join(top)}")
        model.get_submodule(prefix).requires_grad_(False)


def keep_frozen_in_eval(model: nn.Module) -> None:
    """model.train() flips every module back to training mode; frozen ones must stay in eval
    so that BatchNorm statistics of a frozen block do not drift."""
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if params and not any(p.requires_grad for p in params):
            module.eval()
