"""Images that stay on disk: ImageFolder files decoded batch by batch in DataLoader workers.

`dataset.in_memory=auto` keeps the tensor path (every image decoded once into one uint8 tensor
on the training device) while those bytes fit a budget: MEMORY_FRACTION of the memory
available now (of the free GPU memory when CUDA is available, since the tensor then lives
there). Beyond it, or with `dataset.in_memory=false`, a split holds a `FileImages` and every
batch is decoded from its files by `dataset.num_workers` worker processes (PIL, centre-crop
and resize to `dataset.image_size`, as the in-memory path decodes them), pinned and copied
without blocking on CUDA. Augmentation and normalization stay on the device, as in memory
(Split.batches), so both paths give the same batches.
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..core.errors import VBenchError

MEMORY_FRACTION = 0.5  # of the memory available: room for the model, activations, the OS
STATS_SAMPLE = 4096  # train images decoded (seeded) for the normalization statistics


def available_bytes() -> int:
    """Free memory where the tensor path would put the images: GPU when CUDA is available,
    else MemAvailable of /proc/meminfo (Linux), else physical memory."""
    if torch.cuda.is_available():
        return torch.cuda.mem_get_info()[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def keeps_in_memory(cfg, decoded_bytes: int) -> bool:
    """dataset.in_memory: true, false, or auto (the decoded uint8 images fit the budget)."""
    mode = str(cfg.in_memory).lower()
    if mode not in ("auto", "true", "false"):
        raise VBenchError(f"dataset.in_memory={cfg.in_memory!r} is not valid; choose auto "
                          "(stream when the decoded images exceed half the free memory), true "
                          "or false")
    workers = cfg.num_workers
    if workers is not None and (not isinstance(workers, int) or workers < 0):
        raise VBenchError(f"dataset.num_workers={workers!r} is not valid; it must be an integer "
                          ">= 0 (0: decode in the training process) or null (the cores "
                          "available)")
    if mode == "auto":
        return decoded_bytes <= MEMORY_FRACTION * available_bytes()
    return mode == "true"


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class _Unreadable:
    """What a worker hands back instead of a batch holding a file it cannot read: the loader's
    one-line VBenchError, raised again in the training process. Raised in the worker, it would
    come back re-raised by the DataLoader with the worker's traceback in its message."""

    def __init__(self, message: str):
        self.message = message


class _Files(torch.utils.data.Dataset):
    def __init__(self, paths: list[Path], load: Callable[[Path], np.ndarray]):
        self.paths, self.load = paths, load

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor | _Unreadable:
        try:
            image = np.array(self.load(self.paths[i]))  # a writable copy of PIL's buffer
        except VBenchError as e:  # a damaged or vanished file, in the loader's words
            return _Unreadable(str(e))
        return torch.from_numpy(image).permute(2, 0, 1)  # HWC -> CHW


def _collate(items: list) -> torch.Tensor | _Unreadable:
    bad = next((item for item in items if isinstance(item, _Unreadable)), None)
    return bad if bad is not None else torch.utils.data.default_collate(items)


class FileImages:
    """Stands where a split's uint8 tensor (N, C, H, W) would: indexing selects files (no
    decoding), `decode()` reads them, `stream(batches)` decodes batches in worker processes."""

    def __init__(self, paths: list[Path], shape: tuple[int, int, int],
                 load: Callable[[Path], np.ndarray], workers: int | None = None,
                 device: torch.device | str = "cpu"):
        self.paths, self.image_shape, self.load = list(paths), tuple(shape), load
        self.workers, self.device = workers, torch.device(device)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), *self.image_shape)

    ndim, dtype = 4, torch.uint8

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def to(self, device) -> "FileImages":
        return FileImages(self.paths, self.image_shape, self.load, self.workers, device)

    def __getitem__(self, index) -> "FileImages":
        picks = np.arange(len(self.paths))[_numpy_index(index)]
        return FileImages([self.paths[i] for i in np.atleast_1d(picks)], self.image_shape,
                          self.load, self.workers, self.device)

    def decode(self) -> torch.Tensor:
        """All these images as one uint8 tensor on the device (for small selections)."""
        if not self.paths:
            return torch.zeros(self.shape, dtype=torch.uint8, device=self.device)
        chunks = [range(i, min(i + 256, len(self))) for i in range(0, len(self), 256)]
        return torch.cat(list(self.stream(chunks)))

    def stream(self, batches: list) -> Iterator[torch.Tensor]:
        """uint8 batches on the device, one per list of indices, in order, decoded ahead."""
        workers = cores() if self.workers is None else self.workers
        loader = torch.utils.data.DataLoader(
            _Files(self.paths, self.load), batch_sampler=[_as_list(b) for b in batches],
            num_workers=min(workers, len(batches)), pin_memory=self.is_cuda,
            collate_fn=_collate,
            # Its own generator: the workers' seeds must not draw from torch's global RNG,
            # which also drives dropout; the run stays the in-memory run.
            generator=torch.Generator())
        for x in loader:
            if isinstance(x, _Unreadable):
                raise VBenchError(x.message)
            yield x.to(self.device, non_blocking=True)


def _numpy_index(index):
    if isinstance(index, torch.Tensor):
        return index.cpu().numpy()
    return index


def _as_list(index) -> list[int]:
    if isinstance(index, torch.Tensor):
        return index.cpu().tolist()
    return list(index)


def stats_sample(images: FileImages, seed: int) -> torch.Tensor:
    """A seeded sample of at most STATS_SAMPLE train images, decoded, for mean/std."""
    n = len(images)
    picks = np.sort(np.random.default_rng(seed).permutation(n)[:STATS_SAMPLE])
    return images[picks].to("cpu").decode()


# -- sequential streams: WebDataset shards ---------------------------------------------------


class _Reader(torch.utils.data.IterableDataset):
    """One rank's pass over its shards, inside each DataLoader worker: the worker takes every
    `workers`-th shard (webdataset.split_by_worker's rule), reads its samples through
    `samples(url)` (decoded (key, HWC uint8 image, label)), shuffles them within a buffer and
    yields them in chunks of `chunk`. `cycle`: start the shards again when they run out (the
    rank then stops when it has its share); else one pass."""

    def __init__(self, shards: list[str], samples: Callable, seed: int | None, buffer: int,
                 chunk: int, cycle: bool):
        self.shards, self.samples, self.seed = shards, samples, seed
        self.buffer, self.chunk, self.cycle = buffer, chunk, cycle

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        mine = self.shards[worker::workers]
        rng = np.random.default_rng(None if self.seed is None else [self.seed, worker])
        try:
            while mine:
                # Each pass ends its buffer and its last chunk: with shards of equal size, a
                # rank's share is then every image of its shards once.
                order = (mine if self.seed is None
                         else [mine[i] for i in rng.permutation(len(mine))])
                images, labels = [], []
                for image, label in self._shuffled(self._pass(order), rng):
                    images.append(image)
                    labels.append(label)
                    if len(images) == self.chunk:
                        yield _chunk(images, labels)
                        images, labels = [], []
                if images:
                    yield _chunk(images, labels)
                if not self.cycle:
                    return
        except VBenchError as e:  # a damaged shard, image or label, in the reader's words
            yield _Unreadable(str(e))

    def _pass(self, shards: list[str]):
        for url in shards:
            for _, image, label in self.samples(url):
                yield image, label

    def _shuffled(self, items, rng):
        """webdataset.shuffle's buffer: each item is swapped with a random one of the last
        `buffer` read (off without a seed or with buffer 0)."""
        if self.seed is None or self.buffer < 2:
            yield from items
            return
        held = []
        for item in items:
            if len(held) < self.buffer:
                held.append(item)
                continue
            i = rng.integers(len(held))
            held[i], item = item, held[i]
            yield item
        for i in rng.permutation(len(held)):
            yield held[i]


def _chunk(images: list, labels: list) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    return x, torch.tensor(labels, dtype=torch.int64)


class ShardStream:
    """Stands where a split's uint8 tensor (N, C, H, W) would, for images read in order only
    (WebDataset tar shards): its length is the images of one epoch (`count`, all ranks
    together), and `batches` yields (uint8 images, labels) batches read by worker processes.
    It cannot be indexed: a split of it is read from its start, every epoch."""

    ndim, dtype = 4, torch.uint8

    def __init__(self, shards: list[str], count: int, shape: tuple[int, int, int],
                 samples: Callable, buffer: int, workers: int | None, exact: bool,
                 device: torch.device | str = "cpu"):
        self.shards, self.count, self.image_shape = list(shards), count, tuple(shape)
        self.samples, self.buffer, self.workers = samples, buffer, workers
        self.exact = exact  # count is one pass over the shards (not dataset.epoch_size)
        self.device = torch.device(device)

    def __len__(self) -> int:
        return self.count

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.count, *self.image_shape)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def to(self, device) -> "ShardStream":
        return ShardStream(self.shards, self.count, self.image_shape, self.samples, self.buffer,
                           self.workers, self.exact, device)

    def limited(self, count: int) -> "ShardStream":
        """The first `count` images of every epoch (smoke subsets)."""
        if count >= self.count:
            return self
        return ShardStream(self.shards, count, self.image_shape, self.samples, self.buffer,
                           self.workers, False, self.device)

    def __getitem__(self, index):
        raise VBenchError("dataset=webdataset streams its train split, which is read in order "
                          "only; the scikit-learn baselines (model=logreg, random_forest) need "
                          "its images by index: fit them on an in-memory dataset (imagefolder, "
                          "csv, hf) of the same images")

    def head(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n images and labels of the shards, in order, read here."""
        got = [], []
        for x, y in self._loader(self.shards, None, n, cycle=False, workers=0):
            got[0].append(x)
            got[1].append(y)
            if sum(len(y) for y in got[1]) >= n:
                break
        if not got[0]:
            return (torch.zeros((0, *self.image_shape), dtype=torch.uint8), 
                    torch.zeros(0, dtype=torch.int64))
        return torch.cat(got[0])[:n].to(self.device), torch.cat(got[1])[:n].to(self.device)

    def batches(self, batch_size: int, count: int, seed: int | None,
                shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """`count` images of this rank in batches of `batch_size` (the last one smaller):
        rank r of w reads shards r, r+w, ... of the epoch's shuffled shard order
        (webdataset.split_by_node's rule), and starts them again if they run out before its
        share when several ranks must take equal steps or the epoch size is given."""
        rank, world = shard
        order = self.shards
        if seed is not None:
            order = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
        mine = order[rank::world]
        if not mine:
            raise VBenchError(f"dataset.urls names {len(order)} train shard(s) for {world} "
                              "processes; each process reads shards of its own: write the "
                              f"data as at least {world} shards")
        workers = cores() if self.workers is None else self.workers
        cycle = world > 1 or not self.exact
        held_x, held_y, held, taken = [], [], 0, 0
        for x, y in self._loader(mine, None if seed is None else seed + rank, batch_size,
                                 cycle, min(workers, len(mine))):
            held_x.append(x)
            held_y.append(y)
            held += len(y)
            while held >= batch_size or (held and taken + held >= count):
                xs, ys = torch.cat(held_x), torch.cat(held_y)
                size = min(batch_size, count - taken)
                yield (xs[:size].to(self.device, non_blocking=True),
                       ys[:size].to(self.device, non_blocking=True))
                taken += size
                held_x, held_y, held = [xs[size:]], [ys[size:]], len(ys) - size
                if taken >= count:
                    return
        if taken < count:
            raise VBenchError(f"the train shards gave {taken} images this epoch but {count} "
                              "were counted before the run: they changed while it ran; start "
                              "it again")

    def _loader(self, shards: list[str], seed: int | None, chunk: int, cycle: bool,
                workers: int):
        reader = _Reader(shards, self.samples, seed, self.buffer, chunk, cycle)
        loader = torch.utils.data.DataLoader(reader, batch_size=None, num_workers=workers,
                                             pin_memory=self.is_cuda,
                                             generator=torch.Generator())
        for item in loader:
            if isinstance(item, _Unreadable):
                raise VBenchError(item.message)
            yield item
