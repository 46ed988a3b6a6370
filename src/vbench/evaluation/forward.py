"""Batched forward passes over a split, in order, without gradients: the logits every
evaluation scores, and the features a frozen backbone hands its head."""

import time

import torch
from torch import nn

from ..core.console import track
from ..core.device import autocast
from ..data import Split


@torch.no_grad()
def predict(model: nn.Module, split: Split, batch_size: int, amp_dtype,
            ms_per_image: list[float] | None = None) -> torch.Tensor:
    """Float32 logits for every image of `split`, in order; each batch's forward time in ms
    per image is appended to `ms_per_image` when given (evaluate.timed_predict)."""
    model.eval()
    out = []
    for x, _ in track(split.batches(batch_size), split.num_batches(batch_size), "predicting"):
        out.append(predict_batch(model, x, amp_dtype, ms_per_image))
    return torch.cat(out)


@torch.no_grad()
def predict_batch(model: nn.Module, x: torch.Tensor, amp_dtype,
                  ms_per_image: list[float] | None = None) -> torch.Tensor:
    """One batch's float32 logits; timed, with the device synchronized before and after, when
    `ms_per_image` is given."""
    timed = ms_per_image is not None
    if timed:
        _synchronize(x.device)
        start = time.perf_counter()
    with autocast(x.device, amp_dtype):
        logits = model(x).float()
    if timed:
        _synchronize(x.device)
        ms_per_image.append((time.perf_counter() - start) * 1000 / len(x))
    return logits


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


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
