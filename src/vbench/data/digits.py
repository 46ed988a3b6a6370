"""scikit-learn's bundled 8x8 digits: the offline default dataset."""

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from ..core.errors import VBenchError
from .registry import RawData, register_dataset
from .splits import stratified_split


@register_dataset("digits")
def read_digits(cfg) -> RawData:
    with gzip.open(_digits_file(), "rt") as f:
        table = np.loadtxt(f, delimiter=",")  # as load_digits reads it
    # Pixels are counts 0..16; scale to the 0..255 range every other reader returns.
    images = np.rint(table[:, :-1].reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)
    x = torch.from_numpy(images).unsqueeze(1)  # (1797, 1, 8, 8)
    y = torch.from_numpy(table[:, -1].astype(np.int64))
    # Digits ships no test split: hold one out, stratified and seeded, before anything else.
    train_idx, test_idx = stratified_split(y, cfg.test_size, cfg.split_seed, "dataset.test_size")
    return RawData(x[train_idx], y[train_idx], x[test_idx], y[test_idx],
                   classes=[str(d) for d in range(10)])


def _digits_file() -> Path:
    """sklearn/datasets/data/digits.csv.gz, found without importing scikit-learn (1.2 s)."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.submodule_search_locations[0]) if spec else None
    if path is None or not (path / "datasets/data/digits.csv.gz").is_file():
        raise VBenchError("dataset=digits reads scikit-learn's bundled digits; install "
                          "scikit-learn (pip install scikit-learn) or pick another dataset")
    return path / "datasets/data/digits.csv.gz"
