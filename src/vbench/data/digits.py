"""scikit-learn's bundled 8x8 digits: the offline default dataset."""

import numpy as np
import torch

from .registry import RawData, register_dataset
from .splits import stratified_split


@register_dataset("digits")
def read_digits(cfg) -> RawData:
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixels are counts 0..16; scale to the 0..255 range every other reader returns.
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    x = torch.from_numpy(images).unsqueeze(1)  # (1797, 1, 8, 8)
    y = torch.from_numpy(digits.target.astype(np.int64))
    # Digits ships no test split: hold one out, stratified and seeded, before anything else.
    train_idx, test_idx = stratified_split(y, cfg.test_size, cfg.split_seed, "dataset.test_size")
    return RawData(x[train_idx], y[train_idx], x[test_idx], y[test_idx],
                   classes=[str(d) for d in range(10)])
