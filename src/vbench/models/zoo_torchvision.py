"""Any torchvision classification model by name (`model=torchvision model.name=...`), and the
presets resnet18, vgg16, alexnet, shufflenet_v2, squeezenet, mobilenet_v2, efficientnet_b0."""

from pathlib import Path

import torch
from torch import nn

from ..core.errors import VBenchError
from .registry import InputSpec, register_model
from .zoo import InputAdapter, attach_adapter, load_weights, unknown_name_error


def classification_models() -> list[str]:
    import torchvision  # here, not at the top: every run imports this module via the registry

    return torchvision.models.list_models(module=torchvision.models)


@register_model("torchvision")
def build_torchvision(cfg, spec: InputSpec) -> nn.Module:
    import torchvision

    if cfg.name not in classification_models():
        raise unknown_name_error("torchvision classification", cfg.name, classification_models(),
                                 "torchvision.models.list_models()")
    # torchvision builds the classifier head for num_classes itself.
    model = torchvision.models.get_model(cfg.name, weights=None, num_classes=spec.num_classes)
    stats = None
    if cfg.weights:
        load_weights(model, Path(cfg.weights))
    if cfg.pretrained:
        weights = torchvision.models.get_model_weights(cfg.name).DEFAULT
        if not cfg.weights:
            load_weights(model, hub_file(cfg.name))
        preprocess = weights.transforms()
        stats = (preprocess.mean, preprocess.std)
    return attach_adapter(model, InputAdapter(spec, cfg.input_size, stats))


def hub_file(name: str) -> Path:
    """Where torchvision keeps the default weights of `name`: $TORCH_HOME/hub/checkpoints/.
    Offline, that file must already be there; we never download."""
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not path.is_file():
        raise VBenchError(f"model.pretrained=true: the {name} weights are not in the torch hub "
                          f"cache: expected {path}. Download {weights.url} to that path (set "
                          f"TORCH_HOME to use another cache), or pass model.weights=<file>")
    return path
