"""Every figure drawn with real class-name lists (Fashion-MNIST, CIFAR-10, CIFAR-100) and
checked with matplotlib's own text extents: no two tick labels overlap, and no text is cut
by the edge of the image."""

import itertools

import numpy as np
import pytest

from formats import CIFAR10_NAMES
from vbench.reports import plots

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]
CIFAR100 = ["apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"]
NAME_LISTS = {"fashion_mnist": FASHION, "cifar10": CIFAR10_NAMES, "cifar100": CIFAR100}


def assert_readable(fig, name: str = "") -> None:
    """No two visible tick labels of one axis overlap, and every text lies inside the
    figure (nothing cut at the edge)."""
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    page = fig.bbox
    for ax in fig.axes:
        labels = []
        for axis in (ax.xaxis, ax.yaxis):
            shown = drawn_tick_labels(axis)
            labels += shown
            boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in shown]
            for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
                assert not box_a.overlaps(box_b), f"{name}: tick labels {a!r} and {b!r} overlap"
        axis_labels = [ax.xaxis.label, ax.yaxis.label] if ax.axison else []
        for text in [*ax.texts, ax.title, *axis_labels, *labels]:
            if not text.get_visible() or not text.get_text():
                continue
            box = text.get_window_extent(renderer)
            assert (box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1 and box.y0 >= page.y0 - 1
                    and box.y1 <= page.y1 + 1), f"{name}: {text.get_text()!r} is cut at the edge"


def drawn_tick_labels(axis) -> list:
    """The tick labels matplotlib draws: visible, not empty, inside the view interval."""
    if not axis.axes.axison or not axis.get_visible():
        return []
    low, high = sorted(axis.get_view_interval())
    locs = axis.get_majorticklocs()
    return [tick.label1 for loc, tick in zip(locs, axis.get_major_ticks(len(locs)))
            if low - 1e-9 <= loc <= high + 1e-9 and tick.label1.get_visible()
            and tick.label1.get_text()]


def history(epochs: int = 12) -> list[dict]:
    return [{"epoch": e, "train_loss": 1 / e, "train_acc": 1 - 0.5 / e, "val_loss": 1.1 / e,
             "val_acc": 1 - 0.6 / e, "lr": 1e-3 / e, "epoch_s": 0.1}
            for e in range(1, epochs + 1)]


@pytest.mark.parametrize("dataset", ["fashion_mnist", "cifar10",
                                     pytest.param("cifar100", marks=pytest.mark.slow)])
def test_class_name_plots_have_no_colliding_labels(dataset, tmp_path):
    classes = NAME_LISTS[dataset]
    n = len(classes)
    rng = np.random.default_rng(0)
    y_true = np.repeat(np.arange(n), 20)
    y_pred = np.where(rng.random(len(y_true)) < 0.7, y_true, rng.integers(0, n, len(y_true)))
    y_pred[y_true == 0] = 0  # a perfect class: its row has zero cells
    accuracy = {c: float((y_pred[y_true == i] == i).mean()) for i, c in enumerate(classes)}
    counts = {"train": np.full(n, 500), "val": np.full(n, 50), "test": np.full(n, 100)}
    images = rng.random((n, 3, 8, 8))
    figures = {
        "confusion": plots.plot_confusion(y_true, y_pred, classes, "test", tmp_path / "c.png"),
        "per_class": plots.plot_per_class(accuracy, "test", tmp_path / "p.png"),
        "distribution": plots.plot_class_distribution(counts, classes, tmp_path / "d.png"),
        "mean_images": plots.plot_mean_images(images, classes, tmp_path / "m.png"),
        "samples": plots.plot_samples(images, np.arange(n), classes, tmp_path / "s.png", 1),
        "misclassified": plots.plot_misclassified(
            images[:10], np.arange(10), (np.arange(10) + 1) % n, np.full(10, 0.9), classes,
            (10, 100), tmp_path / "x.png"),
        "tsne": plots.plot_tsne([("trained", rng.random((n * 3, 2)))], np.arange(n * 3) % n,
                                classes, "t-SNE", tmp_path / "t.png"),
    }
    for name, fig in figures.items():
        assert_readable(fig, name)
    # Zero cells of the confusion matrix stay blank; per-class values never sit on the mean.
    if n <= 20:
        recall_cells = [t.get_text() for t in figures["confusion"].axes[1].texts]
        assert "0.00" not in recall_cells and "1.00" in recall_cells
    per_class_ax = figures["per_class"].axes[0]
    values_inside = [t for t in per_class_ax.texts
                     if per_class_ax.bbox.overlaps(t.get_window_extent())]
    assert not values_inside
    if n > plots.SIDEWAYS:  # sorted horizontal bars, best first
        shown = [t.get_text() for t in per_class_ax.get_yticklabels()]
        assert [accuracy[c] for c in shown] == sorted(accuracy.values(), reverse=True)


def test_run_plots_mark_the_best_epoch_and_draw_without_pyplot(tmp_path):
    import sys

    curves = plots.plot_curves(history(), tmp_path / "curves.png", best_epoch=7)
    assert any(line.get_label() == "best epoch (7)" for line in curves.axes[0].lines)
    for fig in (curves, plots.plot_gap(history(), tmp_path / "gap.png"),
                plots.plot_shift({"0": {"accuracy": 0.9, "confidence": 0.8},
                                  "2": {"accuracy": 0.5, "confidence": 0.6}}, 0.1,
                                 tmp_path / "shift.png"),
                plots.plot_weights([("fc: Linear (10, 20)", np.ones(200), np.zeros(200))],
                                   tmp_path / "weights.png")):
        assert_readable(fig)
    assert "matplotlib.pyplot" not in sys.modules


@pytest.mark.parametrize("runs", [3, 12])
def test_sweep_plots_colour_spread_and_legend(runs, tmp_path):
    labels = [f"model=mlp model.hidden=[{64 * (i + 1)},{32 * (i + 1)}] optimizer=sgd"
              for i in range(runs)]
    colors = plots.run_colors(labels)
    groups = [{"label": label, "best_test_acc": 0.90 + i / 1000,
               "best_test_acc_std": None, "best_test_acc_n": 1, "statuses": "1 completed"}
              for i, label in enumerate(labels)]
    groups.append({"label": "model=cnn", "best_test_acc": None, "best_test_acc_std": None,
                   "best_test_acc_n": 0, "statuses": "1 failed"})
    colors["model=cnn"] = (0, 0, 0, 1)
    bars = plots.plot_sweep_bars(groups, colors, tmp_path / "bars.png")
    assert "seeds" not in bars.axes[0].get_title()  # single runs: no "over seeds"
    low, high = bars.axes[0].get_xlim()
    assert 0.85 < low and high < 0.95  # the range of the data, not 0-1
    points = [(label, 1000, 0.9 + i / 1000) for i, label in enumerate(labels)]
    scatter = plots.plot_accuracy_vs_params(points, colors, tmp_path / "params.png")
    xs = [c.get_offsets()[0][0] for c in scatter.axes[0].collections]
    assert len(set(xs)) == runs  # equal sizes spread
    curves = plots.plot_sweep_curves([(label, history()) for label in labels], colors,
                                     tmp_path / "curves.png")
    for fig in (bars, scatter, curves):
        assert_readable(fig)
    # One colour per run in every plot, and the legend outside the axes past MANY_RUNS.
    assert [tuple(c.get_facecolor()[0]) for c in scatter.axes[0].collections] == \
        [colors[label] for label in labels]
    assert [line.get_color() for line in curves.axes[0].lines] == [colors[label] for label in labels]
    legend = curves.axes[0].get_legend()
    outside = not curves.axes[0].bbox.overlaps(legend.get_window_extent())
    assert outside == (runs > plots.MANY_RUNS)


def test_seed_groups_say_mean_and_std(tmp_path):
    groups = [{"label": "a", "best_test_acc": 0.9, "best_test_acc_std": 0.01,
               "best_test_acc_n": 3, "statuses": "3 completed"}]
    fig = plots.plot_sweep_bars(groups, plots.run_colors(["a"]), tmp_path / "bars.png")
    assert "mean ± sample std over seeds" in fig.axes[0].get_title()
