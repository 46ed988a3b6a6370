"""The dataset registry and the one path every dataset takes from uint8 arrays to batches.

A reader is `fn(cfg) -> RawData`: uint8 images (N, C, H, W) and int64 labels for a training
pool and, where the dataset has one, an official test split. Everything after that (smoke
subsets, the stratified val split, normalization, device placement) is shared here, so every
dataset behaves the same way.
"""

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import choices_error
from .splits import stratified_split, stratified_subset

_READERS: dict[str, Callable] = {}
_SHARED_MODULES = {"registry", "splits", "batches"}


@dataclass
class RawData:
    train_x: torch.Tensor  # uint8 (N, C, H, W): the pool train and val are drawn from
    train_y: torch.Tensor  # int64 (N,)
    test_x: torch.Tensor | None  # None when the dataset has no test split
    test_y: torch.Tensor | None
    classes: list[str]


@dataclass
class Split:
    x: torch.Tensor  # float (N, C, H, W), normalized, on the training device
    y: torch.Tensor  # int64 (N,), on the training device

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Data:
    name: str
    train: Split
    val: Split
    test: Split | None
    classes: list[str]
    mean: list[float]
    std: list[float]

    @property
    def in_channels(self) -> int:
        return self.train.x.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.x.shape[-1]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def register_dataset(name: str):
    def decorator(reader: Callable) -> Callable:
        if name in _READERS:
            raise ValueError(f"dataset {name!r} is registered twice")
        _READERS[name] = reader
        return reader

    return decorator


def dataset_names() -> list[str]:
    _import_readers()
    return sorted(_READERS)


def load_data(cfg, device: torch.device, stats: tuple[list, list] | None = None) -> Data:
    """Read `cfg.name`, shrink it for smoke runs, split off val, normalize, move to `device`.

    `stats` (mean, std) replaces this dataset's own statistics: a model evaluated on another
    dataset must see it normalized as its training data was."""
    if cfg.name not in dataset_names():
        raise choices_error("dataset.name", cfg.name, dataset_names())
    raw = _READERS[cfg.name](cfg)
    seed = cfg.split_seed

    keep = stratified_subset(raw.train_y, cfg.subset_per_class, cfg.max_samples, seed, "train")
    pool_x, pool_y = raw.train_x[keep], raw.train_y[keep]
    train_idx, val_idx = stratified_split(pool_y, cfg.val_size, seed, "dataset.val_size")

    # Statistics come from the train split only: val and test must not leak into training.
    train_x = pool_x[train_idx]
    channels = train_x.shape[1]
    mean, std = _channel_stats(train_x) if cfg.normalize else ([0.0] * channels, [1.0] * channels)
    if stats is not None:
        mean, std = stats

    def to_split(x, y) -> Split:
        x = x.to(device=device, dtype=torch.float32).div_(255.0)
        m = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        s = torch.tensor(std, device=device).view(1, -1, 1, 1)
        return Split(x.sub_(m).div_(s), y.to(device))

    test = None
    if raw.test_x is not None:
        keep = stratified_subset(raw.test_y, cfg.subset_per_class, cfg.max_samples, seed, "test")
        test = to_split(raw.test_x[keep], raw.test_y[keep])
    return Data(
        name=cfg.name,
        train=to_split(train_x, pool_y[train_idx]),
        val=to_split(pool_x[val_idx], pool_y[val_idx]),
        test=test,
        classes=list(raw.classes),
        mean=mean,
        std=std,
    )


def _channel_stats(x: torch.Tensor) -> tuple[list[float], list[float]]:
    x = x.to(torch.float64).div_(255.0)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)  # a constant channel must not divide by zero
    return mean.tolist(), std.tolist()


def _import_readers() -> None:
    # Each reader module of this package registers itself on import: adding a dataset is one
    # file here plus one YAML in conf/dataset/.
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _SHARED_MODULES:
            importlib.import_module(f"{__package__}.{module.name}")
