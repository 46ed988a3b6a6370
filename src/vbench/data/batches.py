"""Mini-batches straight from tensors already on the device: one randperm per epoch and
index slicing. No Dataset/DataLoader, no workers, no per-sample Python."""

import torch

from .registry import Split


def batches(split: Split, batch_size: int, generator: torch.Generator | None = None):
    """Yield (x, y) batches; shuffled when a generator is given, in order otherwise."""
    n = len(split)
    if generator is None:
        for start in range(0, n, batch_size):
            yield split.x[start:start + batch_size], split.y[start:start + batch_size]
        return
    order = torch.randperm(n, generator=generator, device=generator.device)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield split.x[idx], split.y[idx]


def num_batches(split: Split, batch_size: int) -> int:
    return -(-len(split) // batch_size)
