"""The dataset registry and the one path every dataset takes from uint8 arrays to batches.

A reader is `fn(cfg) -> RawData`: uint8 images (N, C, H, W) and int64 labels for a training
pool and, where the dataset has them, official test and val splits. Everything after that (smoke
subsets, the stratified val split, normalization, device placement) is shared here, so every
dataset behaves the same way.

Splits stay uint8 on the training device (a quarter of the bytes of float32) and every batch is
converted and normalized as it is drawn (`Split.batches`), after the on-device augmentation,
which works in the [0, 255] pixel scale where black is 0.
"""

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..core.errors import VBenchError, choices_error
from .augment import Augment, build_augment
from .splits import stratified_split, stratified_subset
from .stream import STATS_SAMPLE, FileImages, ShardStream, stats_sample

_READERS: dict[str, Callable] = {}
_SHARED_MODULES = {"registry", "splits", "batches", "augment", "source", "stream"}


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
    """Images and labels on the training device. `x` holds uint8 images (N, C, H, W), which the
    model sees normalized per batch, or float inputs used as they are (cached features, images
    already normalized) when `mean` is None."""

    x: torch.Tensor
    y: torch.Tensor  # int64 (N,)
    mean: torch.Tensor | None = None  # (C,) per-channel mean and std in the [0, 1] pixel scale
    std: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.x)  # a ShardStream has no labels before it is read

    def subset(self, index) -> "Split":
        """The images at `index` (a slice, indices or a mask), with the same normalization."""
        return Split(self.x[index], self.y[index], self.mean, self.std)

    @property
    def streamed(self) -> bool:
        """The images stay on disk and are decoded per batch (stream.py)."""
        return isinstance(self.x, (FileImages, ShardStream))

    @property
    def sequential(self) -> bool:
        """The images are read in order only (WebDataset shards): no indexing, no labels
        before a batch is read."""
        return isinstance(self.x, ShardStream)

    def head(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n images (uint8) and labels."""
        if self.sequential:
            return self.x.head(n)
        return self.uint8(slice(0, n)), self.y[:n]

    def uint8(self, index=slice(None)) -> torch.Tensor:
        """The images at `index` as stored, decoded from their files when streamed."""
        x = self.x[index]
        return x.decode() if isinstance(x, FileImages) else x

    def inputs(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """Model inputs: `x` (default: all of this split's images; uint8 or pixel-scale float)
        as normalized float32, exactly (x / 255 - mean) / std."""
        x = self.uint8() if x is None else x
        if self.mean is None:
            return x
        shape = (1, -1, 1, 1)
        return (x.to(torch.float32).div_(255.0).sub_(self.mean.view(shape))
                .div_(self.std.view(shape)))

    def pixels(self, index=slice(None)) -> torch.Tensor:
        """Float images in [0, 1] for display."""
        return self.uint8(index).float().div(255.0)

    def drawn(self, batch_size: int, drop_single: bool = False, world: int = 1) -> int:
        """How many images one pass (of one of `world` ranks) draws: its share, less a last
        batch of one image when `drop_single` (training: BatchNorm cannot normalize one image;
        as DataLoader's drop_last, but only for that batch)."""
        n = -(-len(self) // world)  # ranks get equal shares: DistributedSampler pads the same way
        if drop_single and batch_size > 1 and n > 1 and n % batch_size == 1:
            return n - 1
        return n

    def num_batches(self, batch_size: int, drop_single: bool = False, world: int = 1) -> int:
        """Batches in one pass of `batches` with the same arguments: what the loop draws and
        the progress bar counts."""
        return -(-self.drawn(batch_size, drop_single, world) // batch_size)

    def permutation(self, generator: torch.Generator) -> torch.Tensor:
        """One epoch's shuffled order of the images, the first draw of `batches` from its
        generator (a stack of seeds draws each member's order the same way)."""
        return torch.randperm(len(self), generator=generator, device=generator.device)

    def batches(self, batch_size: int, generator: torch.Generator | None = None,
                augment: Callable | None = None, drop_single: bool = False,
                shard: tuple[int, int] = (0, 1)):
        """Yield (inputs, labels) batches: shuffled when a generator is given, in order
        otherwise; `augment(x, generator)` sees each raw batch first. `drop_single` drops a
        last batch of one image (see `drawn`). `shard=(rank, world)`: this rank's images of the
        permutation every rank draws alike, padded by wrapping round to equal shares."""
        if self.sequential:
            yield from self._stream(batch_size, generator, augment, drop_single, shard)
            return
        n = len(self)
        rank, world = shard
        order = None if generator is None else self.permutation(generator)
        if world > 1:
            order = torch.arange(n, device=self.y.device) if order is None else order
            order = order.repeat(2)[:-(-n // world) * world][rank::world]
        indices = [slice(start, start + batch_size) if order is None else
                   order[start:start + batch_size]
                   for start in range(0, self.drawn(batch_size, drop_single, world), batch_size)]
        if self.streamed:  # decoded ahead by the workers, in this order
            raw = self.x.stream([range(len(self))[i] if isinstance(i, slice) else i
                                 for i in indices])
        else:
            raw = (self.x[i] for i in indices)
        for index, x in zip(indices, raw):
            if augment is not None:
                x = augment(x, generator)
            yield self.inputs(x), self.y[index]

    def _stream(self, batch_size, generator, augment, drop_single, shard):
        """`batches` of a ShardStream: this rank's share of the epoch, read from its shards in
        an order shuffled by a seed drawn from `generator` (so last.pt's generator state
        gives a resumed run the epoch it would have had)."""
        seed = None
        if generator is not None:
            seed = int(torch.randint(2**62, (1,), generator=generator,
                                     device=generator.device).item())
        count = self.drawn(batch_size, drop_single, shard[1])
        for x, y in self.x.batches(batch_size, count, seed, shard):
            if augment is not None:
                x = augment(x, generator)
            yield self.inputs(x), y


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
    normalization: str = "train split"  # where mean/std come from (metrics.json)

    @property
    def in_memory(self) -> bool:
        """False when the images stream from their files (stream.py)."""
        return not self.train.streamed

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


def reader(name: str) -> Callable:
    """The registered reader of dataset `name` (choices_error when there is none)."""
    if name not in dataset_names():
        raise choices_error("dataset.name", name, dataset_names())
    return _READERS[name]


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
    dataset must see it normalized as its training data was. `cfg` is a dataset section that
    core/schema.validate passed (every command checks its config there first); what only the
    data can tell (a reader's name, one mean/std per image channel, split sizes) is checked
    here."""
    if cfg.name not in dataset_names():
        raise choices_error("dataset.name", cfg.name, dataset_names())
    raw = _READERS[cfg.name](cfg)
    seed = cfg.split_seed

    if isinstance(raw.train_x, ShardStream):  # read in order; its reader gives val
        pool_x, pool_y = _shortened(raw.train_x, cfg, len(raw.classes)), raw.train_y
    else:
        keep = stratified_subset(raw.train_y, cfg.subset_per_class, cfg.max_samples, seed,
                                 "train")
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

    mean, std, stats_from = (_normalization(cfg, train_x, seed) if stats is None
                             else (*stats, "the trained model's data"))

    def to_split(x, y) -> Split:
        return Split(x.to(device), y.to(device), torch.tensor(mean, device=device),
                     torch.tensor(std, device=device))

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
        augment=build_augment(cfg.augment, cfg.auto_augment, cfg.randaugment_ops,
                              cfg.randaugment_magnitude, cfg.random_erasing, mean, std),
        normalization=stats_from,
    )


def _shortened(stream: ShardStream, cfg, classes: int) -> ShardStream:
    """A stream's epochs cut to their first images by subset_per_class (times the classes) or
    max_samples: a stream cannot be subset by class before it is read."""
    limits = [n for n in (cfg.max_samples, cfg.subset_per_class and cfg.subset_per_class * classes)
              if n]
    return stream.limited(min(limits)) if limits else stream


def _normalization(cfg, train_x, seed: int) -> tuple[list[float], list[float], str]:
    """Per-channel (mean, std) in the [0, 1] pixel scale, given, computed, or none; and where
    they come from (metrics.json says it)."""
    channels = train_x.shape[1]
    if not cfg.normalize:
        return [0.0] * channels, [1.0] * channels, "off"
    if cfg.mean is None:
        # Statistics come from the train split only: val and test must not leak into training.
        if isinstance(train_x, FileImages):  # streamed: a seeded sample stands for it
            sample = stats_sample(train_x, seed)
            return *_channel_stats(sample), f"seeded sample of {len(sample)} train images"
        if isinstance(train_x, ShardStream):  # read in order: its first images stand for it
            sample = train_x.head(STATS_SAMPLE)[0].cpu()
            return *_channel_stats(sample), f"first {len(sample)} train images of the shards"
        return *_channel_stats(train_x), "train split"
    mean, std = [float(m) for m in cfg.mean], [float(s) for s in cfg.std]
    if not len(mean) == len(std) == channels:
        raise VBenchError(f"dataset.mean={mean} and dataset.std={std} need one value per image "
                          f"channel ({channels})")
    return mean, std, "dataset.mean/std"


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
