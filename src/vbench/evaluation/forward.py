"""Batched forward passes over a split, in order, without gradients: the logits every
evaluation scores, and the features a frozen backbone hands its head."""

import torch
from torch import nn

from ..core.console import track
from ..core.device import autocast
from ..data import Split


@torch.no_grad()
def predict(model: nn.Module, split: Split, batch_size: int, amp_dtype) -> torch.Tensor:
    """Float32 logits for every image of `split`, in order."""
    model.eval()
    out = []
    for x, _ in track(split.batches(batch_size), split.num_batches(batch_size), "predicting"):
        with autocast(x.device, amp_dtype):
            out.append(model(x).float())
    return torch.cat(out)


@torch.no_grad()
def extract(model: nn.Module, head: nn.Module, split: Split, batch_size: int,
            amp_dtype) -> torch.Tensor:
    """The input of `head` (a submodule of `model`) for every image of `split`, in order, as
    float32: a frozen backbone's features (the feature cache's splits hold these floats)."""
    model.eval()
    captured = []
    hook = head.register_forward_hook(lambda module, args, output: captured.append(
        args[0].float()))
    try:
        for x, _ in track(split.batches(batch_size), split.num_batches(batch_size),
                          "extracting features"):
            with autocast(x.device, amp_dtype):
                model(x)
    finally:
        hook.remove()
    return torch.cat(captured)
