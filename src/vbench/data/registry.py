"""The dataset registry and the one path every dataset takes from uint8 arrays to batches.

A reader is `fn(cfg) -> RawData`: uint8 images (N, C, H, W) and int64 labels for a training
pool and, where the dataset has them, official test and val splits. Everything after that (smoke
subsets, the stratified val split, normalization, device placement) is shared here, so every
dataset behaves the same way.
"""

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import VBenchError, choices_error
from .augment import AUGMENTS, Augment, build_augment
from .splits import stratified_split, stratified_subset

_READERS: dict[str, Callable] = {}
_SHARED_MODULES = {"registry", "splits", "batches", "augment", "source"}


@dataclass
class RawData:
    train_x: torch.Tensor  # uint8 (N, C, H, W): the pool train and val are drawn from
    train_y: torch.Tensor  # int64 (N,)
    test_x: torch.Tensor | None  # None when the dataset has no test split
    test_y: torch.Tensor | None
    classes: list[str]
    val_x: torch.Tensor | None = None  # an official val split; None: val is split from train
    val_y: torch.Tensor | None = None


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
    augment: Augment | None = None  # applied to training batches only

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


def _scaled_val_size(val_size, kept: int, total: int, classes: int):
    """A val_size count is meant for the whole training pool (MNIST's 5000 of 60000): when
    subset_per_class or max_samples keep a part of the pool, the count shrinks with it, to at
    least one image per class, so a smoke subset keeps the same share for val. The real counts
    are in the run's table and metrics.json `sizes`."""
    if isinstance(val_size, int) and kept < total:
        return max(classes, round(val_size * kept / total))
    return val_size


def load_data(cfg, device: torch.device, stats: tuple[list, list] | None = None) -> Data:
    """Read `cfg.name`, shrink it for smoke runs, split off val, normalize, move to `device`.

    `stats` (mean, std) replaces this dataset's own statistics: a model evaluated on another
    dataset must see it normalized as its training data was."""
    if cfg.name not in dataset_names():
        raise choices_error("dataset.name", cfg.name, dataset_names())
    _check_options(cfg)
    raw = _READERS[cfg.name](cfg)
    seed = cfg.split_seed

    keep = stratified_subset(raw.train_y, cfg.subset_per_class, cfg.max_samples, seed, "train")
    pool_x, pool_y = raw.train_x[keep], raw.train_y[keep]
    if raw.val_x is None:
        val_size = _scaled_val_size(cfg.val_size, len(pool_y), len(raw.train_y),
                                    len(pool_y.unique()))
        train_idx, val_idx = stratified_split(pool_y, val_size, seed, "dataset.val_size")
        train_x, train_y = pool_x[train_idx], pool_y[train_idx]
        val_x, val_y = pool_x[val_idx], pool_y[val_idx]
    else:  # an official val split (ImageFolder's val/) is used as it is
        train_x, train_y = pool_x, pool_y
        keep = stratified_subset(raw.val_y, cfg.subset_per_class, cfg.max_samples, seed, "val")
        val_x, val_y = raw.val_x[keep], raw.val_y[keep]

    mean, std = _normalization(cfg, train_x) if stats is None else stats

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
        train=to_split(train_x, train_y),
        val=to_split(val_x, val_y),
        test=test,
        classes=list(raw.classes),
        mean=mean,
        std=std,
        augment=build_augment(cfg.get("augment", "none"), mean, std),
    )


def _check_options(cfg) -> None:
    """Refuse bad augmentation/normalization values before the (slow) read."""
    if cfg.get("augment", "none") not in AUGMENTS:
        raise choices_error("dataset.augment", cfg.augment, AUGMENTS)
    if not isinstance(cfg.normalize, bool):
        raise VBenchError(f"dataset.normalize={cfg.normalize!r} is not valid; it must be true "
                          "(mean/std from dataset.mean/std, else from the train split) or false")
    mean, std = cfg.get("mean"), cfg.get("std")
    if (mean is None) != (std is None):
        raise VBenchError("dataset.mean and dataset.std go together: give both lists or neither")
    if std is not None and min(std) <= 0:
        raise VBenchError(f"dataset.std={list(std)} is not valid; every value must be > 0")


def _normalization(cfg, train_x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel (mean, std) in the [0, 1] pixel scale: given, computed, or none."""
    channels = train_x.shape[1]
    if not cfg.normalize:
        return [0.0] * channels, [1.0] * channels
    if cfg.get("mean") is None:
        # Statistics come from the train split only: val and test must not leak into training.
        return _channel_stats(train_x)
    mean, std = [float(m) for m in cfg.mean], [float(s) for s in cfg.std]
    if not len(mean) == len(std) == channels:
        raise VBenchError(f"dataset.mean={mean} and dataset.std={std} need one value per image "
                          f"channel ({channels})")
    return mean, std


def _channel_stats(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Exact per-channel mean and (unbiased) std of uint8 images, from a histogram of the 256
    pixel values: no float copy of the data (that would be 1.2 GB in float64 for CIFAR-10)."""
    values = torch.arange(256, dtype=torch.float64) / 255.0
    mean, std = [], []
    for channel in x.transpose(0, 1):
        counts = torch.bincount(channel.flatten(), minlength=256).to(torch.float64)
        n = counts.sum()
        m = (counts * values).sum() / n
        var = (counts * (values - m) ** 2).sum() / (n - 1)
        mean.append(m.item())
        std.append(max(var.sqrt().item(), 1e-6))  # a constant channel must not divide by zero
    return mean, std


def _import_readers() -> None:
    # Each reader module of this package registers itself on import: adding a dataset is one
    # file here plus one YAML in conf/dataset/.
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _SHARED_MODULES:
            importlib.import_module(f"{__package__}.{module.name}")
