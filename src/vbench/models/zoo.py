"""What the torchvision and timm builders share: input adaptation, weight loading, name lookup.

A library model keeps its own module names (conv1, layer1, fc, ...), so `freeze.modules` and
weight files use the names users know from torchvision/timm. The input adaptation is attached
as a parameter-free submodule `adapt_input` that a forward pre-hook runs before the model.
"""

import difflib
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core import files
from ..core.errors import VBenchError
from .freeze import head_name
from .registry import InputSpec


class InputAdapter(nn.Module):
    """Turns the dataset's batches into what the backbone expects, on the device:
    grey repeated to RGB, resized to `input_size`, and (for pretrained weights) re-normalized
    from the dataset's train statistics to the statistics the weights were trained with."""

    def __init__(self, spec: InputSpec, input_size: int | None, target_stats=None):
        super().__init__()
        if spec.in_channels not in (1, 3):
            raise VBenchError(f"torchvision/timm backbones take 1 (grey) or 3 (RGB) channels; "
                              f"this dataset has {spec.in_channels}")
        self.repeat = 3 // spec.in_channels
        self.input_size = input_size
        # Batches arrive as (x - data_mean) / data_std. For pretrained weights we want
        # (x - target_mean) / target_std: one per-channel affine map, x * scale + shift.
        data_mean = torch.tensor(spec.mean or [0.0] * spec.in_channels).repeat(self.repeat)
        data_std = torch.tensor(spec.std or [1.0] * spec.in_channels).repeat(self.repeat)
        scale, shift = torch.ones(3), torch.zeros(3)
        if target_stats is not None:
            target_mean, target_std = (torch.tensor(s, dtype=torch.float32) for s in target_stats)
            scale = data_std / target_std
            shift = (data_mean - target_mean) / target_std
        # Not persistent: the state_dict stays exactly the library model's.
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.repeat > 1:
            x = x.repeat(1, self.repeat, 1, 1)
        if self.input_size is not None and x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False)
        return x * self.scale + self.shift

    def extra_repr(self) -> str:
        return f"repeat={self.repeat}, input_size={self.input_size}"


def _adapt_hook(model: nn.Module, args: tuple):
    return (model.adapt_input(args[0]), *args[1:])


def attach_adapter(model: nn.Module, adapter: InputAdapter) -> nn.Module:
    model.adapt_input = adapter
    model.register_forward_pre_hook(_adapt_hook)
    return model


def unknown_name_error(library: str, name: str, known: list[str], listing: str) -> VBenchError:
    # A truncated name (vit_small) is best answered by the names it starts; a typo by difflib.
    close = [k for k in known if k.startswith(name)][:5] or difflib.get_close_matches(name, known,
                                                                                       n=5)
    return VBenchError(f"model.name={name!r} is not a {library} model; close matches: "
                       f"{', '.join(close) or 'none'} (all names: {listing})")


def read_weights(path: Path) -> dict:
    """The state_dict in a weights file. torch.load runs with weights_only=True, so a pickle
    that would call code is refused; any unreadable file (random bytes, truncated, a bad
    .safetensors header, such a pickle) is one error naming the key and the path."""
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it was not given
            warnings.simplefilter("ignore")
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(path)
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  torch, zipfile, pickle and safetensors errors alike
        raise VBenchError(f"model.weights={path}: cannot read it: {files.why_unreadable(e)}; give a "
                          "state_dict, vbench checkpoint or .safetensors file") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not (isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise VBenchError(f"model.weights={path}: holds no state_dict of tensors; give a "
                          "state_dict, vbench checkpoint or .safetensors file")
    return state


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a weights file into `model`, keeping the model's own classifier head when the file's
    head has another number of classes (the ImageNet head of a pretrained file).

    Accepts a plain state_dict, a vbench checkpoint ({"model": ...}) or a .safetensors file."""
    path = Path(path).expanduser()  # model.weights: ~/w.pt from a YAML file
    if not path.is_file():
        raise VBenchError(f"model.weights: no file at {path}")
    state = read_weights(path)
    own, head = model.state_dict(), head_name(model) + "."
    head_keys = {k for k, v in state.items()
                 if k.startswith(head) and k in own and v.shape != own[k].shape}
    state = {k: v for k, v in state.items() if k not in head_keys}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a shape mismatch outside the head
        raise VBenchError(f"weights file {path} does not fit this model: "
                          f"{str(e).splitlines()[-1].strip()}") from e
    if set(missing) != head_keys or unexpected:
        # Not the same architecture: refuse rather than run on a half-loaded model.
        raise VBenchError(f"weights file {path} does not fit this model: "
                          f"{len(set(missing) - head_keys)} missing and {len(unexpected)} "
                          f"unexpected keys (e.g. {sorted(set(missing) - head_keys)[:2]} "
                          f"{sorted(unexpected)[:2]})")

