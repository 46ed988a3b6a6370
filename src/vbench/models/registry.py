import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from ..core.errors import choices_error

_BUILDERS: dict[str, Callable] = {}
_SHARED_MODULES = {"registry", "layers", "zoo"}


@dataclass(frozen=True)
class InputSpec:
    """What the dataset dictates to every model: models never hard-code 784 or 3x32x32."""

    in_channels: int
    image_size: int
    num_classes: int
    # The train split's per-channel statistics the batches are normalized with; backbones with
    # pretrained weights use them to re-normalize to their own statistics. None = not normalized.
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


def register_model(arch: str):
    def decorator(builder: Callable) -> Callable:
        if arch in _BUILDERS:
            raise ValueError(f"model {arch!r} is registered twice")
        _BUILDERS[arch] = builder
        return builder

    return decorator


def model_names() -> list[str]:
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _SHARED_MODULES:
            importlib.import_module(f"{__package__}.{module.name}")
    return sorted(_BUILDERS)


def build_model(cfg, spec: InputSpec):
    if cfg.arch not in model_names():
        raise choices_error("model.arch", cfg.arch, model_names())
    return _BUILDERS[cfg.arch](cfg, spec)
