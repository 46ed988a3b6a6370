"""Seeded, stratified index selection: smoke subsets and the train/val split."""

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from ..errors import VBenchError


def stratified_subset(y: torch.Tensor, per_class: int | None, max_samples: int | None,
                      seed: int, split: str) -> torch.Tensor:
    """Indices keeping at most `per_class` images of each class, then at most `max_samples`
    in all (stratified), as seed 000 subsets MNIST. Same seed, same images."""
    labels = y.numpy()
    order = np.random.default_rng(seed).permutation(len(labels))
    if per_class is not None:
        rank = np.zeros(len(labels), dtype=np.int64)  # position of each image within its class
        for c in np.unique(labels):
            in_class = order[labels[order] == c]
            rank[in_class] = np.arange(len(in_class))
        order = order[rank[order] < per_class]
    if max_samples is not None and max_samples < len(order):
        classes = len(np.unique(labels[order]))
        if max_samples < classes:
            raise VBenchError(f"dataset.max_samples={max_samples} keeps fewer {split} images than "
                              f"there are classes ({classes}); use at least {classes}")
        order, _ = train_test_split(order, train_size=max_samples, stratify=labels[order],
                                    random_state=seed)
    return torch.from_numpy(np.sort(order))


def stratified_split(y: torch.Tensor, size: int | float, seed: int, key: str):
    """(rest, held_out) indices; `size` is a fraction in (0, 1) or a count.

    A fraction is rounded up to one image per class when it would give fewer, so that tiny
    smoke subsets still split; an explicit count is taken as given."""
    labels = y.numpy()
    n, classes = len(labels), len(np.unique(labels))
    count = max(round(size * n), classes) if isinstance(size, float) else size
    if not classes <= count <= n - classes:
        raise VBenchError(f"{key}={size} gives {count} of {n} images; each side of the split "
                          f"needs at least one image per class ({classes} classes)")
    rest, held_out = train_test_split(np.arange(n), test_size=count, stratify=labels,
                                      random_state=seed)
    return torch.from_numpy(np.sort(rest)), torch.from_numpy(np.sort(held_out))
