"""Per-run analysis: every plot of eval.plots, the cross-domain evaluation, the shift probe."""

import re

import pytest
import torch

from helpers import make_cfg, png_ok
from vbench.core.errors import VBenchError
from vbench.core.schema import option_names
from vbench.data import load_data
from vbench.reports.analysis import load_extra, shift_images

# A fake dataset shaped like digits (8x8 grey, 10 classes): the cross-domain target in tests.
FAKE_AS_DIGITS = "{name:fake,image_size:8,in_channels:1,num_classes:10,test_size:100}"
ALL_PLOTS = "[curves,confusion,per_class,misclassified,tsne,weights,gap,samples]"


def test_every_plot_and_probe(run_vbench):
    metrics, run_dir = run_vbench("trainer.epochs=3", "dataset.subset_per_class=40",
                                  f"eval.plots={ALL_PLOTS}", "eval.tsne_samples=60", "eval.misclassified=10",
                                  "eval.shift_pixels=[0,1,3]", f"eval.extra=[{FAKE_AS_DIGITS}]")
    files = ["curves", "confusion", "per_class", "misclassified", "tsne", "weights", "gap",
             "samples", "class_distribution", "mean_images", "shift"]
    for name in files:
        assert png_ok(run_dir / f"plots/{name}.png"), name

    extra = metrics["extra"]["fake"]
    assert set(extra) == {"loss", "accuracy", "macro_f1", "weighted_f1"}
    assert extra["accuracy"] < metrics["best"]["test"]["accuracy"]  # another domain is harder
    shift = metrics["shift"]
    assert list(shift) == ["0", "1", "3"]
    # No shift is the plain test set: the probe must agree with the best-checkpoint metrics.
    assert shift["0"]["accuracy"] == pytest.approx(metrics["best"]["test"]["accuracy"])
    assert shift["3"]["accuracy"] < shift["0"]["accuracy"]  # 3 px is a lot on 8x8 digits
    assert all(0 < v["confidence"] <= 1 for v in shift.values())


def test_extra_dataset_is_normalized_with_the_training_statistics():
    cfg = make_cfg(f"eval.extra=[{FAKE_AS_DIGITS}]")
    digits = load_data(cfg.dataset, torch.device("cpu"))
    extra = load_extra(cfg.eval.extra, cfg.dataset, digits, torch.device("cpu"))["fake"]
    own = load_data(make_cfg("dataset=fake", "dataset.image_size=8", "dataset.in_channels=1",
                             "dataset.test_size=100").dataset, torch.device("cpu"))
    # The same pixels, un-normalized either way, with the model's (digits') stats for extra.
    assert torch.equal(extra.x, own.test.x)  # the same uint8 pixels
    assert torch.allclose(extra.inputs() * digits.std[0] + digits.mean[0],
                          own.test.inputs() * own.std[0] + own.mean[0], atol=1e-5)
    assert torch.equal(extra.y, own.test.y)
    assert not torch.allclose(extra.inputs(), own.test.inputs())


def test_extra_dataset_of_another_shape_fails_before_training(run_vbench, tmp_path):
    with pytest.raises(VBenchError, match=r"eval.extra: fake has images 3x32x32 .* same shape"):
        run_vbench("eval.extra=[fake]")
    assert not (tmp_path / "run/history.csv").exists()


@pytest.mark.parametrize("override,message", [
    ("eval.plots=[curves,nope]", ("eval.plots=[curves,nope] is not valid; it must be a list, "
                                 "each item one of: curves, ")),
    ("eval.extra=[nope]", ("eval.extra='nope' is not valid; choose one of: "
                           + ", ".join(option_names("dataset")))),
    ("eval.shift_pixels=[1,-2]", ("eval.shift_pixels=[1,-2] is not valid; it must be a list, "
                                 "each item an integer >= 0")),
])
def test_bad_eval_values_are_refused(run_vbench, override, message):
    with pytest.raises(VBenchError, match=re.escape(message)):
        run_vbench(override)


def test_shift_images_moves_content_and_fills_with_black():
    x = torch.arange(1, 10, dtype=torch.uint8).view(1, 1, 3, 3)  # uint8, as splits hold them
    right = shift_images(x, 1, 0)
    assert right[0, 0].tolist() == [[0, 1, 2], [0, 4, 5], [0, 7, 8]]
    up = shift_images(x, 0, -1)
    assert up[0, 0].tolist() == [[4, 5, 6], [7, 8, 9], [0, 0, 0]]
    assert (shift_images(x, 5, 0) == 0).all()  # shifted out entirely
    assert torch.equal(shift_images(x, 0, 0), x)


def test_mnist_model_evaluated_on_fashion_mnist(run_vbench, tmp_path):
    """Seed 000: an MNIST-trained MLP scored on Fashion-MNIST; both accuracies are recorded."""
    from helpers.formats import write_mnist

    write_mnist(tmp_path / "data", "MNIST")
    write_mnist(tmp_path / "data", "FashionMNIST", gz=False)
    metrics, _ = run_vbench("dataset=mnist", f"dataset.root={tmp_path / 'data'}",
                            "dataset.val_size=0.2", "trainer.epochs=3", "eval.plots=[]",
                            "eval.extra=[fashion_mnist]")
    assert metrics["best"]["test"]["accuracy"] > 0.5
    extra = metrics["extra"]["fashion_mnist"]
    assert set(extra) >= {"loss", "accuracy", "macro_f1", "weighted_f1"}
    assert 0 <= extra["accuracy"] <= 1
