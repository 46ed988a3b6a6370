"""The weights files a run will look for, found without building its model: what a sweep
checks of every job before its first (commands/preconditions.py)."""

from pathlib import Path

from ..core.errors import VBenchError


def check_weights(cfg) -> None:
    """The weights files a model section names are there (one-line VBenchError otherwise),
    found as building the model would find them, without building it: model.weights, or with
    model.pretrained the torchvision/timm file in the local cache; a scikit-learn baseline's
    backbone alike. What a sweep checks of every job before its first."""
    from .zoo_timm import hub_file as timm_file  # each imports torchvision/timm
    from .zoo_torchvision import hub_file as torchvision_file

    name, lookup = cfg.name, {"torchvision": torchvision_file, "timm": timm_file}.get(cfg.arch)
    if hasattr(cfg, "backbone"):  # a scikit-learn baseline: its frozen torchvision backbone
        if cfg.backbone is None:
            return
        name, lookup = cfg.backbone, torchvision_file
    if lookup is None:
        return  # a model of vbench's own: no weights file
    if cfg.weights:
        path = Path(cfg.weights).expanduser()
        if not path.is_file():
            raise VBenchError(f"model.weights: no file at {path}")
    elif cfg.pretrained:
        lookup(name)
