"""The data formats' cost against each library's own idiom: the time to load (vbench: decode
once and cache; again: from the cache) and the time of one epoch of normalized float batches,
for the same N images (32x32 RGB PNGs, 10 classes) as
  - a Hugging Face dataset (save_to_disk): vbench's uint8 tensors against datasets'
    `with_format("torch")` and a DataLoader (the images decoded again every epoch);
  - WebDataset shards: vbench's ShardStream against webdataset's own pipeline
    (`WebDataset(...).shuffle(1000).decode("rgb8").to_tuple(...)` + `WebLoader`);
  - a CSV manifest: vbench's uint8 tensors against a notebook's PIL Dataset over the CSV
    rows and a DataLoader.
Data path only (no model): an epoch is a shuffled pass of batches of 128, normalized per
channel in the main process on one torch thread (on a shared 2-core machine more threads
only wait for each other), with `--workers` loader processes on each side. Epoch times are
the best of `--epochs` epochs (the first includes starting the workers).

    PYTHONPATH=src python benchmarks/data_formats.py [--n 4000] [--workers 2] [--epochs 3]
"""

import argparse
import csv
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

BATCH = 128
MEAN = torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1)
STD = torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1)


def images(n: int, size: int = 32, classes: int = 10):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), np.arange(n) % classes


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_all(root: Path, x: np.ndarray, y: np.ndarray, shards: int = 8) -> None:
    import datasets
    import webdataset as wds

    names = [f"c{i}" for i in range(10)]
    ds = datasets.Dataset.from_dict({"img": [Image.fromarray(i) for i in x],
                                     "label": y.tolist()})
    ds = ds.cast_column("img", datasets.Image()).cast_column("label",
                                                             datasets.ClassLabel(names=names))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(root / "hf"))
    (root / "shards").mkdir()
    bounds = np.linspace(0, len(y), shards + 1).astype(int)
    for k in range(shards):
        with wds.TarWriter(str(root / f"shards/train-{k:06d}.tar")) as sink:
            for i in range(bounds[k], bounds[k + 1]):
                sink.write({"__key__": f"s{i:07d}", "png": png(x[i]), "cls": str(int(y[i]))})
    (root / "csv").mkdir()
    rows = ["image,label"]
    for i, (image, label) in enumerate(zip(x, y)):
        Image.fromarray(image).save(root / f"csv/{i}.png")
        rows.append(f"{i}.png,{names[label]}")
    (root / "csv/labels.csv").write_text("\n".join(rows) + "\n")
    (root / "val").mkdir()
    with wds.TarWriter(str(root / "val/val-000000.tar")) as sink:  # a val split for vbench
        for i in range(100):
            sink.write({"__key__": f"v{i}", "png": png(x[i]), "cls": str(int(y[i]))})


def normalized(x: torch.Tensor) -> torch.Tensor:
    """NHWC or NCHW uint8 -> normalized NCHW float32, as both sides must hand a model."""
    if x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    return (x.float() / 255 - MEAN) / STD


def best_epoch(epoch, epochs: int) -> float:
    times = []
    for e in range(epochs):
        start = time.perf_counter()
        count = epoch(e)
        times.append(time.perf_counter() - start)
        assert count > 0
    return min(times)


# -- vbench ----------------------------------------------------------------------------------


def vbench_side(overrides: list[str], epochs: int) -> tuple[float, float, float]:
    """(first load s: decode and cache, second load s, best epoch s) through load_data."""
    from hydra import compose, initialize_config_module

    from vbench.core.schema import typed
    from vbench.data import load_data

    with initialize_config_module("vbench.conf", version_base="1.3"):
        cfg = typed(compose("config", overrides=["trainer.device=cpu", *overrides]))
    loads = []
    for _ in range(2):
        start = time.perf_counter()
        data = load_data(cfg.dataset, torch.device("cpu"))
        loads.append(time.perf_counter() - start)
    generator = torch.Generator().manual_seed(0)

    def epoch(_):
        return sum(len(y) for _, y in data.train.batches(BATCH, generator))

    return loads[0], loads[1], best_epoch(epoch, epochs)


# -- each library's idiom ----------------------------------------------------------------------


def hf_idiom(root: Path, workers: int, epochs: int) -> tuple[float, float]:
    import datasets

    start = time.perf_counter()
    ds = datasets.load_from_disk(str(root / "hf"))["train"].with_format("torch")
    load_s = time.perf_counter() - start
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=workers)

    def epoch(_):
        return sum(len(normalized(batch["img"])) for batch in loader)

    return load_s, best_epoch(epoch, epochs)


def wds_idiom(root: Path, workers: int, epochs: int) -> tuple[float, float]:
    import webdataset as wds

    urls = sorted(str(p) for p in (root / "shards").glob("*.tar"))
    start = time.perf_counter()
    ds = (wds.WebDataset(urls, shardshuffle=len(urls), empty_check=False).shuffle(1000)
          .decode("rgb8").to_tuple("png", "cls").batched(BATCH))
    loader = wds.WebLoader(ds, batch_size=None, num_workers=workers)
    load_s = time.perf_counter() - start

    def epoch(_):
        return sum(len(normalized(torch.from_numpy(np.asarray(x)))) for x, _ in loader)

    return load_s, best_epoch(epoch, epochs)


class _CsvImages(torch.utils.data.Dataset):
    """A notebook's Dataset over a CSV manifest: PIL opens each image when it is drawn."""

    def __init__(self, file: Path):
        with open(file, newline="") as f:
            rows = list(csv.DictReader(f))
        names = sorted({r["label"] for r in rows})
        self.items = [(file.parent / r["image"], names.index(r["label"])) for r in rows]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        with Image.open(path) as image:
            return torch.from_numpy(np.array(image.convert("RGB"))), label


def csv_idiom(root: Path, workers: int, epochs: int) -> tuple[float, float]:
    start = time.perf_counter()
    ds = _CsvImages(root / "csv/labels.csv")
    load_s = time.perf_counter() - start
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=workers)

    def epoch(_):
        return sum(len(normalized(x)) for x, _ in loader)

    return load_s, best_epoch(epoch, epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        x, y = images(args.n)
        write_all(root, x, y)
        w = f"dataset.num_workers={args.workers}"
        cases = {
            "hf": (["dataset=hf", f"dataset.path={root / 'hf'}", f"dataset.root={root}",
                    "dataset.val_size=100"], hf_idiom,
                   'datasets with_format("torch") + DataLoader'),
            "webdataset": (["dataset=webdataset",
                            f'dataset.urls="{root}/shards/train-{{000000..000007}}.tar"',
                            f"dataset.val_urls={root}/val/val-000000.tar",
                            "dataset.num_classes=10", w], wds_idiom,
                           "WebDataset(...).shuffle(1000).decode + WebLoader"),
            "csv": (["dataset=csv", f"dataset.file={root / 'csv/labels.csv'}",
                     "dataset.val_size=100"], csv_idiom, "PIL Dataset over the CSV + DataLoader"),
        }
        print(f"{args.n} images 32x32 RGB, batch {BATCH}, {args.workers} workers, best of "
              f"{args.epochs} epochs")
        print(f"{'format':<11} {'vbench load s':>13} {'again s':>8} {'epoch s':>8} | "
              f"{'idiom load s':>12} {'epoch s':>8} | {'epoch ratio':>11}  idiom")
        for name, (overrides, idiom, words) in cases.items():
            first, again, epoch_s = vbench_side(overrides, args.epochs)
            idiom_load, idiom_epoch = idiom(root, args.workers, args.epochs)
            print(f"{name:<11} {first:>13.2f} {again:>8.2f} {epoch_s:>8.3f} | "
                  f"{idiom_load:>12.2f} {idiom_epoch:>8.3f} | {epoch_s / idiom_epoch:>11.2f}  "
                  f"{words}", flush=True)


if __name__ == "__main__":
    main()
