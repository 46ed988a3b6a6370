"""The run's figures, drawn with matplotlib's object API (a Figure and the Agg canvas, no
pyplot state): nothing global to close, nothing shared between threads, and no GUI backend
ever imported. matplotlib is imported here only, when the first figure is drawn.

Every function saves its PNG atomically and returns the Figure, so tests can measure its texts.

Class names: up to SIDEWAYS classes are drawn in class order with names turned upright when
they do not fit side by side; above that, bars turn horizontal and are sorted, so 100
CIFAR-100 names stay readable. Value labels sit outside the data area, so no reference line
runs through them.
"""

from pathlib import Path

import numpy as np

SIDEWAYS = 20  # above this many classes, bar charts turn horizontal (names on the y axis)
MANY_RUNS = 8  # above this many runs, sweep legends move outside the axes


def _figure(figsize, layout: str | None = None):
    """A Figure outside pyplot. The default plots set their margins from the text they hold
    (`_margins`): a layout engine measures every text again and costs ~0.2 s a figure; the
    optional plots use matplotlib's constrained layout."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout=layout)


def _margins(fig, left: float, right: float, top: float, bottom: float,
             wspace: float = 0.2) -> None:
    """Margins around the axes in inches."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height,
                        bottom=bottom / height, wspace=wspace)


def _text_inches(texts: list[str], fontsize: float) -> float:
    """About how long the longest text is when written at `fontsize` (DejaVu Sans averages
    under 0.62 em a glyph)."""
    return max(map(len, texts), default=0) * 0.62 * fontsize / 72


def _cmap(name: str):
    from matplotlib import colormaps

    return colormaps[name]


def _save(fig, path: Path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100, pil_kwargs={"compress_level": 1})  # zlib's fastest: 4x quicker
    tmp.replace(path)
    return fig


def _integer_epochs(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _class_xticks(ax, names: list[str], axes_width_in: float, fontsize: float = 9) -> float:
    """Class names under vertical bars: horizontal when they fit side by side, otherwise
    turned upright (90°, never 45°: slanted names overlap their neighbours' boxes). Returns
    the height they take in inches."""
    length = _text_inches(names, fontsize)
    upright = length > 0.85 * axes_width_in / max(len(names), 1)
    ax.set_xticks(range(len(names)), names, rotation=90 if upright else 0, fontsize=fontsize)
    return length if upright else 1.4 * fontsize / 72


def _category_fontsize(count: int, length_in: float, largest: float = 9) -> float:
    """A font size whose lines fit `count` names stacked along `length_in` inches."""
    return max(3.0, min(largest, 72 * length_in / max(count, 1) / 1.4))


def _blended(ax, data_axis: str):
    """Data coordinates along `data_axis`, axes coordinates across it: for value labels
    written just outside the data area."""
    from matplotlib.transforms import blended_transform_factory

    if data_axis == "x":
        return blended_transform_factory(ax.transData, ax.transAxes)
    return blended_transform_factory(ax.transAxes, ax.transData)


# ----------------------------------------------------------------------------------------------
# One run


def plot_curves(history: list[dict], path: Path, best_epoch: int | None = None):
    """Loss, accuracy (train and val) and learning rate per epoch; the best epoch marked."""
    epochs = [row["epoch"] for row in history]
    fig = _figure((15, 4))
    axes = fig.subplots(1, 3)
    for ax, metric, title in ((axes[0], "loss", "loss"), (axes[1], "acc", "accuracy")):
        ax.plot(epochs, [r[f"train_{metric}"] for r in history], "o-", label="train")
        ax.plot(epochs, [r[f"val_{metric}"] for r in history], "o-", label="val")
        ax.set(title=title, xlabel="epoch")
    for ax in axes:
        if best_epoch:
            ax.axvline(best_epoch, color="tab:green", ls=":", lw=1.5,
                       label=f"best epoch ({best_epoch})")
        _integer_epochs(ax)
        ax.grid(alpha=0.3)
    axes[2].plot(epochs, [r["lr"] for r in history], "o-")
    axes[2].set(title="learning rate", xlabel="epoch")
    # Fixed corners where curves that learn leave room: loc="best" would search every time.
    axes[0].legend(loc="upper right")
    axes[1].legend(loc="lower right")
    _margins(fig, left=0.6, right=0.2, top=0.4, bottom=0.55, wspace=0.22)
    return _save(fig, path)


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], title: str,
                   path: Path):
    """Counts beside the row-normalized matrix: the diagonal of the second is per-class recall.
    Zero cells stay blank; values are written up to 20 classes."""
    import torch  # here, not above: the sweep summary's plots must not wait for torch

    from ..evaluation.metrics import confusion_matrix

    n = len(classes)
    counts = confusion_matrix(torch.as_tensor(y_true), torch.as_tensor(y_pred), n)
    rows = counts.sum(1, keepdims=True)
    recall = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    size = min(max(4.5, 0.45 * n), 12.0)  # inches a matrix
    fontsize = _category_fontsize(n, size)
    names = _text_inches(classes, fontsize) + 0.15
    left, bottom, top, gap = names + 0.5, names + 0.5, 0.8, 0.3
    fig = _figure((left + 2 * size + gap + 0.2, top + size + bottom))
    axes = fig.subplots(1, 2, sharey=True)
    _margins(fig, left, 0.2, top, bottom, wspace=gap / size)
    for ax, matrix, name in ((axes[0], counts, "counts"),
                             (axes[1], recall, "row-normalized (recall)")):
        ax.imshow(matrix, cmap="Blues", interpolation="nearest", aspect="equal")
        ax.set_xticks(range(n), classes, rotation=90, fontsize=fontsize)
        ax.set_yticks(range(n), classes, fontsize=fontsize)
        ax.set(title=name, xlabel="predicted label")
        if n <= 20:
            _cell_values(ax, matrix, integer=matrix is counts)
    axes[0].set_ylabel("true label")
    axes[1].tick_params(labelleft=False)
    fig.suptitle(f"Confusion matrix: {title}")
    return _save(fig, path)


def _cell_values(ax, matrix: np.ndarray, integer: bool) -> None:
    top = matrix.max() or 1
    for (i, j), value in np.ndenumerate(matrix):
        if value == 0:
            continue  # blank: the eye finds the confusions that do happen
        text = f"{value:d}" if integer else ("<.01" if value < 0.005 else f"{value:.2f}")
        ax.text(j, i, text, ha="center", va="center", fontsize=8,
                color="white" if value > 0.6 * top else "black")


def plot_per_class(accuracy: dict[str, float], title: str, path: Path):
    """Accuracy within each true class, with the mean over classes as a reference line: in
    class order up to SIDEWAYS classes, above that as horizontal bars sorted worst first."""
    names, values = list(accuracy), np.array(list(accuracy.values()), dtype=float)
    colors = _cmap("RdYlGn")(values)
    mean = float(values.mean()) if len(values) else 0.0
    labels = [f"{v:.2f}" for v in values]
    mean_text = f"dashed line: mean over classes {mean:.3f}"
    if len(names) <= SIDEWAYS:
        axes_width = max(5.0, 0.5 * len(names) + 1)
        fig = _figure((axes_width + 1.0, 4.0))
        ax = fig.subplots()
        ax.bar(range(len(names)), values, color=colors)
        ax.axhline(mean, color="k", ls="--", lw=1)
        # Values above the axes, in a row of their own: the mean line stays below 1.
        for i, label in enumerate(labels):
            ax.text(i, 1.01, label, transform=_blended(ax, "x"), ha="center", va="bottom",
                    fontsize=8)
        names_height = _class_xticks(ax, names, axes_width)
        ax.set(xlabel=f"class ({mean_text})", ylabel="accuracy (recall)", ylim=(0, 1),
               xlim=(-0.6, len(names) - 0.4))
        ax.set_title(f"Per-class accuracy: {title}", pad=18)
        fig.set_size_inches(axes_width + 1.0, 4.0 + names_height)
        _margins(fig, left=0.75, right=0.25, top=0.65, bottom=names_height + 0.55)
        return _save(fig, path)
    order = np.argsort(-values, kind="stable")  # best in the top row
    axes_height = 0.16 * len(names)
    fontsize = _category_fontsize(len(names), axes_height)
    left = _text_inches(names, fontsize) + 0.3
    fig = _figure((left + 6.5, axes_height + 1.1))
    _margins(fig, left, right=0.6, top=0.5, bottom=0.6)
    ax = fig.subplots()
    y = np.arange(len(names))
    ax.barh(y, values[order], color=colors[order])
    ax.axvline(mean, color="k", ls="--", lw=1)
    for yi, i in zip(y, order):
        ax.text(1.01, yi, labels[i], transform=_blended(ax, "y"), va="center",
                fontsize=fontsize)
    ax.set_yticks(y, [names[i] for i in order], fontsize=fontsize)
    ax.set(xlabel=f"accuracy (recall); {mean_text}",
           xlim=(0, 1), ylim=(len(names) - 0.4, -0.6))
    ax.set_title(f"Per-class accuracy, best first: {title}")
    return _save(fig, path)


def plot_misclassified(images: np.ndarray, true: np.ndarray, pred: np.ndarray,
                       confidence: np.ndarray, classes: list[str], total: tuple[int, int],
                       path: Path):
    """A grid of wrong test predictions, most confident first: true → predicted (confidence)."""
    cols = min(5, max(len(images), 1))
    rows = max(1, -(-len(images) // cols))
    fig = _figure((2.4 * cols, 2.9 * rows + 0.8), "constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, t, p, c in zip(axes.flat, images, true, pred, confidence):
        _show_image(ax, img)
        ax.set_title(f"{classes[t]} →\n{classes[p]} ({c:.0%})", fontsize=9,
                     color="red" if c > 0.8 else "darkorange")
    wrong, n = total
    if not len(images):
        axes[0, 0].text(0.5, 0.5, "no misclassified test images", ha="center", va="center")
    fig.suptitle(f"Misclassified test images: {wrong} of {n} ({wrong / max(n, 1):.1%}), "
                 f"most confident first\ntrue → predicted (confidence)")
    return _save(fig, path)


def plot_tsne(panels: list[tuple[str, np.ndarray]], labels: np.ndarray, classes: list[str],
              title: str, path: Path):
    """One t-SNE scatter per (title, 2-D embedding), coloured by true class."""
    fig = _figure((6.5 * len(panels) + 2.5, 6), "constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)
    cmap = _cmap("tab10" if len(classes) <= 10 else "tab20")
    for ax, (name, points) in zip(axes[0], panels):
        for c, class_name in enumerate(classes):
            mask = labels == c
            ax.scatter(points[mask, 0], points[mask, 1], s=8, alpha=0.8,
                       color=cmap(c % cmap.N), label=class_name)
        ax.set(title=name, xlabel="t-SNE 1", ylabel="t-SNE 2", xticks=[], yticks=[])
    if len(classes) <= 20:
        axes[0, -1].legend(title="class", bbox_to_anchor=(1.02, 1), loc="upper left",
                           markerscale=2, fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def plot_weights(layers: list[tuple[str, np.ndarray, np.ndarray | None]], path: Path):
    """A histogram of each layer's weights, trained over initial when the latter is known."""
    cols = min(4, len(layers))
    rows = -(-len(layers) // cols)
    fig = _figure((4.5 * cols, 3.2 * rows + 0.5), "constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(layers):]:
        ax.axis("off")
    for ax, (name, trained, initial) in zip(axes.flat, layers):
        bins = np.histogram_bin_edges(trained if initial is None
                                      else np.concatenate([trained, initial]), bins=60)
        if initial is not None:
            ax.hist(initial, bins=bins, alpha=0.5, color="gray", label="initial")
        ax.hist(trained, bins=bins, alpha=0.7, color="tab:blue", label="trained")
        ax.set_title(f"{name}\n{trained.size:,} weights, std {trained.std():.3g}", fontsize=8,
                     wrap=True)
        ax.set(xlabel="weight", ylabel="count")
        ax.legend(fontsize=8)
    fig.suptitle("Weight distribution per layer (best checkpoint)")
    return _save(fig, path)


def plot_gap(history: list[dict], path: Path):
    """Train minus val accuracy per epoch: above zero and growing means overfitting."""
    epochs = [row["epoch"] for row in history]
    gap = [row["train_acc"] - row["val_acc"] for row in history]
    fig = _figure((7, 4))
    ax = fig.subplots()
    ax.plot(epochs, gap, "o-", color="tab:red")
    ax.axhline(0, color="k", lw=0.8)
    ax.set(title="Generalization gap (train acc is measured during the epoch)",
           xlabel="epoch", ylabel="train acc − val acc")
    _integer_epochs(ax)
    ax.grid(alpha=0.3)
    _margins(fig, left=0.8, right=0.2, top=0.4, bottom=0.55)
    return _save(fig, path)


def plot_samples(images: np.ndarray, labels: np.ndarray, classes: list[str], path: Path,
                 per_class: int = 8):
    """The first `per_class` training images of each class, one class per row."""
    shown = [c for c in range(len(classes)) if (labels == c).any()][:20]
    fig = _figure((1.1 * per_class + 1.8, 1.1 * len(shown) + 0.6), "constrained")
    axes = fig.subplots(len(shown), per_class, squeeze=False)
    for row, c in zip(axes, shown):
        picks = np.flatnonzero(labels == c)[:per_class]
        for ax in row:
            ax.set(xticks=[], yticks=[])
            ax.spines[:].set_visible(False)
        for ax, i in zip(row, picks):
            _show_image(ax, images[i])
        row[0].set_ylabel(classes[c], rotation=0, ha="right", va="center", fontsize=9)
    more = f" (first 20 of {len(classes)} classes)" if len(classes) > 20 else ""
    fig.suptitle(f"Training samples per class{more}")
    return _save(fig, path)


def plot_class_distribution(counts: dict[str, np.ndarray], classes: list[str], path: Path):
    """Images per class in each split, side by side; horizontal above SIDEWAYS classes. The
    legend sits right of the axes, where no bar reaches."""
    n = len(classes)
    width = 0.8 / len(counts)
    offsets = [(i - (len(counts) - 1) / 2) * width for i in range(len(counts))]
    labels = [f"{split} ({c.sum():,})" for split, c in counts.items()]
    legend_width = _text_inches(labels, 8) + 0.6
    if n <= SIDEWAYS:
        axes_width = max(5.0, 0.5 * n + 1)
        fig = _figure((axes_width + 0.9 + legend_width, 4.0))
        ax = fig.subplots()
        for offset, c, label in zip(offsets, counts.values(), labels):
            ax.bar(np.arange(n) + offset, c, width, label=label)
        names_height = _class_xticks(ax, classes, axes_width)
        ax.set(xlabel="class", ylabel="images", xlim=(-0.6, n - 0.4))
        fig.set_size_inches(axes_width + 0.9 + legend_width, 4.0 + names_height)
        _margins(fig, left=0.75, right=legend_width, top=0.4, bottom=names_height + 0.55)
    else:
        axes_height = 0.16 * n
        fontsize = _category_fontsize(n, axes_height)
        left = _text_inches(classes, fontsize) + 0.3
        fig = _figure((left + 6.0 + legend_width, axes_height + 1.0))
        _margins(fig, left, right=legend_width, top=0.4, bottom=0.6)
        ax = fig.subplots()
        for offset, c, label in zip(offsets, counts.values(), labels):
            ax.barh(np.arange(n) + offset, c, width, label=label)
        ax.set_yticks(range(n), classes, fontsize=fontsize)
        ax.set(xlabel="images", ylim=(n - 0.4, -0.6))
    ax.set_title("Class distribution per split")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _save(fig, path)


def plot_mean_images(means: np.ndarray, classes: list[str], path: Path):
    """The pixel-wise mean training image of each class: how separable the classes look."""
    cols = min(10, len(classes))
    rows = -(-len(classes) // cols)
    fig = _figure((1.7 * cols, 1.8 * rows + 0.6), "constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, name in zip(axes.flat, means, classes):
        _show_image(ax, img)
        ax.set_title(name, fontsize=8)
    fig.suptitle("Mean training image per class")
    return _save(fig, path)


def plot_shift(shift: dict[str, dict], chance: float, path: Path):
    """Test accuracy and mean top-1 confidence against the translation in pixels."""
    ks = [int(k) for k in shift]
    fig = _figure((7, 4), "constrained")
    ax = fig.subplots()
    for key, label, style in (("accuracy", "accuracy", "o-"),
                              ("confidence", "mean confidence (max softmax)", "s--")):
        ax.plot(ks, [shift[str(k)][key] for k in ks], style, label=label)
    ax.axhline(chance, color="gray", ls=":", label=f"chance ({chance:.2f})")
    ax.set(title="Translation probe: test images shifted by k px (mean of 4 directions)",
           xlabel="shift k (pixels)", ylabel="fraction", ylim=(0, 1.05), xticks=ks)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _show_image(ax, img: np.ndarray) -> None:
    """Draw a (C, H, W) image with values in [0, 1]: grey with one channel, RGB with three."""
    if img.shape[0] == 1:
        ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 1))


# ----------------------------------------------------------------------------------------------
# Sweep comparisons (vbench-report and the multirun summary). Every run of one configuration
# (its seed group) keeps one colour in all three plots: `colors` maps a group's label to it.


def run_colors(labels: list[str]) -> dict[str, tuple]:
    """A colour per distinct label, in first-seen order (tab10, then tab20, then cycling)."""
    distinct = list(dict.fromkeys(labels))
    cmap = _cmap("tab10" if len(distinct) <= 10 else "tab20")
    return {label: cmap(i % cmap.N) for i, label in enumerate(distinct)}


def _sweep_figure(labels: list[str], height: float = 5.0):
    """A figure with one axes of 7.5 x `height` inches, and room on the right for a legend of
    `labels` when there are more than MANY_RUNS of them (inside the axes otherwise)."""
    labels = list(dict.fromkeys(labels))  # seed repeats share one entry
    outside = len(labels) > MANY_RUNS
    right = _text_inches(labels, 7) + 0.7 if outside else 0.25
    fig = _figure((0.85 + 7.5 + right, height + 1.0))
    _margins(fig, left=0.85, right=right, top=0.45, bottom=0.55)
    ax = fig.subplots()
    return fig, ax, outside


def _legend(ax, outside: bool) -> None:
    if outside:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    else:
        ax.legend(fontsize=7, loc="best")


def plot_sweep_curves(curves: list[tuple[str, list[dict]]], colors: dict, path: Path):
    """Validation accuracy per epoch of every run, overlaid; the repeats of one configuration
    share its colour and one legend entry."""
    fig, ax, outside = _sweep_figure([label for label, _ in curves])
    seen = set()
    for label, history in curves:
        ax.plot([r["epoch"] for r in history], [r["val_acc"] for r in history], "-",
                marker="o" if len(history) < 30 else None, ms=3, color=colors[label],
                label=None if label in seen else label)
        seen.add(label)
    ax.set(title=f"Validation accuracy per epoch ({len(curves)} runs)", xlabel="epoch",
           ylabel="val accuracy")
    _integer_epochs(ax)
    ax.grid(alpha=0.3)
    _legend(ax, outside)
    return _save(fig, path)


def plot_sweep_bars(groups: list[dict], colors: dict, path: Path):
    """Best-checkpoint test accuracy per configuration, as a dot with its sample std over
    seeds when the configuration ran with several; the axis spans the data, so sub-point
    differences show. Configurations without a result are listed with their status."""
    left = _text_inches([g["label"] for g in groups], 8) + 0.3
    fig = _figure((left + 7.0 + 1.1, 0.35 * len(groups) + 1.3))
    _margins(fig, left, right=1.1, top=0.45, bottom=0.6)
    ax = fig.subplots()
    y = np.arange(len(groups))[::-1]
    done = [g["best_test_acc"] for g in groups if g["best_test_acc"] is not None]
    low, high = (min(done), max(done)) if done else (0.0, 1.0)
    pad = max(0.1 * (high - low), 0.005)
    seeds = any(g["best_test_acc_n"] > 1 for g in groups)
    for yi, g in zip(y, groups):
        mean, n = g["best_test_acc"], g["best_test_acc_n"]
        if mean is None:
            ax.text(0.01, yi, g["statuses"], transform=_blended(ax, "y"), va="center",
                    fontsize=8, color="red")
            continue
        ax.errorbar(mean, yi, xerr=g["best_test_acc_std"] or 0.0, fmt="o", capsize=3,
                    color=colors[g["label"]])
        ax.text(1.01, yi, f"{mean:.4f}" + (f" (n={n})" if n > 1 else ""),
                transform=_blended(ax, "y"), va="center", fontsize=8)
    ax.set_yticks(y, [g["label"] for g in groups], fontsize=8)
    what = "mean ± sample std over seeds" if seeds else "one run each"
    ax.set(title=f"Test accuracy of the best checkpoint ({what})", xlabel="test accuracy",
           xlim=(low - pad, high + pad), ylim=(-0.6, len(groups) - 0.4))
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_accuracy_vs_params(points: list[tuple[str, int, float]], colors: dict, path: Path):
    """Test accuracy against parameter count (log scale): what each parameter buys. Runs of
    equal size are spread sideways (±4 %) so none hides another; the legend names what
    differs between runs."""
    fig, ax, outside = _sweep_figure([label for label, _, _ in points])
    sizes: dict[int, int] = {}
    for _, params, _ in points:
        sizes[params] = sizes.get(params, 0) + 1
    placed: dict[int, int] = {}
    seen = set()
    for label, params, acc in points:
        k, i = sizes[params], placed.get(params, 0)
        placed[params] = i + 1
        x = params * (1.04 ** (i - (k - 1) / 2)) if k > 1 else params
        ax.scatter(x, acc, s=36, color=colors[label], label=None if label in seen else label,
                   zorder=3)
        seen.add(label)
    ax.set_xscale("log")
    accs = [acc for _, _, acc in points]
    pad = max(0.1 * (max(accs) - min(accs)), 0.005)
    ax.set(title="Test accuracy against model size", xlabel="parameters (log scale)",
           ylabel="best-checkpoint test accuracy", ylim=(min(accs) - pad, max(accs) + pad))
    ax.grid(alpha=0.3, which="both")
    _legend(ax, outside)
    return _save(fig, path)
