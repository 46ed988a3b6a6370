"""Every figure drawn with real class-name lists (Fashion-MNIST, CIFAR-10, CIFAR-100) and
checked with matplotlib's own text extents: no two tick labels overlap, and no text is cut
by the edge of the image."""

import itertools

import numpy as np
import pytest

from helpers.formats import CIFAR10_NAMES
from vbench.reports import plots, verdicts

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
        legend = ax.get_legend()
        legend_texts = [*legend.get_texts(), legend.get_title()] if legend else []
        for text in [*ax.texts, ax.title, *axis_labels, *labels, *legend_texts]:
            assert_inside(text, page, renderer, name)
    for legend in fig.legends:
        for text in [*legend.get_texts(), legend.get_title()]:
            assert_inside(text, page, renderer, name)
    for text in [*fig.texts, *([fig._suptitle] if fig._suptitle else [])]:
        assert_inside(text, page, renderer, name)


def assert_inside(text, page, renderer, name: str) -> None:
    if not text.get_visible() or not text.get_text():
        return
    box = text.get_window_extent(renderer)
    assert (box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1 and box.y0 >= page.y0 - 1
            and box.y1 <= page.y1 + 1), f"{name}: {text.get_text()!r} is cut at the edge"


def legend_outside(ax) -> bool:
    """The axes' legend (or the figure's) lies wholly outside the axes' area."""
    legend = ax.get_legend() or ax.figure.legends[0]
    return not ax.bbox.overlaps(legend.get_window_extent())


def caption(fig) -> str:
    return " ".join(t.get_text().replace("\n", " ") for t in fig.texts)


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
    # Class names stand upright under the matrix only when they do not fit side by side.
    fits = all(len(c) <= 5 for c in classes)
    rotations = {t.get_rotation() for t in figures["confusion"].axes[0].get_xticklabels()}
    assert rotations == ({0.0} if fits else {90.0})
    per_class_ax = figures["per_class"].axes[0]
    values_inside = [t for t in per_class_ax.texts
                     if per_class_ax.bbox.overlaps(t.get_window_extent())]
    assert not values_inside
    # A dot plot sorted best first, on an axis from the data, values with 4 significant digits.
    shown = [t.get_text() for t in per_class_ax.get_yticklabels()]
    assert [accuracy[c] for c in shown] == sorted(accuracy.values(), reverse=True)
    low, high = per_class_ax.get_xlim()
    span = max(accuracy.values()) - min(accuracy.values())
    assert min(accuracy.values()) - 0.1 * span - 0.006 <= low < min(accuracy.values())
    top = max(accuracy.values())  # 1.0, the perfect class: the axis ends there, not past it
    assert (top < high or high == top == 1.0) and high <= min(1.0, top + 0.1 * span + 0.006)
    assert not per_class_ax.patches  # no bars: their length would mean something from zero
    assert {t.get_text() for t in per_class_ax.texts} == {f"{v:#.4g}" for v in accuracy.values()}


def test_digit_names_stay_upright_in_the_confusion_matrix(tmp_path):
    digits = [str(d) for d in range(10)]
    y = np.repeat(np.arange(10), 5)
    fig = plots.plot_confusion(y, y, digits, "test", tmp_path / "c.png")
    assert_readable(fig)
    assert {t.get_rotation() for t in fig.axes[0].get_xticklabels()} == {0.0}
    # No band of empty space under it: the names take one line of text.
    names = max(t.get_window_extent().height for t in fig.axes[0].get_xticklabels())
    assert fig.axes[0].bbox.y0 < names + fig.axes[0].xaxis.label.get_window_extent().height + 80


def test_per_class_of_close_digits_spreads_them_over_the_axis(tmp_path):
    accuracy = {str(d): v for d, v in enumerate(
        [1.0, 0.9444, 1.0, 0.973, 1.0, 1.0, 1.0, 1.0, 0.9143, 0.9722])}
    fig = plots.plot_per_class(accuracy, "best checkpoint, test split", tmp_path / "p.png")
    assert_readable(fig)
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    assert 0.9 < low < 0.9143 and high == 1.0  # not 0 to 1, nor past an accuracy's 1.0
    assert "0.9143 to 1.000" in caption(fig) and "mean over classes, 0.9804" in caption(fig)
    assert ax.title.get_window_extent().y0 > max(t.get_window_extent().y1 for t in ax.texts)


def test_run_plots_mark_the_best_epoch_and_draw_without_pyplot(tmp_path):
    import sys

    curves = plots.plot_curves(history(), tmp_path / "curves.png", best_epoch=7)
    assert any(line.get_label() == "best epoch (7)" for line in curves.axes[0].lines)
    for fig in (curves, plots.plot_gap(history(), tmp_path / "gap.png", best_epoch=7),
                plots.plot_shift({"0": {"accuracy": 0.9, "confidence": 0.8},
                                  "2": {"accuracy": 0.5, "confidence": 0.6}}, 0.1,
                                 tmp_path / "shift.png"),
                plots.plot_weights([("fc: Linear (10, 20)", np.ones(200), np.zeros(200))],
                                   tmp_path / "weights.png")):
        assert_readable(fig)
    assert "matplotlib.pyplot" not in sys.modules


def test_curves_and_gap_take_their_axes_from_the_data(tmp_path):
    """The last epoch is the best: its mark stays inside the frame. The first epoch's accuracy
    (0.40-0.50 here, against 0.70-0.95 after it) is left out of the axes, and the caption says
    so; the loss is on a log scale."""
    rows = history()
    curves = plots.plot_curves(rows, tmp_path / "curves.png", best_epoch=12)
    loss, accuracy, lr = curves.axes
    assert loss.get_yscale() == "log"
    for ax in (loss, accuracy, lr):
        low, high = ax.get_xlim()
        assert low < 1 and 12 < high  # the best (last) epoch's line is not on the frame
        assert any(line.get_label() == "best epoch (12)" for line in ax.lines)
    later = [r[k] for r in rows[1:] for k in ("train_acc", "val_acc")]
    low, high = accuracy.get_ylim()
    assert rows[0]["val_acc"] < low <= min(later) and max(later) <= high < 1.0
    assert "leaves out epoch 1 (0.4000 to 0.5000)" in caption(curves)
    assert legend_outside(accuracy)

    gap = plots.plot_gap(rows, tmp_path / "gap.png", best_epoch=12)
    ax = gap.axes[0]
    gaps = [r["train_acc"] - r["val_acc"] for r in rows]
    low, high = ax.get_ylim()
    assert low <= 0 and high >= max(gaps[1:]) and high < gaps[0]  # 0 kept, epoch 1 left out
    assert any(line.get_label() == "best epoch (12)" for line in ax.lines)
    assert ax.get_xlim()[1] > 12 and "epoch 1" in caption(gap) and legend_outside(ax)
    # Without an outlier nothing is left out.
    flat = [{**r, "train_acc": 0.9, "val_acc": 0.88 + r["epoch"] / 1000} for r in rows]
    assert "epoch 1" not in caption(plots.plot_gap(flat, tmp_path / "flat.png", best_epoch=3))


OPTUNA = ["optimizer.lr=0.009145320282946534 model.width=64",
          "optimizer.lr=0.0012345678901234 model.width=128",
          "optimizer.lr=0.00051234567891 model.width=64"]


def groups_of(labels: list[str], accuracies: list[float]) -> list[dict]:
    """Configurations of one run each, as runs.configurations makes them."""
    ranks = verdicts.competition_ranks(accuracies, True)
    return [{"label": label, "rank": rank, "ranked_mean": acc, "ranked_mean_ci95": None,
             "ranked_n": 1, "p_value": None,
             "vs_leader": verdicts.LEADER if rank == 1 else verdicts.NO_TEST_ONE_SEED,
             "best_test_acc": acc - 0.01, "best_test_acc_ci95": None, "best_test_acc_n": 1,
             "statuses": "1 completed"} for label, acc, rank in zip(labels, accuracies, ranks)]


FAILED = {"label": "model=cnn", "rank": None, "ranked_mean": None, "ranked_mean_ci95": None,
          "ranked_n": 0, "p_value": None, "vs_leader": None, "best_test_acc": None,
          "best_test_acc_ci95": None, "best_test_acc_n": 0, "statuses": "1 failed"}


@pytest.mark.parametrize("runs", [3, 12])
def test_sweep_plots_share_the_ranking_colours_and_readable_legends(runs, tmp_path):
    labels = [f"model=mlp model.hidden=[{64 * (i + 1)},{32 * (i + 1)}] optimizer=sgd"
              for i in range(runs)]
    groups = groups_of(labels, [0.90 + i / 1000 for i in range(runs)])  # the last is best
    groups.append(FAILED)
    legend = plots.sweep_legend(groups, "best_val_acc")
    ranking = labels[::-1] + ["model=cnn"]
    assert legend.order == ranking
    bars = plots.plot_sweep_bars(groups, legend, tmp_path / "bars.png")
    assert "seeds" not in bars._suptitle.get_text()  # single runs: no "over seeds"
    for ax in bars.axes:  # validation ranks, test reports
        low, high = ax.get_xlim()
        assert 0.85 < low and high < 0.95  # the range of the data, not 0-1
    ticks = [t.get_text() for t in bars.axes[0].get_yticklabels()]
    # Ranks as the tables give them; the failed configuration has none.
    assert [t.split(".", 1)[0] for t in ticks] == [str(i) for i in range(1, runs + 1)] + \
        ["model=cnn"]
    assert "ranked by best_val_acc" in caption(bars) and "need not fall in order" in caption(bars)
    points = [(label, 1000, 0.9 + i / 1000) for i, label in enumerate(labels)]
    scatter = plots.plot_accuracy_vs_params(points, legend, tmp_path / "params.png")
    xs = [c.get_offsets()[0][0] for c in scatter.axes[0].collections]
    assert len(set(xs)) == runs  # equal sizes spread
    curves = plots.plot_sweep_curves([(label, history(), 12) for label in labels], legend,
                                     tmp_path / "curves.png")
    for fig in (bars, scatter, curves):
        assert_readable(fig)
    # One colour per configuration in every plot; legends outside the axes, in rank order,
    # readable (8 pt and up), at any count.
    assert [tuple(c.get_facecolor()[0]) for c in scatter.axes[0].collections] == \
        [legend.colors[label] for label in labels]
    entries = [t.get_text() for t in scatter.axes[0].get_legend().get_texts()]
    assert entries == [legend.names[label] for label in ranking[:-1]]
    assert min(t.get_fontsize() for t in scatter.axes[0].get_legend().get_texts()) >= 8
    assert legend_outside(scatter.axes[0])
    if runs <= plots.OVERLAY:
        ax = curves.axes[0]
        assert [line.get_color() for line in ax.lines if line.get_marker() != "*"] == \
            [legend.colors[label] for label in labels]
        assert legend_outside(ax)
    else:  # a panel per configuration, in rank order, on one y axis
        titles = [ax.get_title(loc="left") for ax in curves.axes if ax.get_title(loc="left")]
        assert titles == [legend.names[label] for label in ranking[:-1]]
    # The first epoch (0.40) is left out of the y axis: the later ones (0.70-0.95) fill it.
    low, high = curves.axes[0].get_ylim()
    assert 0.4 < low <= 0.7 and "leaves out epoch 1" in caption(curves)
    stars = [line for ax in curves.axes for line in ax.lines if line.get_marker() == "*"]
    assert stars and all(line.get_xdata()[0] == 12 for line in stars)  # best epochs marked


def test_long_labels_are_rounded_and_their_keys_stated_once(tmp_path):
    """An Optuna sweep's labels: 4 significant digits, the keys once, so the figure keeps the
    shape of a figure (no strip of labels)."""
    groups = groups_of(OPTUNA, [0.97, 0.95, 0.99])
    legend = plots.sweep_legend(groups, "best_val_acc")
    assert legend.keys == "optimizer.lr, model.width"
    names = {label: legend.names[label] for label in OPTUNA}
    assert names == {OPTUNA[2]: "1. 0.0005123, 64", OPTUNA[0]: "2. 0.009145, 64",
                     OPTUNA[1]: "3. 0.001235, 128"}
    bars = plots.plot_sweep_bars(groups, legend, tmp_path / "bars.png")
    assert_readable(bars)
    width, height = bars.get_size_inches()
    assert width < 12.5 and height > 2.5  # two panels: validation ranks, test reports
    assert "rank. optimizer.lr, model.width" in [t.get_text() for t in bars.axes[0].texts]
    curves = plots.plot_sweep_curves([(label, history(), 5) for label in OPTUNA], legend,
                                     tmp_path / "curves.png")
    assert_readable(curves)
    assert curves.get_size_inches()[0] < 12
    assert curves.axes[0].get_legend().get_title().get_text() == "rank. optimizer.lr, model.width"


def test_seed_groups_draw_their_confidence_intervals_and_verdicts(tmp_path):
    """Three configurations over seeds: every dot has its 95 % CI as an error bar, on the
    validation panel with its verdict (the leader's interval shaded), on the test panel too."""
    groups = [
        {"label": "a", "rank": 1, "ranked_mean": 0.92, "ranked_mean_ci95": 0.0497,
         "ranked_n": 3, "p_value": None, "vs_leader": verdicts.LEADER, "best_test_acc": 0.91,
         "best_test_acc_ci95": 0.02, "best_test_acc_n": 3, "statuses": "3 completed"},
        {"label": "b", "rank": 2, "ranked_mean": 0.90, "ranked_mean_ci95": 0.06,
         "ranked_n": 3, "p_value": 0.412, "vs_leader": verdicts.TIED, "best_test_acc": 0.90,
         "best_test_acc_ci95": 0.03, "best_test_acc_n": 3, "statuses": "3 completed"},
        {"label": "c", "rank": 3, "ranked_mean": 0.71, "ranked_mean_ci95": 0.03,
         "ranked_n": 3, "p_value": 0.0002, "vs_leader": verdicts.WORSE, "best_test_acc": 0.70,
         "best_test_acc_ci95": 0.01, "best_test_acc_n": 3, "statuses": "3 completed"},
        {**FAILED, "label": "d"}]
    fig = plots.plot_sweep_bars(groups, plots.sweep_legend(groups, "best_val_acc"),
                                tmp_path / "bars.png")
    assert_readable(fig)
    assert "mean ± 95 % CI over seeds" in fig._suptitle.get_text()
    val, test = fig.axes
    for ax, key in ((val, "ranked_mean"), (test, "best_test_acc")):
        bars = [c for c in ax.containers if c.has_xerr]
        assert len(bars) == 3  # the failed configuration has none
        for container, g in zip(bars, groups):
            (segments,) = container.lines[2]  # the error bar's line: mean ± half-width
            (x0, _), (x1, _) = segments.get_segments()[0]
            half = g[f"{key}_ci95"]
            assert (x0, x1) == pytest.approx((g[key] - half, g[key] + half))
        low, high = ax.get_xlim()
        assert low < min(g[key] - g[f"{key}_ci95"] for g in groups[:3])  # every bar fits
        assert high > max(g[key] + g[f"{key}_ci95"] for g in groups[:3])
    labels = [t.get_text() for t in val.texts]
    assert "0.9200 ± 0.050 (n=3)  leader" in labels
    assert "0.9000 ± 0.060 (n=3)  tied (p = 0.412)" in labels
    assert "0.7100 ± 0.030 (n=3)  worse (p < 0.001)" in labels
    band = [p for p in val.patches if p.get_alpha() == 0.12]
    assert len(band) == 1 and band[0].get_x() == pytest.approx(0.92 - 0.0497)  # the leader's
    assert "95 % confidence intervals" in caption(fig) and "Welch" in caption(fig)


def test_report_html_curves_mark_best_epochs_without_a_legend():
    groups = groups_of(OPTUNA, [0.97, 0.95, 0.99])
    legend = plots.sweep_legend(groups, "best_val_acc")
    curves = [(label, history(), 4) for label in OPTUNA]
    svg, note = plots.curves_svg(curves, legend, "val_acc", "validation accuracy")
    assert svg.startswith(b"<?xml") and b"legend" not in svg
    assert "leaves out epoch 1" in note
    svg, note = plots.curves_svg(curves, legend, "val_loss", "validation loss")
    assert b"log scale" in svg and "epoch 1" not in note


def test_no_accuracy_axis_runs_past_the_metrics_range(tmp_path, monkeypatch):
    """Every accuracy 1.0 (a solved dataset): each figure that draws accuracies keeps its axis
    within [0, 1] (it ran 0.999-1.001 on the sweep curves, past 1.0 on per_class), and still
    shows the values."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from vbench.core.columns import TRAIN_ACC, VAL_ACC, VAL_LOSS, value_range

    low_end, high_end = value_range(VAL_ACC)
    perfect = [{**row, TRAIN_ACC: 1.0, VAL_ACC: 1.0} for row in history()]
    labels = [f"model.depth={d}" for d in range(1, 7)]  # 6: one panel each (above OVERLAY)
    groups = [{**g, "best_test_acc": 1.0} for g in groups_of(labels, [1.0] * len(labels))]
    legend = plots.sweep_legend(groups, "best_val_acc")
    saved = []  # curves_svg returns the SVG: its Figure is caught as it is saved
    real_savefig = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (saved.append(fig),
                                                                 real_savefig(fig, *a, **k))[1])
    drawn = {  # figure: (its axes that show accuracies, along which axis)
        "curves": (plots.plot_curves(perfect, tmp_path / "c.png", 3).axes[1], "y"),
        "per_class": (plots.plot_per_class({str(d): 1.0 for d in range(10)}, "test",
                                           tmp_path / "p.png").axes[0], "x"),
        "shift": (plots.plot_shift({"0": {"accuracy": 1.0, "confidence": 1.0},
                                    "2": {"accuracy": 1.0, "confidence": 1.0}}, 0.1,
                                   tmp_path / "s.png").axes[0], "y"),
        "sweep bars": (plots.plot_sweep_bars(groups, legend, tmp_path / "b.png").axes[0], "x"),
        "accuracy vs params": (plots.plot_accuracy_vs_params(
            [(label, 1000 * (i + 1), 1.0) for i, label in enumerate(labels)], legend,
            tmp_path / "a.png").axes[0], "y"),
    }
    for n in (2, 6):  # overlaid, and a panel per configuration
        fig = plots.plot_sweep_curves([(label, perfect, 3) for label in labels[:n]], legend,
                                      tmp_path / f"sweep{n}.png")
        drawn[f"sweep curves of {n}"] = (fig.axes[0], "y")
    plots.curves_svg([(label, perfect, 3) for label in labels], legend, VAL_ACC, "val acc")
    drawn["report.html curves"] = (saved[-1].axes[0], "y")
    FigureCanvasAgg(saved[-1])  # drawn as SVG: measured as the PNGs are
    for name, (ax, axis) in drawn.items():
        low, high = ax.get_ylim() if axis == "y" else ax.get_xlim()
        assert low_end <= low < high <= high_end, (name, low, high)
        assert high == high_end, (name, high)  # the values, all 1.0, are on the axis
        assert_readable(ax.figure, name)
    # A loss has no upper end: its axis is the data's.
    plots.curves_svg([(label, perfect, 3) for label in labels], legend, VAL_LOSS, "val loss")
    assert value_range(VAL_LOSS) is None and saved[-1].axes[0].get_ylim()[1] > 1.0
