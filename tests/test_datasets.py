"""Every on-disk dataset, from tiny files written here in the real formats: decoding, real
training runs, the missing/damaged-data errors, the decoded-array cache, normalization and
augmentation."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import make_cfg
from helpers.formats import (
    CIFAR10_NAMES,
    write_cifar10,
    write_cifar100,
    write_idx,
    write_imagefolder,
    write_mnist,
    write_svhn,
)
from vbench.core.errors import VBenchError
from vbench.data import idx, load_data
from vbench.data.augment import build_augment, random_crop, random_flip, random_rotate
from vbench.data.cifar import read_cifar10, read_cifar100
from vbench.data.idx import read_fashion_mnist, read_mnist
from vbench.data.svhn import read_svhn
from vbench.training.loop import StepRecipe, train_one_epoch
from vbench.training.run import run

CPU = torch.device("cpu")


def load(*overrides: str):
    return load_data(make_cfg(*overrides).dataset, CPU)


# ----- decoding: what was written is what is read ------------------------------------------

DIGITS = [str(d) for d in range(10)]
READERS = {  # case -> (writer, reader, class names)
    "mnist": (lambda r: write_mnist(r, gz=True), read_mnist, DIGITS),
    "mnist_plain": (lambda r: write_mnist(r, gz=False), read_mnist, DIGITS),
    "fashion_mnist": (lambda r: write_mnist(r, "FashionMNIST", gz=False), read_fashion_mnist,
                      idx.FASHION_CLASSES),
    "cifar10": (write_cifar10, read_cifar10, CIFAR10_NAMES),
    "cifar100": (write_cifar100, read_cifar100, [f"fine{i}" for i in range(100)]),
    "svhn": (write_svhn, read_svhn, DIGITS),
}


@pytest.mark.parametrize("case", READERS)
def test_reader_decodes_exactly_what_was_written(tmp_path, case):
    write, read, classes = READERS[case]
    written = write(tmp_path)
    raw = read(make_cfg(f"dataset={case.removesuffix('_plain')}",
                        f"dataset.root={tmp_path}").dataset)
    for split in ("train", "test"):
        x, y = written[split]
        assert getattr(raw, f"{split}_x").dtype == torch.uint8
        assert torch.equal(getattr(raw, f"{split}_x"), torch.from_numpy(x))
        assert torch.equal(getattr(raw, f"{split}_y"), torch.from_numpy(y.astype(np.int64)))
    assert raw.classes == classes


# ----- real trainings over each option -----------------------------------------------------

RUNS = {  # name -> (writer, val size, more overrides, lowest acceptable test accuracy)
    "mnist": (write_mnist, 50, [], 0.5),
    "fashion_mnist": (lambda r: write_mnist(r, "FashionMNIST"), 50, [], 0.5),
    "cifar10": (write_cifar10, 50, ["dataset.augment=flip_crop"], 0.3),
    "cifar100": (write_cifar100, 100, [], 0.0),  # 2 images per class: it runs, not learns
    "svhn": (write_svhn, 50, ["dataset.augment=rotate"], 0.3),
}  # chance is 0.1 (0.01 for cifar100)


@pytest.mark.parametrize("name", RUNS)
def test_each_dataset_trains_end_to_end(run_vbench, tmp_path, name):
    write, val_size, overrides, min_accuracy = RUNS[name]
    write(tmp_path / "data")
    metrics, _ = run_vbench(f"dataset={name}", f"dataset.root={tmp_path / 'data'}",
                            f"dataset.val_size={val_size}", "model=cnn", "trainer.epochs=1",
                            *overrides)
    assert metrics["status"] == "completed" and metrics["dataset"] == name
    assert metrics["sizes"]["val"] == val_size
    assert list(metrics["per_class_accuracy"]) == metrics["classes"]
    assert metrics["best"]["test"]["accuracy"] >= min_accuracy


def test_augmented_run_evaluates_on_plain_images(run_vbench, tmp_path):
    """The best checkpoint, scored on the un-augmented test split, gives metrics.json's
    numbers exactly: augmentation touched training batches only."""
    from vbench.core.files import load_torch
    from vbench.evaluation.forward import predict
    from vbench.evaluation.metrics import classification_metrics
    from vbench.models import InputSpec, build_model

    write_mnist(tmp_path / "data")
    overrides = ("dataset=mnist", f"dataset.root={tmp_path / 'data'}", "dataset.val_size=50",
                 "dataset.augment=rotate", "model=cnn")
    metrics, run_dir = run_vbench(*overrides, "trainer.epochs=1")
    cfg = make_cfg(*overrides)
    data = load_data(cfg.dataset, CPU)
    model = build_model(cfg.model, InputSpec(data.in_channels, data.image_size, data.num_classes))
    model.load_state_dict(load_torch(run_dir / "checkpoints/best.pt")["model"])
    again = classification_metrics(predict(model, data.test, 1024, None), data.test.y)
    assert again == pytest.approx(metrics["best"]["test"])


# ----- imagefolder -------------------------------------------------------------------------

def test_imagefolder_with_val_and_test_folders(run_vbench, tmp_path):
    write_imagefolder(tmp_path / "photos", splits=("train", "val", "test"), per_class=8)
    metrics, _ = run_vbench("dataset=imagefolder", f"dataset.root={tmp_path / 'photos'}",
                            "dataset.image_size=16", "model=cnn", "trainer.epochs=3")
    assert metrics["classes"] == ["cat", "dog", "frog"]
    assert metrics["sizes"] == {"train": 24, "val": 24, "test": 24}  # val/ used, not split
    assert set(metrics["per_class_accuracy"]) == {"cat", "dog", "frog"}
    assert metrics["best"]["test"]["accuracy"] > 0.6  # chance is 1/3


def test_imagefolder_without_test_says_so(run_vbench, tmp_path, capsys):
    write_imagefolder(tmp_path / "photos", splits=("train",), per_class=10)
    metrics, run_dir = run_vbench("dataset=imagefolder", f"dataset.root={tmp_path / 'photos'}",
                                  "dataset.image_size=12", "dataset.val_size=6",
                                  "trainer.epochs=1")
    assert metrics["status"] == "completed"
    assert metrics["sizes"] == {"train": 24, "val": 6, "test": 0}
    assert metrics["best"]["test"] is None and metrics["final"]["test"] is None
    assert metrics["per_class_accuracy"] is None
    assert json.loads((run_dir / "metrics.json").read_text())["final"]["test"] is None
    assert "no test split" in capsys.readouterr().out


def test_imagefolder_resizes_and_detects_grey(tmp_path):
    write_imagefolder(tmp_path / "grey", grey=True, per_class=4)
    write_imagefolder(tmp_path / "rgb", per_class=4)
    for folder, channels, forced in (("grey", 1, None), ("rgb", 3, None), ("grey", 3, 3)):
        data = load("dataset=imagefolder", f"dataset.root={tmp_path / folder}",
                    "dataset.image_size=10", f"dataset.in_channels={forced or 'null'}",
                    "dataset.val_size=3")
        assert data.train.x.shape[1:] == (channels, 10, 10)


@pytest.mark.parametrize("breakage,message", [
    (lambda root: (root / "train/empty").mkdir(), "class folder .*empty holds no images"),
    (lambda root: [p.unlink() for p in (root / "train/dog").iterdir()] and None,
     "dog holds no images"),
    (lambda root: (root / "val/bird").mkdir(parents=True), r"class folders \['bird'\]"),
    (lambda root: (root / "train/cat/0.png").write_bytes(b"not a png"), r"cannot read .*0\.png"),
])
def test_imagefolder_refuses_bad_folders(tmp_path, breakage, message):
    write_imagefolder(tmp_path, classes=("cat", "dog"), per_class=3)
    breakage(tmp_path)
    with pytest.raises(VBenchError, match=message):
        load("dataset=imagefolder", f"dataset.root={tmp_path}")


def test_imagefolder_refuses_a_single_class(tmp_path):
    write_imagefolder(tmp_path, classes=("cat",), per_class=3)
    with pytest.raises(VBenchError, match=r"1 class folder\(s\) \['cat'\]; .* at least two"):
        load("dataset=imagefolder", f"dataset.root={tmp_path}")


# ----- missing, damaged, downloaded --------------------------------------------------------

MISSING = {
    "mnist": "MNIST/raw for train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]",
    "fashion_mnist": "FashionMNIST/raw for train-images-idx3-ubyte[.gz]",
    "cifar10": "cifar-10-batches-py for data_batch_1, data_batch_2",
    "cifar100": "cifar-100-python for train, test, meta",
    "svhn": "for train_32x32.mat, test_32x32.mat",
    "imagefolder": "for train/",
}


@pytest.mark.parametrize("name", MISSING)
def test_missing_data_is_one_clear_error(tmp_path, name):
    root = tmp_path / "nothing here"
    with pytest.raises(VBenchError) as err:
        run(make_cfg(f"dataset={name}", f"dataset.root={root}"), tmp_path / "run")
    message = str(err.value)
    assert f"dataset={name}: data not found: looked in {root}" in message
    assert MISSING[name] in message and "\n" not in message
    assert ("dataset.download=true" in message) == (name != "imagefolder")
    assert not (tmp_path / "run").exists()  # refused before any work: no run directory


def test_damaged_files_name_the_file(tmp_path):
    write_mnist(tmp_path / "a")
    path = tmp_path / "a/MNIST/raw/train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])  # a truncated download
    with pytest.raises(VBenchError, match=f"cannot read {path} .*damaged"):
        load("dataset=mnist", f"dataset.root={tmp_path / 'a'}")

    write_cifar10(tmp_path / "b")
    path = tmp_path / "b/cifar-10-batches-py/data_batch_3"
    path.write_bytes(b"\x80\x02garbage")
    with pytest.raises(VBenchError, match=f"cannot read {path} .*dataset.download=true"):
        load("dataset=cifar10", f"dataset.root={tmp_path / 'b'}")

    write_mnist(tmp_path / "c", gz=False)
    write_idx(tmp_path / "c/MNIST/raw/t10k-labels-idx1-ubyte", np.zeros(49))
    with pytest.raises(VBenchError, match="test files hold 50 images but 49 labels"):
        load("dataset=mnist", f"dataset.root={tmp_path / 'c'}")


def test_download_flag_calls_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    calls = []

    def fake_mnist(root, train, download):  # stands in for the network: writes the files
        calls.append((root, train, download))
        write_mnist(Path(root), gz=False)

    monkeypatch.setattr(tvd, "MNIST", fake_mnist)
    data = load("dataset=mnist", f"dataset.root={tmp_path}", "dataset.download=true",
                "dataset.val_size=20")
    assert calls == [(str(tmp_path.resolve()), True, True)] and len(data.test) == 50

    def offline(root, train, download):
        raise RuntimeError("Error downloading cifar-10-python.tar.gz")

    monkeypatch.setattr(tvd, "CIFAR10", offline)
    with pytest.raises(VBenchError, match="dataset.download=true failed .*Error downloading"):
        load("dataset=cifar10", f"dataset.root={tmp_path}", "dataset.download=true")


# ----- the decoded-array cache -------------------------------------------------------------

def test_second_load_hits_the_cache_and_a_touched_source_invalidates_it(tmp_path, monkeypatch):
    write_mnist(tmp_path)
    overrides = ("dataset=mnist", f"dataset.root={tmp_path}", "dataset.val_size=20")
    first = load(*overrides)
    assert len(list((tmp_path / ".vbench_cache").glob("mnist-*.pt"))) == 1

    decoded = []
    read_idx = idx.read_idx
    monkeypatch.setattr(idx, "read_idx", lambda path: decoded.append(path) or read_idx(path))
    second = load(*overrides)
    assert decoded == []  # nothing decoded: the arrays came from the cache
    assert torch.equal(first.train.x, second.train.x) and torch.equal(first.test.y, second.test.y)

    source = tmp_path / "MNIST/raw/t10k-labels-idx1-ubyte.gz"
    mtime = source.stat().st_mtime_ns
    os.utime(source, ns=(mtime, mtime + 10**9))  # touched: same bytes, newer time
    load(*overrides)
    assert len(decoded) == 4
    assert len(list((tmp_path / ".vbench_cache").glob("mnist-*.pt"))) == 2


# ----- normalization -----------------------------------------------------------------------

def test_normalization_options(tmp_path):
    write_cifar10(tmp_path)
    base = ("dataset=cifar10", f"dataset.root={tmp_path}", "dataset.val_size=50")
    computed = load(*base)
    assert computed.train.x.dtype == torch.uint8  # normalized per batch, as drawn
    train = computed.train.inputs()
    assert train.mean(dim=(0, 2, 3)).abs().max() < 1e-4  # per channel, on train
    assert (train.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-3

    off = load(*base, "dataset.normalize=false")
    pixels = off.train.inputs()
    assert pixels.min() >= 0 and pixels.max() <= 1 and off.mean == [0.0] * 3

    given = load(*base, "dataset.mean=[0.5,0.4,0.3]", "dataset.std=[0.2,0.25,0.5]")
    mean, std = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.25, 0.5])
    expected = (off.test.inputs() - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    assert torch.allclose(given.test.inputs(), expected, atol=1e-5)
    batched = torch.cat([x for x, _ in given.test.batches(7)])  # per batch == all at once
    assert torch.equal(batched, given.test.inputs())


@pytest.mark.parametrize("overrides,message", [
    (["dataset.mean=[0.5]", "dataset.std=[0.2]"], r"one value per image channel \(3\)"),
    (["dataset.mean=[0.5,0.5,0.5]"], r"and dataset.std=null go together: give both"),
    (["dataset.mean=[0,0,0]", "dataset.std=[1,0,1]"], "each item a number > 0"),
    (["dataset.augment=mixup"],
     "dataset.augment='mixup' is not valid; it must be one of: none, flip_crop, rotate"),
])
def test_bad_normalization_or_augment_is_refused(tmp_path, overrides, message):
    """The schema refuses what it can tell from the config; the loader what needs the data."""
    from vbench.core.schema import validate

    write_cifar10(tmp_path)
    with pytest.raises(VBenchError, match=message):
        cfg = make_cfg("dataset=cifar10", f"dataset.root={tmp_path}", "dataset.val_size=50",
                       *overrides)
        validate(cfg)
        load_data(cfg.dataset, CPU)


# ----- augmentation ------------------------------------------------------------------------

def generator(seed=0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kind", ["flip_crop", "rotate"])
def test_augment_keeps_shape_changes_pixels_and_is_seeded(kind):
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)  # raw batches, as drawn
    augment = build_augment(kind)
    out = augment(x, generator(0))
    assert out.shape == x.shape
    assert out.dtype == (torch.uint8 if kind == "flip_crop" else torch.float32)
    assert not torch.equal(out.float(), x.float())
    assert torch.equal(out, augment(x, generator(0)))
    assert not torch.equal(out, augment(x, generator(1)))
    assert build_augment("none") is None


def test_flip_crop_is_a_shifted_window_of_the_padded_image():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6) + 1
    out = random_crop(x, 2, generator(3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), value=0.0)  # black
    for image, source in zip(out, padded):
        windows = source.unfold(1, 6, 1).unfold(2, 6, 1)  # (1, 5, 5, 6, 6): every offset
        assert any(torch.equal(image[0], windows[0, i, j]) for i in range(5) for j in range(5))
    flipped = random_flip(x, generator(0))
    assert all(torch.equal(f, a) or torch.equal(f, a.flip(2)) for f, a in zip(flipped, x))
    assert (flipped == x.flip(3)).all(dim=(1, 2, 3)).any()  # some images are mirrored


def test_rotation_turns_the_image_and_fills_corners_with_black():
    x = torch.full((256, 1, 28, 28), 100, dtype=torch.uint8)
    x[:, :, :, 14:] = 255  # right half bright: a rotation tilts the edge
    out = random_rotate(x, 10.0, generator(0))
    assert (out[:, 0, 13:15, 10] - 100).abs().max() < 1e-3  # the centre row keeps its halves
    corners = out[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners < 100).float().mean() > 0.5  # rotated-in corners are (partly) black


def test_training_loop_applies_augment_to_every_batch():
    split = load("dataset=digits").train
    seen = []

    def spy(x, g):
        seen.append(x.shape)
        return x

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    recipe = StepRecipe(optimizer, scaler, None, None, augment=spy)
    train_one_epoch(model, split, 256, recipe, generator())
    assert len(seen) == len(list(split.batches(256))) and seen[0] == (256, 1, 8, 8)


def test_augmenting_raw_pixels_equals_augmenting_normalized_images():
    """Flip/crop/rotate before normalization give what they gave after it (black padding
    normalized): the uint8 path changes no numbers beyond float rounding."""
    split = load("dataset=fake", "dataset.train_size=64").train
    for kind in ("flip_crop", "rotate"):
        augment = build_augment(kind)
        raw = split.inputs(augment(split.x, generator(5)))
        black = (-split.mean / split.std).view(1, -1, 1, 1)
        normalized = split.inputs()
        if kind == "flip_crop":  # one generator, drawn flips first then offsets, as augment
            g = generator(5)
            old = random_crop(random_flip(normalized - black, g), 4, g)
        else:
            old = random_rotate(normalized - black, 10.0, generator(5))
        assert torch.allclose(raw, old + black, atol=1e-5)


# ----- defaults that fit any pool -----------------------------------------------------------

def test_the_default_val_split_is_a_share_of_any_pool(tmp_path):
    """2,000 MNIST-format images with subset_per_class=100 (a CI smoke run) and a 2,000-image
    CIFAR folder run with their defaults: val is the standard split's share (5,000 of 60,000;
    5,000 of 50,000), not a count taken from the full dataset."""
    from helpers.formats import write_cifar10, write_mnist

    write_mnist(tmp_path / "m", train=2000, test=100)
    mnist = load("dataset=mnist", f"dataset.root={tmp_path / 'm'}", "dataset.subset_per_class=100")
    assert (len(mnist.train), len(mnist.val)) == (917, 83)  # 1,000 kept: 1,000 * 5/60 -> 83
    write_cifar10(tmp_path / "c", per_batch=400)
    cifar = load("dataset=cifar10", f"dataset.root={tmp_path / 'c'}")
    assert (len(cifar.train), len(cifar.val)) == (1800, 200)


def test_a_val_count_that_cannot_fit_names_one_that_does(tmp_path):
    with pytest.raises(VBenchError, match=r"dataset.val_size=900 gives 900 of 100 images; .*: "
                                          r"use a share such as dataset.val_size=0.1, or a count "
                                          r"from 10 to 90$"):
        load("dataset=fake", "dataset.train_size=100", "dataset.val_size=900")
