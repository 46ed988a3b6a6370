"""SVHN (cropped digits) from its MATLAB files, in torchvision's layout:
`<root>/train_32x32.mat` and `<root>/test_32x32.mat`."""

import numpy as np
import torch

from .registry import RawData, register_dataset
from .source import cached, data_root, download, missing_error, reading

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


@register_dataset("svhn")
def read_svhn(cfg) -> RawData:
    root = data_root(cfg)
    paths = {split: root / name for split, name in FILES.items()}
    if not all(p.is_file() for p in paths.values()) and cfg.download:
        import torchvision.datasets as tvd

        def fetch(root_dir: str) -> None:
            for split in FILES:
                tvd.SVHN(root_dir, split=split, download=True)

        download(cfg, fetch)
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        raise missing_error(cfg, root, missing, "put train_32x32.mat and test_32x32.mat there")

    def decode() -> RawData:
        (train_x, train_y), (test_x, test_y) = (_read_mat(paths[s], cfg) for s in FILES)
        return RawData(train_x, train_y, test_x, test_y, classes=[str(d) for d in range(10)])

    return cached(cfg, list(paths.values()), {}, decode)


def _read_mat(path, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    from scipy.io import loadmat

    with reading(path, cfg):
        mat = loadmat(path)
        x = np.ascontiguousarray(np.asarray(mat["X"], dtype=np.uint8).transpose(3, 2, 0, 1))
        y = np.asarray(mat["y"], dtype=np.int64).reshape(-1)
    y[y == 10] = 0  # SVHN labels the digit 0 as 10
    return torch.from_numpy(x), torch.from_numpy(y)
