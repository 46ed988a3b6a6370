"""scikit-learn baselines run through vbench and score what scikit-learn scores directly."""

import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from helpers import METRIC_KEYS, make_cfg
from vbench.data import load_data


def test_logreg_matches_scikit_learn_fitted_directly(run_vbench):
    metrics, run_dir = run_vbench("model=logreg")
    data = load_data(make_cfg().dataset, torch.device("cpu"))
    direct = LogisticRegression(C=1.0, max_iter=1000).fit(data.train.inputs().flatten(1).numpy(),
                                                           data.train.y.numpy())
    expected = accuracy_score(data.test.y.numpy(), direct.predict(data.test.inputs().flatten(1).numpy()))
    assert metrics["best"]["test"]["accuracy"] == pytest.approx(expected, abs=1e-12)
    assert metrics["best"] == metrics["final"] and metrics["epochs_run"] == 1
    assert METRIC_KEYS <= set(metrics) and metrics["status"] == "completed"
    assert metrics["params"] == {"total": 64 * 10 + 10, "trainable": 64 * 10 + 10}
    assert (run_dir / "plots/confusion.png").exists()


def test_random_forest_on_pixels_counts_its_nodes(run_vbench):
    metrics, _ = run_vbench("model=random_forest", "model.n_estimators=10")
    assert metrics["best"]["test"]["accuracy"] > 0.8  # chance is 0.1
    assert metrics["params"]["total"] == metrics["params"]["trainable"] > 10 * 10


def test_logreg_on_a_frozen_backbone(run_vbench):
    metrics, _ = run_vbench("model=logreg", "model.backbone=resnet18", "dataset=fake",
                            "dataset.image_size=16", "dataset.train_size=200",
                            "dataset.test_size=50")
    probe = 512 * 10 + 10
    assert metrics["params"]["trainable"] == probe
    assert metrics["params"]["total"] == probe + 11_176_512  # resnet18 without its fc
    assert metrics["best"]["test"]["accuracy"] > 0.3  # random features still beat chance (0.1)
