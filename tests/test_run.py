"""End-to-end runs over the real config: files, metrics, early stopping, determinism."""

import contextlib
import csv
import json

import pytest
import torch

from helpers import METRIC_KEYS, make_cfg, png_ok
from vbench.core.columns import VAL_LOSS
from vbench.core.files import load_torch
from vbench.data import load_data
from vbench.data.splits import stratified_split
from vbench.evaluation.forward import predict
from vbench.evaluation.metrics import classification_metrics
from vbench.models import InputSpec, build_model
from vbench.training.timing import PHASES

SPLIT_KEYS = {"loss", "accuracy", "macro_f1", "weighted_f1"}


def test_default_run_writes_the_whole_run_directory(run_vbench):
    metrics, run_dir = run_vbench("trainer.epochs=8")

    assert METRIC_KEYS <= set(metrics)
    assert metrics["status"] == "completed"
    assert (metrics["dataset"], metrics["model"], metrics["device"]) == ("digits", "mlp", "cpu")
    assert metrics["epochs_run"] == 8 and 1 <= metrics["best_epoch"] <= 8
    for ckpt in ("best", "final"):
        for split in ("val", "test"):
            values = metrics[ckpt][split]
            assert set(values) == SPLIT_KEYS
            assert all(0 <= values[k] <= 1 for k in SPLIT_KEYS - {"loss"})
    assert metrics["best"]["test"]["accuracy"] > 0.9  # chance is 0.1
    assert metrics["params"]["total"] == metrics["params"]["trainable"] == (
        64 * 128 + 128 + 2 * 128 + 128 * 128 + 128 + 2 * 128 + 128 * 10 + 10)
    assert set(metrics["per_class_accuracy"]) == {str(d) for d in range(10)}
    assert metrics["inference_ms_per_image"] > 0
    assert set(metrics["versions"]) >= {"vbench", "torch", "torchvision", "timm", "python"}
    # Phase timings (benchmarks/startup.py); a later run of the process has no startup.
    assert list(metrics["timings"]) == [p for p in PHASES if p in metrics["timings"]]
    assert {"device", "data", "setup", "training", "evaluation", "plots"} <= set(
        metrics["timings"])
    assert all(s >= 0 for s in metrics["timings"].values())

    with open(run_dir / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert set(rows[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                            "epoch_s"}
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])

    best = load_torch(run_dir / "checkpoints/best.pt")
    last = load_torch(run_dir / "checkpoints/last.pt")
    assert best["epoch"] == metrics["best_epoch"] and last["epoch"] == 8
    assert {"model", "optimizer", "scheduler", "rng", "early_stopping", "history"} <= set(last)
    assert png_ok(run_dir / "plots/curves.png") and png_ok(run_dir / "plots/confusion.png")
    assert not list(run_dir.rglob("*.tmp*"))  # atomic writes leave no temp files


def test_best_checkpoint_metrics_are_reproducible_from_the_file(run_vbench):
    """metrics.json's best/test numbers are what best.pt really scores on the test split."""
    metrics, run_dir = run_vbench("trainer.epochs=4", "model=cnn")
    cfg = make_cfg("model=cnn")
    data = load_data(cfg.dataset, torch.device("cpu"))
    model = build_model(cfg.model, InputSpec(data.in_channels, data.image_size, data.num_classes))
    model.load_state_dict(load_torch(run_dir / "checkpoints/best.pt")["model"])
    again = classification_metrics(predict(model, data.test, 256, None), data.test.y)
    assert again == pytest.approx(metrics["best"]["test"])


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_models_learn_digits(run_vbench, model):
    metrics, _ = run_vbench(f"model={model}", "trainer.epochs=6")
    assert metrics["best"]["test"]["accuracy"] > 0.85


def test_fake_dataset_any_shape(run_vbench):
    metrics, _ = run_vbench("dataset=fake", "dataset.num_classes=4", "dataset.image_size=12",
                            "dataset.in_channels=3", "dataset.train_size=400",
                            "dataset.test_size=100", "model=cnn", "trainer.epochs=3")
    assert metrics["classes"] == [f"class_{i}" for i in range(4)]
    assert metrics["sizes"] == {"train": 360, "val": 40, "test": 100}
    assert metrics["best"]["test"]["accuracy"] > 0.6  # chance is 0.25


def test_early_stopping_stops_when_nothing_improves(run_vbench):
    # No later epoch can beat the first by 1e9: the run stops after `patience` more epochs.
    metrics, run_dir = run_vbench("trainer.epochs=30", "trainer.patience=2",
                                  "trainer.min_delta=1e9")
    assert metrics["status"] == "early_stopped"
    assert (metrics["best_epoch"], metrics["epochs_run"]) == (1, 3)
    assert len((run_dir / "history.csv").read_text().splitlines()) == 1 + 3


def test_monitor_val_acc_selects_the_most_accurate_epoch(run_vbench):
    metrics, run_dir = run_vbench("trainer.epochs=5", "trainer.monitor=val_acc")
    with open(run_dir / "history.csv") as f:
        val_acc = [float(r["val_acc"]) for r in csv.DictReader(f)]
    assert metrics["best_epoch"] == 1 + val_acc.index(max(val_acc))
    assert metrics["best"]["val"]["accuracy"] == pytest.approx(max(val_acc))


def test_divergence_is_reported_not_hidden(run_vbench):
    metrics, _ = run_vbench("optimizer=sgd", "optimizer.lr=1e12", "trainer.epochs=5",
                            "model.batchnorm=false")
    assert metrics["status"] == "diverged"
    assert metrics["epochs_run"] < 5


def test_same_seed_same_numbers(run_vbench):
    quick = ["trainer.epochs=3", "dataset.subset_per_class=60", "eval.plots=[]"]
    a, _ = run_vbench(*quick, "model=cnn", name="a")
    b, _ = run_vbench(*quick, "model=cnn", name="b")
    c, _ = run_vbench(*quick, "model=cnn", "trainer.seed=1", name="c")
    d, _ = run_vbench(*quick, "model=mlp", "model.dropout=0.2", name="d")
    e, _ = run_vbench(*quick, "model=mlp", "model.dropout=0.2", name="e")
    assert a["final"] == b["final"] and a["best"] == b["best"]
    assert a["per_class_accuracy"] == b["per_class_accuracy"]
    assert a["final"] != c["final"]
    assert d["final"] == e["final"] and d["best"] == e["best"]  # dropout RNG is seeded too


def test_digits_split_is_stratified_disjoint_and_normalized_on_train():
    cfg = make_cfg()
    data = load_data(cfg.dataset, torch.device("cpu"))
    sizes = (len(data.train), len(data.val), len(data.test))
    assert sizes == (1294, 144, 359)  # test 20% of 1797, val 10% of the rest
    for split in (data.train, data.val, data.test):  # every class present in every split
        assert torch.bincount(split.y, minlength=10).min() > 0
    train = data.train.inputs()
    assert train.mean().abs() < 1e-4 and (train.std() - 1).abs() < 1e-3


def test_stratified_split_is_disjoint_seeded_and_proportional():
    y = torch.arange(1000) % 4
    rest, held = stratified_split(y, 0.25, seed=3, key="dataset.val_size")
    assert len(held) == 250 and len(set(rest.tolist()) | set(held.tolist())) == 1000
    assert torch.bincount(y[held]).min() >= 62  # stratified: 62 or 63 of each class
    again, _ = stratified_split(y, 0.25, seed=3, key="dataset.val_size")
    other, _ = stratified_split(y, 0.25, seed=4, key="dataset.val_size")
    assert torch.equal(rest, again) and not torch.equal(rest, other)
    assert len(stratified_split(y, 100, seed=3, key="k")[1]) == 100  # a count works too


def test_smoke_subsets_shrink_every_split():
    cfg = make_cfg("dataset.subset_per_class=6")
    data = load_data(cfg.dataset, torch.device("cpu"))
    assert len(data.train) + len(data.val) == 60 and len(data.test) == 60
    assert torch.bincount(data.test.y, minlength=10).tolist() == [6] * 10
    cfg = make_cfg("dataset.max_samples=100")
    data = load_data(cfg.dataset, torch.device("cpu"))
    assert len(data.train) + len(data.val) == 100 and len(data.test) == 100


def test_debug_smoke_preset(run_vbench):
    metrics, _ = run_vbench("debug=smoke")
    assert metrics["epochs_run"] == 1 and metrics["device"] == "cpu"
    assert metrics["sizes"]["train"] + metrics["sizes"]["val"] == 100


def test_resolved_config_is_plain_data():
    cfg = make_cfg("model=cnn", "optimizer=sgd", "scheduler=step")
    assert json.dumps(dict(cfg.model))  # no unresolved objects
    assert cfg.model.arch == "cnn" and cfg.optimizer.name == "sgd"


def test_the_progress_total_is_the_batches_the_loop_draws(monkeypatch, tmp_path):
    """129 images at batch 64: the loop drops a last batch of one and draws 2; the bar said 3."""
    import vbench.training.run as run_module

    reports = []

    @contextlib.contextmanager
    def spy(total, title, batches=0, monitor=VAL_LOSS):
        with real(total, title, batches, monitor) as report:
            calls = []
            report.batch = lambda images, inner=report.batch: (calls.append(images),
                                                               inner(images))
            reports.append((report, calls))
            yield report

    real = run_module.epoch_progress
    monkeypatch.setattr(run_module, "epoch_progress", spy)
    cfg = make_cfg("dataset=fake", "dataset.train_size=139", "dataset.val_size=10",
                   "trainer.epochs=1", "trainer.batch_size=64", "eval.plots=[]")
    metrics = run_module.run(cfg, tmp_path / "run")
    (report, calls), = reports
    assert metrics["sizes"]["train"] == 129 and sum(calls) == 128
    assert report.batches == len(calls) == 2


def test_precision_auto_takes_bf16_only_for_large_models_on_a_bf16_gpu(monkeypatch, tmp_path):
    """On the H200, bf16 autocast was slower than float32 for the seeds' small models."""
    from vbench.core.device import AUTO_BF16_MIN_PARAMS, auto_precision

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert auto_precision(cpu, 10**9)[0] is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert auto_precision(cuda, AUTO_BF16_MIN_PARAMS - 1)[0] is None
    dtype, reason = auto_precision(cuda, AUTO_BF16_MIN_PARAMS)
    assert dtype == torch.bfloat16 and "bf16-mixed" in reason
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert auto_precision(cuda, 10**9)[0] is None

    from vbench.training.run import run

    metrics = run(make_cfg("debug=smoke", "trainer.precision=auto"), tmp_path / "r")
    assert metrics["precision"] == "float32"
    assert metrics["precision_reason"] == "auto: float32 on cpu (bf16-mixed is opt-in there)"
