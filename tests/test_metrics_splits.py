"""Splits and metrics are numpy/torch, without importing scikit-learn into a run: they must
give exactly scikit-learn's numbers (same indices, same floats), which these tests check."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score
from sklearn.model_selection import train_test_split

from helpers import make_cfg
from vbench.data.digits import read_digits
from vbench.data.splits import shuffle_split, stratified_split, stratified_subset
from vbench.evaluation.metrics import classification_metrics, per_class_accuracy
from vbench.evaluation.metrics import confusion_matrix as torch_confusion


@pytest.mark.parametrize("seed", range(40))
def test_metrics_equal_sklearn_on_random_logits(seed):
    g = torch.Generator().manual_seed(seed)
    classes = int(torch.randint(2, 15, (1,), generator=g))
    n = int(torch.randint(1, 400, (1,), generator=g))
    y = torch.randint(0, classes, (n,), generator=g)
    y[y == classes - 1] = 0  # the last class never occurs in the labels...
    logits = torch.randn(n, classes, generator=g)
    if seed % 2:  # ...and half the time it is never predicted either
        logits[:, classes - 1] = -1e9
    ours = classification_metrics(logits, y)
    t, p = y.numpy(), logits.argmax(1).numpy()
    assert ours["accuracy"] == accuracy_score(t, p)
    assert ours["macro_f1"] == f1_score(t, p, average="macro", zero_division=0)
    assert ours["weighted_f1"] == f1_score(t, p, average="weighted", zero_division=0)
    names = [str(c) for c in range(classes)]
    expected = recall_score(t, p, labels=np.arange(classes), average=None, zero_division=0)
    assert list(per_class_accuracy(logits, y, names).values()) == expected.tolist()
    assert np.array_equal(torch_confusion(y, logits.argmax(1), classes),
                          confusion_matrix(t, p, labels=np.arange(classes)))


@pytest.mark.parametrize("seed", range(30))
def test_split_draws_sklearns_exact_indices(seed):
    rng = np.random.default_rng(seed)
    classes = int(rng.integers(2, 12))
    labels = rng.integers(0, classes, int(rng.integers(6 * classes, 600)))
    labels[:2 * classes] = np.repeat(np.arange(classes), 2)  # at least 2 per class
    n, held = len(labels), int(rng.integers(classes, len(labels) - classes + 1))
    for train_size, test_size in ((None, held), (held, None)):
        expected = train_test_split(np.arange(n), train_size=train_size, test_size=test_size,
                                    stratify=labels, random_state=seed)
        got = shuffle_split(labels, n - held if train_size is None else held,
                            held if train_size is None else n - held, seed, "k")
        assert all(np.array_equal(a, b) for a, b in zip(expected, got))
    rest, out = stratified_split(torch.from_numpy(labels), held, seed, "k")
    assert np.array_equal(out.numpy(), np.sort(expected_test := train_test_split(
        np.arange(n), test_size=held, stratify=labels, random_state=seed)[1]))
    assert len(rest) + len(expected_test) == n


def test_subset_and_single_image_class():
    y = torch.arange(200) % 5
    keep = stratified_subset(y, 20, 50, seed=1, split="train")
    assert len(keep) == 50 and torch.bincount(y[keep]).tolist() == [10] * 5
    with pytest.raises(Exception, match="single image"):
        shuffle_split(np.array([0, 0, 1, 1, 2]), 3, 2, 0, "dataset.val_size")


def test_digits_read_without_sklearn_equal_load_digits():
    digits = load_digits()
    raw = read_digits(make_cfg().dataset)
    x = torch.cat([raw.train_x, raw.test_x])
    y = torch.cat([raw.train_y, raw.test_y])
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    assert len(y) == len(digits.target) == 1797
    # Same multiset of (image, label) pairs: the split only reorders them.
    pairs = sorted(zip(map(bytes, x.reshape(len(x), -1).numpy()), y.tolist()))
    theirs = sorted(zip(map(bytes, images.reshape(len(images), -1)), digits.target.tolist()))
    assert pairs == theirs


def test_a_run_imports_neither_sklearn_nor_timm_nor_torchvision():
    code = ("import sys, vbench.training.run, vbench.commands.cli;"
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'sklearn', 'scipy', 'timm', 'torchvision', 'matplotlib'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
