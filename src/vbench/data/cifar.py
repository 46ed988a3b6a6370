"""CIFAR-10 and CIFAR-100 from the "python version" pickles, in torchvision's layout:
`<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}` and
`<root>/cifar-100-python/{train, test, meta}`.

The batches are read directly rather than through torchvision's CIFAR classes: those verify
the MD5 sums of the official files on every load (slow, and no small test file passes), and
then convert images one by one.
"""

import pickle
from pathlib import Path

import numpy as np
import torch

from ..core.errors import VBenchError
from .registry import RawData, register_dataset
from .source import cached, data_root, download, missing_error, reading

CIFAR10 = {"folder": "cifar-10-batches-py", "tv_class": "CIFAR10",
           "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
           "meta": "batches.meta", "names": "label_names", "labels": "labels"}
CIFAR100 = {"folder": "cifar-100-python", "tv_class": "CIFAR100",
            "train": ["train"], "test": ["test"],
            "meta": "meta", "names": "fine_label_names", "labels": "fine_labels"}


@register_dataset("cifar10")
def read_cifar10(cfg) -> RawData:
    return _read(cfg, CIFAR10)


@register_dataset("cifar100")
def read_cifar100(cfg) -> RawData:
    return _read(cfg, CIFAR100)


def _read(cfg, layout: dict) -> RawData:
    folder = data_root(cfg) / layout["folder"]
    names = [*layout["train"], *layout["test"], layout["meta"]]
    if not all((folder / n).is_file() for n in names) and cfg.download:
        import torchvision.datasets as tvd

        fetch = getattr(tvd, layout["tv_class"])
        download(cfg, lambda root: fetch(root, train=True, download=True))
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise missing_error(cfg, folder, missing, f"unpack the python version of the dataset "
                                                  f"({layout['folder']}/) into {folder.parent}")

    def decode() -> RawData:
        train_x, train_y = _batches([folder / n for n in layout["train"]], layout["labels"], cfg)
        test_x, test_y = _batches([folder / n for n in layout["test"]], layout["labels"], cfg)
        meta = folder / layout["meta"]
        with reading(meta, cfg):
            classes = [str(c) for c in _unpickle(meta)[layout["names"]]]
        return RawData(train_x, train_y, test_x, test_y, classes=classes)

    return cached(cfg, [folder / n for n in names], {}, decode)


# Everything the official batch and meta files (Python 2 pickles) and pickles of the same data
# written by Python 3 (bytes as _codecs.encode) hold: dicts, lists, strings, ints and numpy
# arrays. A pickle may name any other callable and have it called while loading; this reader
# refuses every name outside this list, so a crafted file cannot run code.
_CIFAR_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_GLOBALS:
            raise _Foreign(f"it names {module}.{name}, which no CIFAR file holds")
        return super().find_class(module, name)


class _Foreign(pickle.UnpicklingError):
    """A pickle that is no CIFAR file (a damaged one raises pickle's own errors)."""


def _unpickle(path: Path) -> dict:
    # latin1 maps the Python 2 byte strings of the official files losslessly.
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="latin1").load()
        if not isinstance(batch, dict):
            raise _Foreign(f"it holds a {type(batch).__name__}, not a dict")
    except _Foreign as e:
        raise VBenchError(f"{path} is not a CIFAR batch file: {e}; replace it with the "
                          "official file") from None
    return batch


def _batches(paths: list[Path], label_key: str, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate batch files; each holds `data` (N, 3072) uint8 rows in RGB-plane order."""
    xs, ys = [], []
    for path in paths:
        with reading(path, cfg):
            batch = _unpickle(path)
            xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[label_key], dtype=np.int64))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))
