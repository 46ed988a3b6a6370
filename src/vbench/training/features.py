"""The feature cache: a frozen backbone runs once, and the head trains on its outputs.

With freeze=backbone and no augmentation, every epoch would push the same images through the
same frozen layers; seeds 000 and 003 therefore extract features once by hand. Here the
features are the input of the model's head (see freeze.head_name), computed in eval mode,
batched, and kept on the training device. Training then sees a `HeadOnFeatures` module whose
state_dict is the full model's, so checkpoints load into the full model unchanged.
"""

import dataclasses

import torch
from torch import nn

from ..core.console import console
from ..core.schema import Dataset, Freeze, FreezeBackbone, Trainer, WebDataset
from ..data import Data, Split
from ..evaluation.forward import extract
from ..models.freeze import head_name


def uses_feature_cache(freeze: Freeze, dataset: Dataset, trainer: Trainer) -> bool:
    """Only the head learns (freeze=backbone with freeze.cache) and every epoch sees the same
    images (no augmentation, no mixing of images) from an indexable split."""
    same_images = (dataset.augment == "none" and dataset.auto_augment == "none"
                   and not dataset.random_erasing and not trainer.mixup and not trainer.cutmix)
    # A stream is read in a new order every epoch: its features cannot be kept by index.
    return (isinstance(freeze, FreezeBackbone) and freeze.cache and same_images
            and not isinstance(dataset, WebDataset))


class HeadOnFeatures(nn.Module):
    """Runs only `model`'s head, on cached features; saves and loads as the whole model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.head = model.get_submodule(head_name(model))
        object.__setattr__(self, "full", model)  # not a submodule: the keys stay the model's

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features).flatten(1)  # squeezenet's conv head ends in (N, C, 1, 1)

    def state_dict(self, *args, **kwargs):
        return self.full.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, *args, **kwargs):
        return self.full.load_state_dict(state_dict, *args, **kwargs)


def full_model(module: nn.Module) -> nn.Module:
    """The whole model behind a HeadOnFeatures (or a copy of one: the EMA's), else `module`."""
    return module.full if isinstance(module, HeadOnFeatures) else module


def cache_features(model: nn.Module, data: Data, batch_size: int, amp_dtype):
    """(HeadOnFeatures, Data of features) to train on; (model, data) unchanged when the head
    is not the last step of the model's forward (head-on-features would not be its logits)."""
    def to_features(split):
        return None if split is None else Split(extract(model, head.head, split, batch_size, amp_dtype),
                                                split.y)

    head = HeadOnFeatures(model)
    if not _head_is_last_step(model, head, data.val):
        console.print(f"feature cache off: the head of {type(model).__name__} is not the last "
                      "step of its forward; training on the full forward pass", highlight=False)
        return model, data
    features = dataclasses.replace(data, train=to_features(data.train),
                                   val=to_features(data.val), test=to_features(data.test))
    console.print(f"feature cache: frozen backbone ran once, head trains on "
                  f"{tuple(features.train.x.shape[1:])} features", highlight=False)
    return head, features


@torch.no_grad()
def _head_is_last_step(model: nn.Module, head: HeadOnFeatures, split: Split) -> bool:
    """On a few images, in float32: does head(features) give the whole model's logits?"""
    probe = split.subset(slice(0, 8))
    logits = model.eval()(probe.inputs())
    return torch.allclose(head(extract(model, head.head, probe, 8, None)), logits, rtol=1e-3, atol=1e-4)
