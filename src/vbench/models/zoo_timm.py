"""Any timm model by name (`model=timm model.name=...`), and the preset vit_small."""

from pathlib import Path

from torch import nn

from ..core.errors import VBenchError
from .registry import InputSpec, register_model
from .zoo import InputAdapter, attach_adapter, load_weights, unknown_name_error

# The files timm publishes on the Hugging Face hub, newest format first.
_HUB_FILES = ("model.safetensors", "pytorch_model.bin")


@register_model("timm")
def build_timm(cfg, spec: InputSpec) -> nn.Module:
    import timm  # here, not at the top: every run imports this module via the registry

    if not timm.is_model(cfg.name):
        raise unknown_name_error("timm", cfg.name, timm.list_models(), "timm.list_models()")
    # timm builds the classifier head for num_classes; weights are loaded by us, from disk only.
    model = _create(timm, cfg.name, spec.num_classes, cfg.input_size)
    stats = None
    if cfg.weights:
        load_weights(model, Path(cfg.weights))
    if cfg.pretrained:
        if not cfg.weights:
            load_weights(model, hub_file(cfg.name))
        stats = (model.pretrained_cfg["mean"], model.pretrained_cfg["std"])
    return attach_adapter(model, InputAdapter(spec, cfg.input_size, stats))


def _create(timm, name: str, num_classes: int, input_size: int | None) -> nn.Module:
    """Transformers fix their input size (position embeddings) at creation, so they are built
    for `input_size`; convolutional models take any size and do not accept `img_size`."""
    if input_size is not None:
        try:
            return timm.create_model(name, pretrained=False, num_classes=num_classes,
                                     img_size=input_size)
        except TypeError:
            pass
    return timm.create_model(name, pretrained=False, num_classes=num_classes)


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
