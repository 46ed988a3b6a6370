"""Any timm model by name (`model=timm model.name=...`), and the preset vit_small.

Weights (model.pretrained's file in the Hugging Face cache, or model.weights) go through timm's
own loader: the file is read here, safely (weights_only / safetensors), and handed to
`timm.create_model(..., pretrained=True, pretrained_cfg_overlay={"state_dict": ...})`, so the
model's checkpoint filter adapts it to the model as built (a ViT's position embeddings resampled
to another image size, old key layouts renamed). timm never downloads: the state dict is the
source it loads from. The load is strict: the model is built with the file's number of classes,
so every key must fit, and the head is then replaced for the dataset's classes.
"""

from pathlib import Path

from torch import nn

from ..core.errors import VBenchError
from .registry import InputSpec, register_model
from .zoo import InputAdapter, attach_adapter, read_weights, unknown_name_error

# The files timm publishes on the Hugging Face hub, newest format first.
_HUB_FILES = ("model.safetensors", "pytorch_model.bin")


@register_model("timm")
def build_timm(cfg, spec: InputSpec) -> nn.Module:
    import timm  # here, not at the top: every run imports this module via the registry

    if not timm.is_model(cfg.name):
        raise unknown_name_error("timm", cfg.name, timm.list_models(), "timm.list_models()")
    # Transformers fix their grid (position embeddings) at creation: built for the size the
    # batches arrive at, input_size or the data's.
    size = cfg.input_size or spec.image_size
    path = (Path(cfg.weights).expanduser() if cfg.weights
            else hub_file(cfg.name) if cfg.pretrained else None)
    if path is None:
        model = _create(timm, cfg.name, size, num_classes=spec.num_classes)
    else:
        model = _create_from_file(timm, cfg.name, size, spec.num_classes, path)
    stats = (model.pretrained_cfg["mean"], model.pretrained_cfg["std"]) if cfg.pretrained else None
    return attach_adapter(model, InputAdapter(spec, cfg.input_size, stats))


def _create(timm, name: str, size: int, **kwargs) -> nn.Module:
    """timm.create_model at `size` pixels for the models that take `img_size`; convolutional
    models take any size and refuse the keyword."""
    try:
        return timm.create_model(name, img_size=size, **kwargs)
    except TypeError as e:
        if "img_size" not in str(e):
            raise
    return timm.create_model(name, **kwargs)


def _create_from_file(timm, name: str, size: int, num_classes: int, path: Path) -> nn.Module:
    """The model with the weights of `path`, loaded by timm (see the module doc)."""
    if not path.is_file():
        raise VBenchError(f"model.weights: no file at {path}")
    state = read_weights(path)
    classifier = getattr(timm.models.get_pretrained_cfg(name), "classifier", None)
    head = classifier if isinstance(classifier, str) else (classifier or [None])[0]
    file_classes = (state[f"{head}.weight"].shape[0] if f"{head}.weight" in state
                    else num_classes)
    try:
        model = _create(timm, name, size, pretrained=True, num_classes=file_classes,
                        pretrained_cfg_overlay={"state_dict": state,
                                                "num_classes": file_classes})
    except RuntimeError as e:  # load_state_dict's missing, unexpected or mis-shaped keys
        raise VBenchError(f"weights file {path} does not fit this model: "
                          f"{' '.join(str(e).split())[:300]}") from None
    model.pretrained_cfg.pop("state_dict", None)  # loaded: do not keep a second copy alive
    if file_classes != num_classes:
        model.reset_classifier(num_classes)
    return model


def hub_file(name: str) -> Path:
    """The weights file of `name` in the local Hugging Face cache, where timm downloads to."""
    import timm
    from huggingface_hub import constants, try_to_load_from_cache

    repo = timm.models.get_pretrained_cfg(name).hf_hub_id
    if not repo:
        raise VBenchError(f"model.pretrained=true: timm has no hub weights for {name}; "
                          f"pass model.weights=<file>")
    for filename in _HUB_FILES:
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return Path(found)
    raise VBenchError(f"model.pretrained=true: the {name} weights are not in the Hugging Face "
                      f"cache {constants.HF_HUB_CACHE}: expected {_HUB_FILES[0]} of the hub repo "
                      f"{repo}. On a machine with network run `python -c \"import timm; "
                      f"timm.create_model('{name}', pretrained=True)\"` and copy that cache "
                      f"here (HF_HUB_CACHE), or pass model.weights=<file>")
