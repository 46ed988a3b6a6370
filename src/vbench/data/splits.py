"""Seeded, stratified index selection: smoke subsets and the train/val split.

The split draws exactly the indices scikit-learn's `train_test_split(..., stratify=y,
random_state=seed)` draws (its StratifiedShuffleSplit, in numpy below), so every run keeps the
images it had while scikit-learn (1.2 s of imports) is no longer loaded to pick them.
tests/test_splits.py compares the two on many label vectors."""

import numpy as np
import torch

from ..core.errors import VBenchError


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
        keep, _ = shuffle_split(labels[order], max_samples, len(order) - max_samples, seed,
                                "dataset.max_samples")
        order = order[keep]
    return torch.from_numpy(np.sort(order))


def stratified_split(y: torch.Tensor, size: float, seed: int, key: str):
    """(rest, held_out) indices; `size` is a fraction in (0, 1) or a count.

    A fraction is rounded up to one image per class when it would give fewer, so that tiny
    smoke subsets still split; an explicit count is taken as given."""
    labels = y.numpy()
    n, classes = len(labels), len(np.unique(labels))
    count = max(round(size * n), classes) if isinstance(size, float) else size
    if not classes <= count <= n - classes:
        raise VBenchError(f"{key}={size} gives {count} of {n} images; each side of the split "
                          f"needs at least one image per class ({classes} classes): "
                          f"{_what_fits(key, n, classes)}")
    rest, held_out = shuffle_split(labels, n - count, count, seed, key)
    return torch.from_numpy(np.sort(rest)), torch.from_numpy(np.sort(held_out))


def _what_fits(key: str, n: int, classes: int) -> str:
    """A value of `key` that splits `n` images of `classes` classes, for the refusal."""
    if n < 2 * classes:
        return "there are too few images for that; use more data"
    return f"use a share such as {key}=0.1, or a count from {classes} to {n - classes}"


def shuffle_split(labels: np.ndarray, n_train: int, n_test: int, seed: int, key: str):
    """(train, test) positions into `labels`, stratified: scikit-learn's StratifiedShuffleSplit
    (one split, random_state=seed), step by step with the same random draws."""
    classes, y_index, class_counts = np.unique(labels, return_inverse=True, return_counts=True)
    if class_counts.min() < 2:
        raise VBenchError(f"{key}: class {classes[class_counts.argmin()]} has a single image "
                          "here; a stratified split needs at least 2 per class")
    class_indices = np.split(np.argsort(y_index, kind="stable"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train, test = [], []
    for i in range(len(classes)):
        members = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(members[:n_i[i]])
        test.extend(members[n_i[i]:n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng) -> np.ndarray:
    """How many of `n_draws` each class gets: proportional, floored, and the remaining draws
    to the largest remainders, ties broken at random (scikit-learn's `_approximate_mode`)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)
