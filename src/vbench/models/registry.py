import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from ..core.errors import choices_error

_BUILDERS: dict[str, Callable] = {}
_SHARED_MODULES = {"registry", "layers", "zoo", "freeze", "sklearn"}  # no builders inside


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

    @classmethod
    def of(cls, data) -> "InputSpec":
        """The spec of a loaded dataset (data.Data)."""
        return cls(data.in_channels, data.image_size, data.num_classes, tuple(data.mean),
                   tuple(data.std))


def count_params(model) -> dict[str, int]:
    """{"total", "trainable"}: the one way vbench counts a model's parameters (metrics.json,
    the leaderboards). A model that is not all tensors (a scikit-learn baseline) counts itself
    with a `param_counts()` method."""
    if hasattr(model, "param_counts"):
        return model.param_counts()
    return {"total": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}


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
