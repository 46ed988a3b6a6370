"""Data where users keep it: CSV manifests, Hugging Face datasets and WebDataset shards, each
written here with the real library (csv, `datasets`, `webdataset`), read by real runs; and
every bad input a user can give them: one line naming it, no run directory left."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import make_cfg, start_paused
from helpers.formats import hf_splits, learnable, write_hf, write_manifest, write_shards
from vbench.core.errors import VBenchError
from vbench.data import load_data
from vbench.training.run import run

datasets = pytest.importorskip("datasets")
webdataset = pytest.importorskip("webdataset")

CPU = torch.device("cpu")
VBENCH = Path(sys.executable).with_name("vbench")


@pytest.fixture(autouse=True)
def hf_cache(tmp_path, monkeypatch):
    """datasets' own cache (load_dataset of a parquet folder writes arrow files there) under
    tmp_path, never the user's ~/.cache; and no progress bars in the test output."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache))
    datasets.disable_progress_bars()
    return cache


def load(*overrides: str):
    return load_data(make_cfg(*overrides).dataset, CPU)


def refused(tmp_path, *overrides: str) -> str:
    """The one-line error of a run of `overrides`, which leaves no run directory."""
    with pytest.raises(VBenchError) as err:
        run(make_cfg(*overrides), tmp_path / "run")
    message = str(err.value)
    assert "\n" not in message
    assert not (tmp_path / "run").exists()
    return message


# ----- CSV manifests -----------------------------------------------------------------------

def test_csv_manifest_with_a_split_column_trains(run_vbench, tmp_path):
    file = write_manifest(tmp_path / "kaggle", splits=("train", "val", "test"), per_class=8)
    metrics, _ = run_vbench("dataset=csv", f"dataset.file={file}", "dataset.image_size=16",
                            "model=cnn", "trainer.epochs=3")
    assert metrics["status"] == "completed" and metrics["dataset"] == "csv"
    assert metrics["classes"] == ["cat", "dog", "frog"]
    assert metrics["sizes"] == {"train": 24, "val": 24, "test": 24}  # the split column's rows
    assert metrics["best"]["test"]["accuracy"] > 0.6  # chance is 1/3


def test_csv_decodes_as_imagefolder_and_reads_tsv_with_integer_labels(tmp_path):
    """The same PNGs through a manifest and through ImageFolder give the same tensors; a TSV
    of integer labels takes its names from dataset.classes, or 0..max without them."""
    from helpers.formats import write_imagefolder

    write_imagefolder(tmp_path / "folder", per_class=4)
    rows = ["path\tclass"] + [f"folder/train/{name}/{i}.png\t{k}"
                              for k, name in enumerate(("cat", "dog", "frog")) for i in range(4)]
    (tmp_path / "labels.tsv").write_text("\n".join(rows) + "\n")
    base = ("dataset.image_size=10", "dataset.val_size=3")
    folder = load("dataset=imagefolder", f"dataset.root={tmp_path / 'folder'}", *base)
    manifest = load("dataset=csv", f"dataset.file={tmp_path / 'labels.tsv'}",
                    "dataset.classes=[cat,dog,frog]", *base)
    assert manifest.classes == folder.classes == ["cat", "dog", "frog"]
    for split in ("train", "val"):
        assert torch.equal(getattr(manifest, split).x, getattr(folder, split).x)
        assert torch.equal(getattr(manifest, split).y, getattr(folder, split).y)
    numbered = load("dataset=csv", f"dataset.file={tmp_path / 'labels.tsv'}", *base)
    assert numbered.classes == ["0", "1", "2"]
    assert torch.equal(numbered.train.y, folder.train.y)


def test_csv_streams_the_same_images_when_they_do_not_fit(tmp_path):
    file = write_manifest(tmp_path, per_class=6)
    base = ("dataset=csv", f"dataset.file={file}", "dataset.image_size=12",
            "dataset.num_workers=0")
    memory, streamed = load(*base, "dataset.in_memory=true"), load(*base, "dataset.in_memory=false")
    assert streamed.train.streamed and not streamed.in_memory
    assert torch.equal(streamed.train.uint8(), memory.train.x)
    assert streamed.mean == pytest.approx(memory.mean)


def _csv_breakages():
    def unknown_val_label(root):
        file = root / "labels.csv"
        file.write_text(file.read_text() + "images/train_0.png,wolf,val\n")

    def rewrite(root, old, new):
        file = root / "labels.csv"
        file.write_text(file.read_text().replace(old, new, 1))

    return {  # breakage -> (more overrides, what the line says)
        "missing file": (lambda root: (root / "labels.csv").unlink(), [],
                         (r"dataset=csv: data not found: .*labels\.csv does not exist; set "
                         "dataset.file")),
        "missing column": (lambda root: None, ["dataset.label_column=breed"],
                           (r"dataset.label_column='breed': .*labels\.csv has no such column; "
                           "its columns: image, label, split")),
        "no label column": (lambda root: rewrite(root, "image,label", "image,kind"), [],
                            (r"has no label column \(one of label, class, category, target\); "
                            r"name it with dataset.label_column=<column> \(its columns: image, "
                            "kind, split")),
        "unknown label": (unknown_val_label, [],
                          r"labels\.csv line \d+: label='wolf' is not a class \(cat, dog, frog\)"),
        "missing image": (lambda root: (root / "images/train_3.png").unlink(), [],
                          r"line 5: image .*images/train_3\.png not found; fix the path"),
        "corrupt image": (lambda root: (root / "images/train_2.png").write_bytes(b"not a png"),
                          [], r"dataset=csv: cannot read .*train_2\.png .*remove its row from "),
        "bad split": (lambda root: rewrite(root, ",train\n", ",training\n"), [],
                      r"split='training' is not train, val \(validation, valid\) or test"),
    }


@pytest.mark.parametrize("case", _csv_breakages())
def test_csv_bad_input_is_one_line_and_no_run_directory(tmp_path, case):
    breakage, overrides, message = _csv_breakages()[case]
    file = write_manifest(tmp_path / "data", splits=("train", "test"), per_class=4)
    breakage(tmp_path / "data")
    line = refused(tmp_path, "dataset=csv", f"dataset.file={file}", "dataset.image_size=8",
                   *overrides)
    assert __import__("re").search(message, line), line


# ----- Hugging Face datasets ---------------------------------------------------------------

def test_hf_save_to_disk_folder_trains_with_classlabel_names(run_vbench, tmp_path):
    write_hf(tmp_path / "beans", hf_splits(per_class=12))
    metrics, _ = run_vbench("dataset=hf", f"dataset.path={tmp_path / 'beans'}",
                            f"dataset.root={tmp_path}", "dataset.val_size=6", "model=cnn",
                            "trainer.epochs=3")
    assert metrics["status"] == "completed" and metrics["dataset"] == "hf"
    assert metrics["classes"] == ["cat", "dog", "frog"]  # the ClassLabel's names
    assert metrics["sizes"] == {"train": 30, "val": 6, "test": 36}  # val split from train
    assert metrics["best"]["test"]["accuracy"] > 0.6


def test_hf_parquet_folder_maps_validation_and_decodes_exactly(tmp_path):
    """A folder of parquet files (the hub's layout) with a validation split: the images come
    back pixel for pixel at their own size (image_size null), grey detected."""
    data = hf_splits(splits=("train", "validation", "test"), size=(1, 12, 12))
    write_hf(tmp_path / "mnistish", data, how="parquet")
    loaded = load("dataset=hf", f"dataset.path={tmp_path / 'mnistish'}",
                  f"dataset.root={tmp_path}", "dataset.normalize=false")
    assert loaded.train.x.shape[1:] == (1, 12, 12) and loaded.classes == ["cat", "dog", "frog"]
    for ours, theirs in (("train", "train"), ("val", "validation"), ("test", "test")):
        x, y = data[theirs]
        assert torch.equal(getattr(loaded, ours).x, torch.from_numpy(x))
        assert torch.equal(getattr(loaded, ours).y, torch.from_numpy(y.astype(np.int64)))


def test_hf_arrays_and_string_labels_by_named_columns(tmp_path):
    x, y = learnable(24, 3, (3, 10, 10), 0)
    names = np.array(["ant", "bee", "cow"])[y]
    ds = datasets.Dataset.from_dict({"pixels": x.transpose(0, 2, 3, 1).tolist(),
                                     "species": names.tolist(), "note": ["x"] * 24})
    ds.save_to_disk(str(tmp_path / "arrays"))
    loaded = load("dataset=hf", f"dataset.path={tmp_path / 'arrays'}",
                  f"dataset.root={tmp_path}", "dataset.image_column=pixels",
                  "dataset.label_column=species", "dataset.val_size=6")
    assert loaded.classes == ["ant", "bee", "cow"]
    assert len(loaded.train) == 18 and loaded.test is None
    every = torch.cat([loaded.train.x, loaded.val.x])
    assert sorted(every.flatten(1).sum(1).tolist()) == sorted(
        torch.from_numpy(x).flatten(1).sum(1).tolist())


def test_hf_cache_follows_the_fingerprint(tmp_path, monkeypatch):
    from vbench.data import hf

    write_hf(tmp_path / "ds", hf_splits())
    overrides = ("dataset=hf", f"dataset.path={tmp_path / 'ds'}", f"dataset.root={tmp_path}")
    first = load(*overrides)
    decoded = []
    decode = hf._decode
    monkeypatch.setattr(hf, "_decode", lambda *a: decoded.append(a[-1]) or decode(*a))
    second = load(*overrides)
    assert decoded == [] and torch.equal(first.train.x, second.train.x)  # from the cache
    changed = datasets.load_from_disk(str(tmp_path / "ds"))
    changed["test"] = changed["test"].select(range(20))  # another fingerprint
    changed.save_to_disk(str(tmp_path / "ds2"))
    third = load("dataset=hf", f"dataset.path={tmp_path / 'ds2'}", f"dataset.root={tmp_path}")
    assert decoded == ["train", "test"] and len(third.test) == 20
    assert len(list((tmp_path / ".vbench_cache").glob("hf-*.pt"))) == 2


def cache_as_hub_id(source: Path, cache: Path, hub_id: str) -> None:
    """Put a parquet folder into datasets' cache where `load_dataset(hub_id)` leaves a hub
    dataset (<cache>/<name>/default/0.0.0/<hash>/<name>-<split>.arrow), by loading the folder
    with the real library and renaming what it wrote: no network needed."""
    datasets.load_dataset(str(source))
    built = cache / source.name
    for arrow in built.glob("default/0.0.0/*/*.arrow"):
        arrow.rename(arrow.with_name(arrow.name.replace(source.name, hub_id, 1)))
    for info in built.glob("default/0.0.0/*/dataset_info.json"):
        info.write_text(info.read_text().replace(f'"{source.name}"', f'"{hub_id}"'))
    built.rename(cache / hub_id)


def test_hf_hub_id_in_the_local_cache_trains_offline(run_vbench, tmp_path, hf_cache):
    data = hf_splits(per_class=12, splits=("train", "test"))
    write_hf(tmp_path / "beans-src", data, how="parquet")
    cache_as_hub_id(tmp_path / "beans-src", hf_cache, "beans")
    metrics, _ = run_vbench("dataset=hf", "dataset.path=beans", f"dataset.root={tmp_path}",
                            "dataset.val_size=6", "model=cnn", "trainer.epochs=3")
    assert metrics["status"] == "completed"
    assert metrics["sizes"] == {"train": 30, "val": 6, "test": 36}
    assert metrics["best"]["test"]["accuracy"] > 0.6


def test_hf_hub_id_is_read_offline_from_the_local_cache(tmp_path, monkeypatch):
    """A hub id goes to datasets.load_dataset with its offline switch on; one that is not in
    the cache is one line naming where it looked and dataset.download=true."""
    from huggingface_hub import constants

    seen = []
    real = datasets.load_dataset

    def spy(path, name=None, **kwargs):
        seen.append((path, name, datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE))
        if not datasets.config.HF_HUB_OFFLINE:  # stands in for the network: there is none
            raise ConnectionError(f"Couldn't reach '{path}' on the Hub")
        return real(path, name, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", spy)
    before = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    line = refused(tmp_path, "dataset=hf", "dataset.path=no-such-user/beans",
                   f"dataset.root={tmp_path}")
    assert seen == [("no-such-user/beans", None, True, True)]
    assert (datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE) == before  # put back
    assert ("dataset=hf: dataset.path='no-such-user/beans' is not a folder and not in the "
            f"local Hugging Face cache (looked in {tmp_path / 'hf-cache'}") in line
    assert line.endswith("run once with dataset.download=true (needs a network), or give a "
                         "save_to_disk folder")
    # dataset.download=true leaves datasets' switches as they were: it may go online
    seen.clear()
    line = refused(tmp_path, "dataset=hf", "dataset.path=no-such-user/beans",
                   f"dataset.root={tmp_path}", "dataset.download=true")
    assert seen == [("no-such-user/beans", None, *before)]
    assert line.startswith("dataset=hf: dataset.download=true failed for "
                           "dataset.path='no-such-user/beans' (")


def _hf_breakages():
    def unlabelled(root):
        ds = datasets.load_from_disk(str(root))
        ds["test"] = ds["test"].cast_column("label", datasets.Value("int64")).map(
            lambda row, i: {"label": 7 if i == 4 else row["label"]}, with_indices=True)
        ds.save_to_disk(str(root.with_name("broken")))

    def corrupt(root):
        ds = datasets.load_from_disk(str(root))
        raw = ds["train"].cast_column("img", datasets.Image(decode=False))
        raw = raw.map(lambda row, i: {"img": {"bytes": b"garbage" if i == 2 else
                                              row["img"]["bytes"], "path": None}},
                      with_indices=True)
        ds["train"] = raw.cast_column("img", datasets.Image())
        ds.save_to_disk(str(root.with_name("broken")))

    def renamed(root):
        ds = datasets.load_from_disk(str(root)).rename_column("label", "y")
        ds = ds.cast_column("y", datasets.Value("int64"))
        ds.save_to_disk(str(root.with_name("broken")))

    return {  # breakage -> (dataset.path, more overrides, what the line says)
        "no path": (None, "ds", ["dataset.path=null"], ("dataset=hf needs dataset.path: a "
                    "save_to_disk folder")),
        "missing folder": (None, "./nowhere/ds", [], (r"dataset=hf: data not found: "
                           r".*nowhere/ds does not exist")),
        "missing column": (None, "ds", ["dataset.label_column=fine_label"],
                           (r"dataset.label_column='fine_label': the dataset has no such column; "
                           "its columns: img, label")),
        "no label column": (renamed, "broken", [], (r"dataset.label_column: none of its columns "
                            r"\(img, y\) is a ClassLabel feature or named label or labels; name "
                            "the column")),
        "unknown label": (unlabelled, "broken", [], (r"\[test\] row 4: label=7 is not one of "
                          "the 3 classes")),
        "corrupt image": (corrupt, "broken", [], (r"dataset=hf: cannot read .*\[train\] row 2 "
                          r"\(UnidentifiedImageError")),
    }


@pytest.mark.parametrize("case", _hf_breakages())
def test_hf_bad_input_is_one_line_and_no_run_directory(tmp_path, case):
    breakage, path, overrides, message = _hf_breakages()[case]
    write_hf(tmp_path / "ds", hf_splits(per_class=4))
    if breakage is not None:
        breakage(tmp_path / "ds")
    line = refused(tmp_path, "dataset=hf", f"dataset.path={tmp_path / path}",
                   f"dataset.root={tmp_path}", *overrides)
    assert __import__("re").search(message, line), line


# ----- WebDataset shards -------------------------------------------------------------------

def write_split_shards(root: Path, train_shards=4, n=(240, 60, 60), classes=4, size=16):
    """Train, val and test shards of learnable images; returns their images and labels."""
    out = {}
    for seed, (split, count, shards) in enumerate(
            (("train", n[0], train_shards), ("val", n[1], 1), ("test", n[2], 1))):
        x, y = learnable(count, classes, (3, size, size), seed)
        write_shards(root, x, y, shards, prefix=split)
        out[split] = (x, y)
    return out


def shard_overrides(root: Path, train_shards=4, **more) -> list[str]:
    last = f"{train_shards - 1:06d}"
    return ["dataset=webdataset", f'dataset.urls="{root}/train-{{000000..{last}}}.tar"',
            f"dataset.val_urls={root}/val-000000.tar", f"dataset.test_urls={root}/test-000000.tar",
            "dataset.num_classes=4", "dataset.image_size=16",
            *[f"dataset.{k}={v}" for k, v in more.items()]]


def test_shards_train_as_well_as_the_same_images_in_memory(run_vbench, tmp_path):
    """The same images as shards (streamed by 2 workers, shuffled in a buffer) and as a CSV
    manifest decoded into memory: the same model reaches the same test accuracy."""
    from PIL import Image

    written = write_split_shards(tmp_path / "shards", n=(400, 80, 80))
    rows = ["image,label,split"]
    (tmp_path / "png").mkdir()
    for split, (x, y) in written.items():
        for i, (image, label) in enumerate(zip(x, y)):
            Image.fromarray(image.transpose(1, 2, 0)).save(tmp_path / f"png/{split}{i}.png")
            rows.append(f"png/{split}{i}.png,{label},{split}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    common = ("model=cnn", "trainer.epochs=4", "trainer.batch_size=32")
    streamed, run_dir = run_vbench(*shard_overrides(tmp_path / "shards", num_workers=2,
                                                    shuffle_buffer=100), *common, name="shards")
    memory, _ = run_vbench("dataset=csv", f"dataset.file={tmp_path / 'labels.csv'}",
                           "dataset.image_size=16", *common, name="memory")
    assert streamed["status"] == memory["status"] == "completed"
    assert streamed["data"]["in_memory"] is False and memory["data"]["in_memory"] is True
    assert streamed["sizes"] == memory["sizes"] == {"train": 400, "val": 80, "test": 80}
    assert streamed["data"]["normalization"] == "first 400 train images of the shards"
    assert streamed["best"]["test"]["accuracy"] >= 0.85
    assert abs(streamed["best"]["test"]["accuracy"] - memory["best"]["test"]["accuracy"]) <= 0.05
    history = (run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 5


def ids(images: torch.Tensor) -> list[bytes]:
    """Each image's bytes (pixel scale, uint8): its identity."""
    if images.dtype != torch.uint8:
        images = (images * 255).round().to(torch.uint8)
    return [image.numpy().tobytes() for image in images]


def _read_epoch(split, batch_size=16, seed=0, shard=(0, 1)):
    g = torch.Generator().manual_seed(seed)
    xs, ys = zip(*split.batches(batch_size, g, shard=shard))
    return torch.cat(xs), torch.cat(ys)


def test_every_image_once_per_epoch_across_workers_and_ranks_each_its_own_shards(tmp_path):
    written = write_split_shards(tmp_path, train_shards=6, n=(150, 20, 20))
    x, _ = written["train"]
    every = sorted(ids(torch.from_numpy(x)))
    data = load(*shard_overrides(tmp_path, 6, num_workers=3, shuffle_buffer=50),
                "dataset.normalize=false")
    assert len(data.train) == 150  # counted from the tar headers
    for_each = []
    for seed in (0, 1):
        images, labels = _read_epoch(data.train, seed=seed)
        assert len(labels) == 150
        assert sorted(ids(images)) == every
        for_each.append(labels)
    assert not torch.equal(*for_each)  # a new order each epoch
    assert torch.equal(_read_epoch(data.train, seed=0)[1], for_each[0])  # same seed, same epoch
    # Two ranks: each reads its own shards (none in common) and both take ceil(150 / 2) images.
    ranks = [_read_epoch(data.train, seed=0, shard=(r, 2))[0] for r in range(2)]
    assert [len(r) for r in ranks] == [75, 75]
    seen = [set(ids(r)) for r in ranks]
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 150  # equal shards: exact
    with pytest.raises(VBenchError, match=r"names 6 train shard\(s\) for 7 processes; .* at "
                                          "least 7 shards"):
        _read_epoch(data.train, shard=(6, 7))


def test_val_held_out_of_the_train_shards_by_key(tmp_path):
    write_split_shards(tmp_path, n=(200, 20, 20))
    overrides = ["dataset=webdataset", f'dataset.urls="{tmp_path}/train-{{000000..000003}}.tar"',
                 "dataset.num_classes=4", "dataset.image_size=16", "dataset.val_size=0.2",
                 "dataset.num_workers=0", "dataset.normalize=false"]
    data = load(*overrides)
    assert len(data.train) + len(data.val) == 200 and 20 <= len(data.val) <= 60
    assert data.test is None
    images, _ = _read_epoch(data.train)
    train, val = set(ids(images)), set(ids(data.val.x))
    assert len(images) == len(data.train) and not train & val


def test_an_interrupted_shard_run_resumes_to_the_same_numbers(tmp_path):
    """Killed after epoch 2 and resumed: the epochs' shard orders and buffers come from
    last.pt's generator, so the numbers are those of the run that was not interrupted."""
    write_split_shards(tmp_path / "s", n=(160, 40, 40))
    args = [*shard_overrides(tmp_path / "s", num_workers=2, shuffle_buffer=64), "model=cnn",
            "model.dropout=0.3", "trainer.epochs=4", "trainer.batch_size=16", "eval.plots=[]",
            "trainer.device=cpu", "trainer.precision=32"]
    whole = subprocess.run([str(VBENCH), *args, "hydra.run.dir=whole"], cwd=tmp_path,
                           capture_output=True, text=True, check=False)
    assert whole.returncode == 0, whole.stderr
    with start_paused([str(VBENCH), *args, "hydra.run.dir=killed"], "epoch:2", tmp_path) as paused:
        paused.proc.send_signal(signal.SIGKILL)
        paused.proc.wait()
    resumed = subprocess.run([str(VBENCH), *args, "hydra.run.dir=killed", "trainer.resume=true"],
                             cwd=tmp_path, capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("whole", "killed"))
    for key in ("status", "epochs_run", "best_epoch", "best", "final"):
        assert a[key] == b[key], key


@pytest.mark.slow
def test_two_torchrun_ranks_train_on_uneven_shards(tmp_path):
    """3 shards for 2 ranks: rank 0 reads two, rank 1 one and starts it again, so both take
    the same 100 images an epoch (DDP needs equal steps); the run completes as one job."""
    write_split_shards(tmp_path / "s", train_shards=3, n=(200, 40, 40))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "vbench",
               *shard_overrides(tmp_path / "s", 3, num_workers=1), "model=cnn",
               "trainer.epochs=2", "trainer.batch_size=16", "trainer.device=cpu",
               "trainer.precision=32", "eval.plots=[]", "hydra.run.dir=out"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "out/metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["world_size"] == 2
    assert metrics["sizes"]["train"] == 200 and metrics["best"]["test"]["accuracy"] >= 0.8


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server for tmp_path: shards at http:// URLs without the internet."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.skipif(__import__("shutil").which("curl") is None,
                    reason="webdataset opens http(s) shards with curl")
def test_http_shards_stream_with_an_epoch_size(run_vbench, tmp_path, http_server):
    write_split_shards(tmp_path / "s", n=(120, 24, 24))
    base = f"{http_server}/s"
    overrides = ["dataset=webdataset", f'dataset.urls="{base}/train-{{000000..000003}}.tar"',
                 f"dataset.val_urls={base}/val-000000.tar", "dataset.num_classes=4",
                 "dataset.image_size=16", "dataset.num_workers=2", "model=cnn"]
    metrics, _ = run_vbench(*overrides, "dataset.epoch_size=96", "trainer.epochs=2", name="http")
    assert metrics["status"] == "completed" and metrics["sizes"]["train"] == 96
    line = refused(tmp_path, *overrides, "dataset.epoch_size=96",
                   f"dataset.val_urls={base}/no-such-000000.tar")
    assert line.startswith(f"dataset=webdataset: cannot read shard {base}/no-such-000000.tar (")


def test_the_readme_command_line_quotes_braces_for_hydra(tmp_path):
    write_split_shards(tmp_path / "shards", n=(60, 12, 12))
    command = [str(VBENCH), "dataset=webdataset",
               'dataset.urls="shards/train-{000000..000003}.tar"', "dataset.num_classes=4",
               "dataset.val_urls=shards/val-000000.tar", "dataset.image_size=16",
               "debug=smoke", "hydra.run.dir=out", "eval.plots=[]"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "out/metrics.json").read_text())
    assert metrics["sizes"]["train"] == 40  # debug=smoke: 10 per class, the stream's first 40


def _shard_breakages():
    def corrupt_shard(root):
        (root / "train-000002.tar").write_bytes(b"\x00" * 100 + b"not a tar" * 100)

    def corrupt_image(root):
        import webdataset as wds

        with wds.TarWriter(str(root / "val-000000.tar")) as sink:
            sink.write({"__key__": "bad0", "png": b"not a png", "cls": "1"})

    def label(value, split="val", member="cls"):
        def write(root):
            import webdataset as wds

            x, _ = learnable(1, 4, (3, 16, 16), 0)
            from io import BytesIO

            from PIL import Image

            buffer = BytesIO()
            Image.fromarray(x[0].transpose(1, 2, 0)).save(buffer, format="PNG")
            with wds.TarWriter(str(root / f"{split}-000000.tar")) as sink:
                sink.write({"__key__": "s0", "png": buffer.getvalue(), member: value})
        return write

    return {  # breakage -> (more overrides, what the line says)
        "missing shard": (lambda root: (root / "train-000003.tar").unlink(), [],
                          (r"dataset.urls: shard .*train-000003\.tar not found \(1 of 4 shards "
                          "missing\\); check the pattern")),
        "corrupt shard": (corrupt_shard, [], (r"cannot read shard .*train-000002\.tar "
                          r"\(.*\); it is damaged or not a tar file")),
        "corrupt image": (corrupt_image, [], (r"dataset=webdataset: cannot read .*val-000000\.tar:"
                          r"bad0\.png \(")),
        "unknown label": (label("9"), [], (r"val-000000\.tar sample s0: label '9' is not one of "
                          "the 4 classes")),
        "no label": (label("1", member="txt"), [], (r"sample s0 has no \.cls member; set "
                     "dataset.label_key")),
        "unknown train label": (label("wolf", split="train"), [],
                                r"train-000000\.tar sample s0: label 'wolf' is not one of"),
        "http without epoch_size": (lambda root: None,
                                    ['dataset.urls="https://example.com/train-{0..3}.tar"'],
                                    (r"dataset.urls: https://example.com/train-0\.tar is not a "
                                    "local file, so its images cannot be counted")),
        "a baseline": (lambda root: None, ["model=logreg"],
                       (r"the scikit-learn baselines \(model=logreg, random_forest\) need its "
                       "images by index")),
        "no urls": (lambda root: None, ["dataset.urls=null"],
                    "dataset=webdataset needs the train shards: dataset.urls=<brace pattern>"),
        "no classes": (lambda root: None, ["dataset.num_classes=null"],
                       "dataset=webdataset needs the classes: set dataset.classes"),
        "val count": (lambda root: None, ["dataset.val_urls=null", "dataset.val_size=10"],
                      (r"dataset.val_size=10 is a count, but val is held out of a stream by key "
                      "hash")),
    }


@pytest.mark.parametrize("case", _shard_breakages())
def test_shards_bad_input_is_one_line_and_no_run_directory(tmp_path, case):
    breakage, overrides, message = _shard_breakages()[case]
    write_split_shards(tmp_path / "s", n=(40, 8, 8))
    breakage(tmp_path / "s")
    line = refused(tmp_path, *shard_overrides(tmp_path / "s", num_workers=1), *overrides,
                   "trainer.epochs=1")
    assert __import__("re").search(message, line), line


def test_missing_libraries_name_the_extra(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def without(name, *args, **kwargs):
        if name in ("datasets", "webdataset"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    assert 'pip install -e ".[hf]"' in refused(tmp_path, "dataset=hf", "dataset.path=beans",
                                               f"dataset.root={tmp_path}")
    assert 'pip install -e ".[webdataset]"' in refused(
        tmp_path, "dataset=webdataset", "dataset.urls=x.tar", "dataset.num_classes=2")
