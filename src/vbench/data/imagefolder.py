"""Your own images: `<root>/train/<class>/*.png|jpg|...`, optionally `<root>/val/<class>/...`
and `<root>/test/<class>/...` with the same class folders.

Every image is decoded once with PIL, centre-cropped to a square and resized to
`dataset.image_size`, then kept (and cached) as one uint8 tensor like the other datasets;
or, when the decoded images would not fit (`dataset.in_memory`, stream.py), decoded again for
every batch in DataLoader worker processes.
"""

from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..core.errors import VBenchError, choices_error
from .registry import RawData, register_dataset
from .source import cached, data_root, missing_error, reading
from .stream import FileImages, keeps_in_memory

EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
# What PIL raises for a file that is not (or no longer) an image it can read, or one past its
# size limit (Image.MAX_IMAGE_PIXELS, against decompression bombs).
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
FIX = "fix it or remove it from the folder"  # a damaged image of the user's own folder


@register_dataset("imagefolder")
def read_imagefolder(cfg) -> RawData:
    root = data_root(cfg)
    if cfg.in_channels not in (None, 1, 3):
        raise choices_error("dataset.in_channels", cfg.in_channels, ["null (auto)", 1, 3])
    if not (root / "train").is_dir():
        raise missing_error(cfg, root, ["train/"], "put one folder of images per class in "
                                                   f"{root / 'train'} (optionally val/ and test/ "
                                                   "alike)")
    classes = _classes(root / "train", cfg)
    splits = {name: _listing(root / name, classes, cfg)
              for name in ("train", "val", "test") if (root / name).is_dir()}
    return from_files(cfg, splits, classes, root, FIX)


def from_files(cfg, splits: dict[str, tuple[list[Path], list[int]]], classes: list[str],
               folder: Path, fix: str, sources: tuple[Path, ...] = (),
               options: dict | None = None) -> RawData:
    """The images of `splits` ({split: (paths, labels)}), decoded once into memory and cached
    in `folder`/.vbench_cache, or streamed from their files when they would not fit
    (dataset.in_memory); what every reader of image files shares (imagefolder, csv). `fix`
    says what to do with a damaged image; `sources` (the files the labels come from) and
    `options` (how they were read) join the cache key."""
    paths = [path for paths, _ in splits.values() for path in paths]
    options = {"image_size": cfg.image_size, "in_channels": cfg.in_channels, **(options or {})}
    # The budget check assumes RGB when in_channels is auto: no header read on a cache hit.
    if not keeps_in_memory(cfg, len(paths) * (cfg.in_channels or 3) * cfg.image_size ** 2):
        return _streamed(cfg, splits, classes, fix)

    def decode() -> RawData:
        channels = cfg.in_channels or _auto_channels(splits["train"][0], cfg, fix)
        x = {name: _decode(paths, cfg.image_size, channels, cfg, fix)
             for name, (paths, _) in splits.items()}
        y = {name: torch.tensor(labels, dtype=torch.int64) for name, (_, labels) in splits.items()}
        return RawData(x["train"], y["train"], x.get("test"), y.get("test"), classes=classes,
                       val_x=x.get("val"), val_y=y.get("val"))

    return cached(cfg, [*paths, *sources], options, decode, folder)


def _streamed(cfg, splits: dict, classes: list[str], fix: str) -> RawData:
    """Splits whose images stay in their files, decoded per batch in workers (stream.py)."""
    channels = cfg.in_channels or _auto_channels(splits["train"][0], cfg, fix)
    load = partial(_read, size=cfg.image_size, channels=channels, cfg=cfg, fix=fix)
    x = {name: FileImages(paths, (channels, cfg.image_size, cfg.image_size), load,
                          cfg.num_workers) for name, (paths, _) in splits.items()}
    y = {name: torch.tensor(labels, dtype=torch.int64) for name, (_, labels) in splits.items()}
    return RawData(x["train"], y["train"], x.get("test"), y.get("test"), classes=classes,
                   val_x=x.get("val"), val_y=y.get("val"))


def _classes(train: Path, cfg) -> list[str]:
    """Class names are train/'s sub-folder names, sorted (as torchvision's ImageFolder)."""
    classes = sorted(d.name for d in train.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise VBenchError(f"dataset={cfg.name}: {train} has {len(classes)} class folder(s) "
                          f"{classes}; a classifier needs at least two, one folder per class")
    return classes


def _listing(split_dir: Path, classes: list[str], cfg) -> tuple[list[Path], list[int]]:
    """(image paths, labels) of one split; empty or unknown class folders are refused."""
    folders = sorted(d for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    unknown = [d.name for d in folders if d.name not in classes]
    if unknown:
        raise VBenchError(f"dataset={cfg.name}: {split_dir} has class folders {unknown} that "
                          f"train/ does not have; the classes are {classes}")
    paths, labels = [], []
    for folder in folders:
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS)
        if not images:
            raise VBenchError(f"dataset={cfg.name}: class folder {folder} holds no images "
                              f"({', '.join(EXTENSIONS)}); add images or remove the folder")
        paths += images
        labels += [classes.index(folder.name)] * len(images)
    if not paths:
        raise VBenchError(f"dataset={cfg.name}: {split_dir} holds no class folders; put one "
                          f"folder of images per class in it, or remove it")
    return paths, labels


def _auto_channels(paths: list[Path], cfg, fix: str = FIX) -> int:
    """1 when every training image is greyscale, else 3. Reads headers only."""
    for path in paths:
        with reading(path, cfg, fix=fix), Image.open(path) as image:
            if image.mode not in GREY_MODES:
                return 3
    return 1


def load_image(path: Path, size: int | tuple[int, int], channels: int) -> np.ndarray:
    """One image file as uint8 (height, width, channels): the one decoder of image files, for
    this reader and for vbench-predict. Grey (channels 1) or RGB (3) whatever the file holds;
    centre-cropped to the aspect of `size` (an int: a square) and resized to it, so the aspect
    ratio is not distorted. PIL's errors (UNREADABLE, its size limit included) pass through:
    each caller words them as one line."""
    with Image.open(path) as image:
        return fit_image(image, size, channels)


def fit_image(image: Image.Image, size: int | tuple[int, int], channels: int) -> np.ndarray:
    """A PIL image as load_image gives it: grey or RGB, centre-cropped and resized."""
    height, width = (size, size) if isinstance(size, int) else size
    image = image.convert("L" if channels == 1 else "RGB")
    image = ImageOps.fit(image, (width, height), Image.Resampling.BILINEAR)  # PIL: (w, h)
    return np.asarray(image, dtype=np.uint8).reshape(height, width, channels)


def _read(path: Path, size: int, channels: int, cfg, fix: str = FIX) -> np.ndarray:
    """load_image for this dataset: a failure is one line naming the dataset and the file."""
    with reading(path, cfg, fix=fix):
        return load_image(path, size, channels)


def _decode(paths: list[Path], size: int, channels: int, cfg, fix: str = FIX) -> torch.Tensor:
    # PIL releases the GIL while decoding, so threads decode in parallel.
    with ThreadPoolExecutor() as pool:
        images = np.stack(list(pool.map(lambda p: _read(p, size, channels, cfg, fix), paths)))
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
