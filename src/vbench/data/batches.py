"""Mini-batches straight from tensors already on the device: one randperm per epoch and
index slicing. No Dataset/DataLoader, no workers, no per-sample Python. The work is
Split.batches'; these are the names the training loop and the evaluators import."""

import torch

from .registry import Split


def batches(split: Split, batch_size: int, generator: torch.Generator | None = None):
    """Yield normalized (x, y) batches; shuffled when a generator is given, in order otherwise."""
    yield from split.batches(batch_size, generator)


def num_batches(split: Split, batch_size: int, drop_single: bool = False) -> int:
    """Batches per pass; `drop_single`: without a last batch of one image (training)."""
    return -(-split.drawn(batch_size, drop_single) // batch_size)
