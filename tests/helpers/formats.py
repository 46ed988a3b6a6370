"""Tiny datasets written in the real on-disk formats (IDX, CIFAR pickles, SVHN .mat, PNG
folders), so readers and whole runs are tested without any download."""

import gzip
import io
import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.io import savemat

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]


def patterns(classes: int, shape: tuple) -> np.ndarray:
    """One smooth, left-right symmetric pattern per class (the same for every split), so that
    flips and small shifts keep an image recognisable."""
    channels = shape[0] if len(shape) == 3 else 1
    coarse = torch.from_numpy(np.random.default_rng(1234).random((classes, channels, 4, 4)))
    smooth = torch.nn.functional.interpolate(coarse, size=shape[-2:], mode="bilinear")
    return ((smooth + smooth.flip(-1)) / 2).numpy().reshape(classes, *shape)


def learnable(n: int, classes: int, shape: tuple, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, *shape) of a class pattern plus noise; labels balanced and shuffled.
    `shape` ends with (H, W)."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % classes)
    x = 0.7 * patterns(classes, shape)[y] + 0.3 * rng.random((n, *shape))
    return (x * 255).astype(np.uint8), y


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder="MNIST", gz=True, train=200, test=50) -> dict:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    written = {}
    for prefix, n, seed in (("train", train, 0), ("t10k", test, 1)):
        x, y = learnable(n, 10, (28, 28), seed)
        suffix = ".gz" if gz else ""
        write_idx(raw / f"{prefix}-images-idx3-ubyte{suffix}", x)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte{suffix}", y)
        written[prefix] = (x[:, None], y)
    return {"train": written["train"], "test": written["t10k"]}


def write_pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the official files are Python 2 pickles


def write_cifar10(root: Path, per_batch=40, test=50) -> dict:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for i in range(1, 6):
        x, y = learnable(per_batch, 10, (3, 32, 32), seed=i)
        write_pickle(folder / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5",
                                                  "data": x.reshape(per_batch, -1),
                                                  "labels": y.tolist()})
        xs.append(x)
        ys.append(y)
    test_x, test_y = learnable(test, 10, (3, 32, 32), seed=0)
    write_pickle(folder / "test_batch", {"data": test_x.reshape(test, -1),
                                         "labels": test_y.tolist()})
    write_pickle(folder / "batches.meta", {"label_names": CIFAR10_NAMES, "num_vis": 3072})
    return {"train": (np.concatenate(xs), np.concatenate(ys)), "test": (test_x, test_y)}


def write_cifar100(root: Path, train=300, test=100) -> dict:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    written = {}
    for split, n, seed in (("train", train, 0), ("test", test, 1)):
        x, y = learnable(n, 100, (3, 32, 32), seed)
        write_pickle(folder / split, {"data": x.reshape(n, -1), "fine_labels": y.tolist(),
                                      "coarse_labels": (y // 5).tolist()})
        written[split] = (x, y)
    write_pickle(folder / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                                   "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return written


def write_svhn(root: Path, train=200, test=50) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, n, seed in (("train", train, 0), ("test", test, 1)):
        x, y = learnable(n, 10, (3, 32, 32), seed)
        # MATLAB layout: X is (H, W, C, N); the digit 0 is labelled 10.
        savemat(root / f"{split}_32x32.mat", {"X": x.transpose(2, 3, 1, 0),
                                              "y": np.where(y == 0, 10, y).reshape(-1, 1)})
        written[split] = (x, y)
    return written


def write_imagefolder(root: Path, splits=("train",), classes=("cat", "dog", "frog"),
                      per_class=10, grey=False) -> None:
    """PNGs of 40x48 pixels (not square, not the target size) in <split>/<class>/."""
    for s, split in enumerate(splits):
        x, y = learnable(per_class * len(classes), len(classes), (1 if grey else 3, 40, 48), s)
        for k, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i, image in enumerate(x[y == k]):
                image = image[0] if grey else image.transpose(1, 2, 0)  # PIL wants (H, W, C)
                Image.fromarray(image).save(root / split / name / f"{i}.png")


def write_manifest(root: Path, classes=("cat", "dog", "frog"), per_class=10, splits=("train",),
                   integers=False, delimiter=",", name="labels.csv") -> Path:
    """Kaggle style: PNGs of 40x48 pixels in root/images/ and a CSV (or TSV) of
    `image,label[,split]` rows, paths relative to the file."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    header = ["image", "label"] + (["split"] if len(splits) > 1 else [])
    lines = [delimiter.join(header)]
    for s, split in enumerate(splits):
        x, y = learnable(per_class * len(classes), len(classes), (3, 40, 48), s)
        for i, (image, label) in enumerate(zip(x, y)):
            path = f"images/{split}_{i}.png"
            Image.fromarray(image.transpose(1, 2, 0)).save(root / path)
            row = [path, str(label) if integers else classes[label]]
            lines.append(delimiter.join(row + ([split] if len(splits) > 1 else [])))
    (root / name).write_text("\n".join(lines) + "\n")
    return root / name


def hf_splits(classes=("cat", "dog", "frog"), per_class=10, splits=("train", "test"),
              size=(3, 16, 16)) -> dict:
    """{split: (uint8 images (n, *size), int labels)} for a Hugging Face dataset."""
    return {split: learnable(per_class * len(classes), len(classes), size, seed)
            for seed, split in enumerate(splits)}


def write_hf(root: Path, data: dict, classes=("cat", "dog", "frog"), how="save_to_disk",
             image_name="img", label_name="label") -> Path:
    """A Hugging Face dataset written with the real library: PIL images cast to the Image
    feature and ClassLabel labels, saved with save_to_disk or as one parquet file per split."""
    import datasets

    parts = {}
    for split, (x, y) in data.items():
        images = [Image.fromarray(i[0] if i.shape[0] == 1 else i.transpose(1, 2, 0)) for i in x]
        ds = datasets.Dataset.from_dict({image_name: images, label_name: [int(v) for v in y]})
        parts[split] = (ds.cast_column(image_name, datasets.Image())
                        .cast_column(label_name, datasets.ClassLabel(names=list(classes))))
    if how == "save_to_disk":
        datasets.DatasetDict(parts).save_to_disk(str(root))
    else:
        (root / "data").mkdir(parents=True)
        for split, ds in parts.items():
            ds.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root


def write_shards(root: Path, x: np.ndarray, y: np.ndarray, shards: int, prefix="train",
                 keys=None) -> list[Path]:
    """WebDataset shards written with the real library's TarWriter: sample i as
    `<key>.png` + `<key>.cls`, spread over `shards` tar files in order."""
    import webdataset

    root.mkdir(parents=True, exist_ok=True)
    paths = [root / f"{prefix}-{k:06d}.tar" for k in range(shards)]
    bounds = np.linspace(0, len(y), shards + 1).astype(int)
    for k, path in enumerate(paths):
        with webdataset.TarWriter(str(path)) as sink:
            for i in range(bounds[k], bounds[k + 1]):
                image = x[i][0] if x.shape[1] == 1 else x[i].transpose(1, 2, 0)
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, format="PNG")
                key = keys[i] if keys is not None else f"{prefix}{i:06d}"
                sink.write({"__key__": key, "png": buffer.getvalue(), "cls": str(int(y[i]))})
    return paths
