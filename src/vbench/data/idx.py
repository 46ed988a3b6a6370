"""MNIST and Fashion-MNIST from their IDX files, in torchvision's layout:
`<root>/MNIST/raw/train-images-idx3-ubyte` (or `.gz`), `t10k-...`, and the same under
`<root>/FashionMNIST/raw/`. Parsed with numpy: no torchvision Dataset, no per-sample PIL."""

import gzip
from pathlib import Path

import numpy as np
import torch

from .registry import RawData, register_dataset
from .source import cached, data_root, download, missing_error, reading

FILES = {  # split -> (images, labels)
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]


@register_dataset("mnist")
def read_mnist(cfg) -> RawData:
    return _read(cfg, "MNIST", [str(d) for d in range(10)])


@register_dataset("fashion_mnist")
def read_fashion_mnist(cfg) -> RawData:
    return _read(cfg, "FashionMNIST", FASHION_CLASSES)


def _read(cfg, folder: str, classes: list[str]) -> RawData:
    raw = data_root(cfg) / folder / "raw"
    paths = _find(raw)
    if None in paths.values() and cfg.download:
        import torchvision.datasets as tvd

        download(cfg, lambda root: getattr(tvd, folder)(root, train=True, download=True))
        paths = _find(raw)
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        raise missing_error(cfg, raw, [f"{name}[.gz]" for name in missing],
                            "put the four IDX files (gzipped or not) there")

    def decode() -> RawData:
        x = {split: _images(paths[images], cfg) for split, (images, _) in FILES.items()}
        y = {split: _labels(paths[labels], cfg) for split, (_, labels) in FILES.items()}
        return RawData(x["train"], y["train"], x["test"], y["test"], classes=classes)

    return cached(cfg, list(paths.values()), {}, decode)


def _find(raw: Path) -> dict[str, Path | None]:
    """Each expected file, plain or gzipped (plain wins: it is what torchvision extracts)."""
    found = {}
    for name in (name for pair in FILES.values() for name in pair):
        candidates = [raw / name, raw / f"{name}.gz"]
        found[name] = next((p for p in candidates if p.is_file()), None)
    return found


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (http://yann.lecun.com/exdb/mnist/): magic 0x0000 0x08 ndim, big-endian
    int32 sizes, then unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise ValueError("not an IDX file of unsigned bytes (bad magic number)")
    ndim = data[3]
    shape = tuple(np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != np.prod(shape):
        raise ValueError(f"header says {shape} but the file holds {body.size} values")
    return body.reshape(shape)


def _images(path: Path, cfg) -> torch.Tensor:
    with reading(path, cfg):
        images = read_idx(path)
        if images.ndim != 3:
            raise ValueError(f"expected images (N, H, W), found shape {images.shape}")
    return torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, H, W)


def _labels(path: Path, cfg) -> torch.Tensor:
    with reading(path, cfg):
        labels = read_idx(path)
        if labels.ndim != 1:
            raise ValueError(f"expected labels (N,), found shape {labels.shape}")
    return torch.from_numpy(labels.astype(np.int64))
