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
