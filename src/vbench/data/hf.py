"""Hugging Face datasets (`dataset=hf dataset.path=...`): a `save_to_disk` folder, a folder of
parquet/arrow files, or a hub id already in the local HF cache, as `datasets.load_dataset`
(course notebooks' `load_dataset("mnist")`, `"cifar10"`, `"beans"`) leaves it there.

Nothing is downloaded unless `dataset.download=true`: the load runs with datasets' offline
switch on, so a hub id that is not cached is one line naming where it looked. The image column
is the one of Image feature type (or named), the label column the ClassLabel one (or named),
whose names are the classes. The dataset's train / validation / test splits are vbench's (no
validation: val is split from train, as for every dataset). Every image is decoded once with
imagefolder's decoder (centre-crop, resize, grey or RGB) and the uint8 arrays are cached under
`<root>/.vbench_cache/`, keyed by the splits' fingerprints: datasets' own identity of their
contents and of every transform applied to them.
"""

import contextlib
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..core.errors import VBenchError
from .imagefolder import GREY_MODES, fit_image
from .registry import RawData, register_dataset
from .source import cached, reading

SPLITS = {"train": "train", "validation": "val", "valid": "val", "val": "val", "dev": "val",
          "test": "test"}
IMAGE_NAMES = ("image", "img")
LABEL_NAMES = ("label", "labels")
FIX = "fix or drop that row of the dataset"


def import_datasets():
    try:
        import datasets
    except ImportError:
        raise VBenchError('dataset=hf needs the datasets library: pip install -e ".[hf]" (or '
                          'pip install "vbench[hf]")') from None
    return datasets


@register_dataset("hf")
def read_hf(cfg) -> RawData:
    if cfg.path is None:
        raise VBenchError("dataset=hf needs dataset.path: a save_to_disk folder, a folder of "
                          "parquet/arrow files, or a hub id in the local cache (dataset.path="
                          "beans)")
    datasets = import_datasets()
    splits = _splits(_load(cfg, datasets), cfg)
    features = splits["train"].features
    image_col = _column(cfg.image_column, "image_column", features, datasets.Image, IMAGE_NAMES,
                        "an Image")
    label_col = _column(cfg.label_column, "label_column", features, datasets.ClassLabel,
                        LABEL_NAMES, "a ClassLabel")
    for name, split in splits.items():
        for column in (image_col, label_col):
            if column not in split.column_names:
                raise VBenchError(f"dataset={cfg.name}: the {name} split of {cfg.path} has no "
                                  f"column {column!r}; its columns: {', '.join(split.column_names)}")
    classes, labels = _labels(cfg, splits, label_col, datasets.ClassLabel)
    options = {"fingerprints": {name: s._fingerprint for name, s in splits.items()},
               "columns": [image_col, label_col], "image_size": cfg.image_size,
               "in_channels": cfg.in_channels, "path": cfg.path, "subset": cfg.subset}

    def decode() -> RawData:
        images = {name: _images(split, image_col, datasets.Image) for name, split in splits.items()}
        size = cfg.image_size or _first_size(images["train"], cfg)
        channels = cfg.in_channels or _auto_channels(images["train"], cfg)
        x = {name: _decode(items, size, channels, cfg, name) for name, items in images.items()}
        return RawData(x["train"], labels["train"], x.get("test"), labels.get("test"), classes,
                       val_x=x.get("val"), val_y=labels.get("val"))

    return cached(cfg, [], options, decode)


def _load(cfg, datasets):
    """The dataset or DatasetDict at `dataset.path`, offline unless dataset.download."""
    folder = Path(str(cfg.path)).expanduser()
    if folder.is_dir() and any((folder / f).is_file()
                               for f in ("dataset_dict.json", "state.json")):
        with _failing(cfg, folder):
            return datasets.load_from_disk(str(folder.resolve()))
    looks_like_path = str(cfg.path).startswith(("/", ".", "~")) or str(cfg.path).count("/") > 1
    if not folder.is_dir() and looks_like_path:
        raise VBenchError(f"dataset={cfg.name}: data not found: {folder.resolve()} does not "
                          "exist; dataset.path is a save_to_disk folder, a folder of parquet/"
                          "arrow files, or a hub id (e.g. beans)")
    source = str(folder.resolve()) if folder.is_dir() else str(cfg.path)
    with _offline(not cfg.download, datasets), _failing(cfg, None):
        return datasets.load_dataset(source, cfg.subset)


@contextlib.contextmanager
def _offline(on: bool, datasets):
    """datasets' and huggingface_hub's offline switches (HF_DATASETS_OFFLINE, HF_HUB_OFFLINE)
    for the length of a load: they are read at import, so they are set on the modules."""
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    if on:
        datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


@contextlib.contextmanager
def _failing(cfg, folder: Path | None):
    """Whatever datasets raises for a load becomes one line: the folder, or the hub id and
    where the cache was looked for."""
    try:
        yield
    except VBenchError:
        raise
    except Exception as e:  # noqa: BLE001 - datasets, pyarrow and fsspec raise many types
        why = " ".join(f"{type(e).__name__}: {e}".split())[:200]
        if folder is not None:
            raise VBenchError(f"dataset={cfg.name}: cannot load {folder} ({why}); it is not a "
                              "datasets save_to_disk folder it can read: save it again") from None
        if cfg.download:
            raise VBenchError(f"dataset={cfg.name}: dataset.download=true failed for "
                              f"dataset.path={cfg.path!r} ({why})") from None
        import datasets

        raise VBenchError(f"dataset={cfg.name}: dataset.path={cfg.path!r} is not a folder and "
                          f"not in the local Hugging Face cache (looked in "
                          f"{datasets.config.HF_DATASETS_CACHE}; {why}); run once with "
                          "dataset.download=true (needs a network), or give a save_to_disk "
                          "folder") from None


def _splits(loaded, cfg) -> dict:
    """{vbench split: datasets.Dataset}: train, and val and test where the dataset has them."""
    if not hasattr(loaded, "keys"):  # one Dataset: the training pool
        return {"train": loaded}
    splits = {}
    for name in loaded:
        ours = SPLITS.get(name.lower())
        if ours is not None and ours not in splits:
            splits[ours] = loaded[name]
    if "train" not in splits:
        raise VBenchError(f"dataset={cfg.name}: {cfg.path} has no train split (its splits: "
                          f"{', '.join(loaded)}); vbench trains on the one named train")
    return splits


def _column(chosen: str | None, key: str, features, kind: type, names: tuple, what: str) -> str:
    """The column `dataset.<key>` names, else the one of feature type `kind`, else the first
    of `names` among the columns."""
    if chosen is not None:
        if chosen not in features:
            raise VBenchError(f"dataset.{key}={chosen!r}: the dataset has no such column; its "
                              f"columns: {', '.join(features)}")
        return chosen
    typed = [name for name, feature in features.items() if isinstance(feature, kind)]
    if len(typed) == 1:
        return typed[0]
    found = next((name for name in names if name in features), None)
    if found is None:
        why = (f"{len(typed)} columns are ({', '.join(typed)})" if typed else
               f"none of its columns ({', '.join(features)}) is {what} feature or named "
               f"{' or '.join(names)}")
        raise VBenchError(f"dataset.{key}: {why}; name the column with dataset.{key}=<column>")
    return found


def _labels(cfg, splits: dict, column: str, class_label: type):
    """(class names, {split: int64 labels}): ClassLabel's names, integer labels 0..max, or
    the sorted string labels of train; an unknown label is one line naming its row."""
    feature = splits["train"].features[column]
    values = {name: split.data.column(column).to_pylist() for name, split in splits.items()}
    if isinstance(feature, class_label):
        classes = list(feature.names)
    elif all(isinstance(v, (int, np.integer)) for vs in values.values() for v in vs):
        classes = [str(i) for i in range(max(max(vs, default=0) for vs in values.values()) + 1)]
    else:
        classes = sorted({str(v) for v in values["train"]})
    if len(classes) < 2:
        raise VBenchError(f"dataset={cfg.name}: column {column!r} has {len(classes)} class(es) "
                          f"{classes}; a classifier needs at least two")
    lookup = {name: i for i, name in enumerate(classes)}
    out = {}
    for name, vs in values.items():
        labels = []
        for row, v in enumerate(vs):
            label = v if isinstance(v, (int, np.integer)) else lookup.get(str(v), -1)
            if not 0 <= label < len(classes):
                raise VBenchError(f"dataset={cfg.name}: {cfg.path} [{name}] row {row}: "
                                  f"{column}={v!r} is not one of the {len(classes)} classes; "
                                  f"fix the row or drop it (dataset.label_column picks the "
                                  "column)")
            labels.append(int(label))
        out[name] = torch.tensor(labels, dtype=torch.int64)
    return classes, out


def _images(split, column: str, image_type: type) -> list:
    """The column's images, undecoded: {"bytes", "path"} of an Image feature, else arrays."""
    if isinstance(split.features[column], image_type):
        return split.cast_column(column, image_type(decode=False)).data.column(column).to_pylist()
    return list(split.with_format("numpy")[column])


def _open(item) -> Image.Image:
    if isinstance(item, dict):  # an Image feature's stored file
        return Image.open(io.BytesIO(item["bytes"]) if item.get("bytes") else item["path"])
    array = np.asarray(item)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)  # CHW -> HWC
    return Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[-1] == 1
                           else array)


def _first_size(items: list, cfg) -> int:
    with reading(Path(f"{cfg.path} [train] row 0"), cfg, fix=FIX):
        return min(_open(items[0]).size)


def _auto_channels(items: list, cfg) -> int:
    """1 when every train image is grey, else 3 (headers only for encoded images)."""
    for row, item in enumerate(items):
        with reading(Path(f"{cfg.path} [train] row {row}"), cfg, fix=FIX):
            if _open(item).mode not in GREY_MODES:
                return 3
    return 1


def _decode(items: list, size: int, channels: int, cfg, split: str) -> torch.Tensor:
    def one(row: int) -> np.ndarray:
        with reading(Path(f"{cfg.path} [{split}] row {row}"), cfg, fix=FIX):
            return fit_image(_open(items[row]), size, channels)

    if not items:
        return torch.zeros((0, channels, size, size), dtype=torch.uint8)
    with ThreadPoolExecutor() as pool:  # PIL releases the GIL while decoding
        images = np.stack(list(pool.map(one, range(len(items)))))
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


