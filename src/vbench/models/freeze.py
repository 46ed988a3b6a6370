"""Freeze policies: which parameters the optimizer may change.

Every model, ours or torchvision's or timm's, is split the same way, from its module tree:
  head: the last top-level module holding parameters (resnet `fc`, vgg/efficientnet
        `classifier`, vit `head`, our cnn's `classifier`, resmlp's `head`, mlp's last Linear);
  stem: the first layer holding parameters, found by descending into nn.Sequential
        containers, plus the normalization layers right after it (resnet conv1 + bn1,
        cnn features.0 + features.1, vit patch_embed, mobilenet features.0.0 + features.0.1).
"""

from torch import nn

from ..core.errors import VBenchError, choices_error
from ..core.schema import FREEZE_POLICIES as POLICIES

_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def apply_freeze(model: nn.Module, cfg) -> None:
    if cfg.policy == "none":
        return
    if cfg.policy == "stem":
        _freeze_prefixes(model, stem_names(model))
        return
    if cfg.policy == "layers":
        _freeze_prefixes(model, list(cfg.modules))
        return
    if cfg.policy == "backbone":  # a linear probe: only the head learns
        model.requires_grad_(False)
        model.get_submodule(head_name(model)).requires_grad_(True)
        return
    raise choices_error("freeze.policy", cfg.policy, POLICIES)


def _has_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def head_name(model: nn.Module) -> str:
    """The classifier head: the last top-level module with parameters."""
    return [name for name, child in model.named_children() if _has_params(child)][-1]


def stem_names(model: nn.Module) -> list[str]:
    """The first parametrized layer (inside nn.Sequential stacks) and the norms right after it."""
    container, prefix = model, ""
    while True:
        children = list(container.named_children())
        first = next(i for i, (_, child) in enumerate(children) if _has_params(child))
        name, child = children[first]
        if not isinstance(child, nn.Sequential):
            break
        container, prefix = child, f"{prefix}{name}."
    names = [prefix + name]
    for next_name, sibling in children[first + 1:]:
        if isinstance(sibling, _NORMS):
            names.append(prefix + next_name)
        elif _has_params(sibling):
            break
    return names


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
