"""The run's figures, drawn with matplotlib's object API (a Figure and the Agg canvas, no
pyplot state): nothing global to close, nothing shared between threads, and no GUI backend
ever imported. matplotlib is imported here only, when the first figure is drawn.

Every function saves its PNG atomically and returns the Figure, so tests can measure its texts.

What every figure keeps to:
- Axes show the differences: an axis that starts at zero only under bars; dots and lines take
  their range from the data, within the metric's own (an accuracy's axis never runs past 1.0
  or below 0: `_keep_within`). A first epoch that would squash every later one (the untrained
  model's epoch) is left out of a line plot's y range, and the caption says so.
- The best epoch is marked wherever epochs are drawn.
- Legends sit outside the axes; values are written with 4 significant digits.
- Sweep figures show configurations in one order, the leaderboard's ranking, numbered, each
  in one colour, with the keys every label sets stated once (see SweepLegend).
- A grey caption under the figure says what orders it and what it leaves out.

Class names: up to SIDEWAYS classes are drawn in class order with names turned upright only
when they do not fit side by side; per_class.png is a dot plot sorted best first, so 100
CIFAR-100 names stay readable. Value labels sit outside the data area, so no reference line
runs through them.
"""

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.columns import ACCURACY, UNIT, value_range
from .runs import partial, round_values, shared_keys
from .table import RUN_COLUMNS
from .verdicts import (
    LEADER,
    P_VALUE,
    RANK,
    RANKED_MEAN,
    RANKED_N,
    TIED,
    VS_LEADER,
    WORSE,
    ci95,
    p_text,
)

SIDEWAYS = 20  # above this many classes, bar charts turn horizontal (names on the y axis)
OVERLAY = 4  # up to this many configurations share one axes; more get a panel each
PANELS = 30  # at most this many panels (the best-ranked configurations)
CAPTION_PT = 8  # the grey caption under a figure
SPLIT_COLORS = {"train": "tab:blue", "val": "tab:orange"}
BEST = "tab:green"  # the best epoch's line and star


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


def significant(value: float, digits: int = 4) -> str:
    """A value label: `digits` significant digits, trailing zeros kept (0.9800, 1.000)."""
    return f"{value:#.{digits}g}"


def _caption(fig, text: str) -> float:
    """`text` in grey under the axes, wrapped to the figure's width (placed in inches from the
    bottom-left corner, so later resizing keeps it there); returns the height it takes, for the
    bottom margin."""
    width = fig.get_size_inches()[0]
    chars = max(30, int((width - 0.3) * 72 / (0.62 * CAPTION_PT)))
    lines = textwrap.wrap(text, chars)
    fig.text(0.15, 0.1, "\n".join(lines), fontsize=CAPTION_PT, color="0.35", ha="left",
             va="bottom", transform=fig.dpi_scale_trans)
    return len(lines) * 1.3 * CAPTION_PT / 72 + 0.15


def _first_epoch_outlier(series: list[tuple[list, list]]) -> bool:
    """Whether epoch 1 would squash a line plot: the range over all epochs is more than twice
    the range from epoch 2 on (the first epoch starts from an untrained model; the figure is
    about what follows). `series` holds (epochs, values) pairs; needs 3 later epochs."""
    first, rest = _split_first(series)
    if not first or len(rest) < 3:
        return False
    every = first + rest
    return float(np.ptp(every)) > 2 * float(np.ptp(rest))


def _split_first(series) -> tuple[list[float], list[float]]:
    first, rest = [], []
    for epochs, values in series:
        for e, v in zip(epochs, values):
            if np.isfinite(v):
                (first if e <= 1 else rest).append(float(v))
    return first, rest


def _y_range(series, skip_first: bool, include: tuple = ()) -> tuple[float, float]:
    """The data's range (from epoch 2 on when `skip_first`), with `include` and a margin."""
    first, rest = _split_first(series)
    values = [*(rest if skip_first else first + rest), *include] or [0.0, 1.0]
    low, high = min(values), max(values)
    pad = max(0.08 * (high - low), 1e-3 * max(abs(low), abs(high)), 1e-6)
    return low - pad, high + pad


def _keep_within(ax, axis: str, bounds: tuple[float, float] | None) -> None:
    """The `axis` ("x" or "y") limits, however they were set (autoscale included), cut to
    `bounds`, a metric's range (columns.value_range): all accuracies 1.0 draw an axis that
    ends at 1.0, not one from 0.999 to 1.001. None leaves them."""
    if bounds is None:
        return
    low, high = ax.get_ylim() if axis == "y" else ax.get_xlim()
    (ax.set_ylim if axis == "y" else ax.set_xlim)(max(low, bounds[0]), min(high, bounds[1]))


def _first_epoch_note(series, what: str = "the y axis") -> str:
    first, _ = _split_first(series)
    value = significant(first[0]) if len(first) == 1 else \
        f"{significant(min(first))} to {significant(max(first))}"
    return (f"{what[0].upper()}{what[1:]} leaves out epoch 1 ({value}), which would squash "
            "the later epochs.")


def _epoch_axis(ax, epochs) -> None:
    """Whole epochs, with half an epoch of room on both sides: a mark on the first or the last
    epoch stays off the frame."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(epochs):
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)


def _positive(*series) -> bool:
    values = [v for s in series for v in s if np.isfinite(v)]
    return bool(values) and min(values) > 0


# ----------------------------------------------------------------------------------------------
# One run


def plot_curves(history: list[dict], path: Path, best_epoch: int | None = None):
    """Loss (log scale), accuracy (train and val) and learning rate per epoch; the best epoch
    marked on every panel, the legend right of them."""
    epochs = [row["epoch"] for row in history]
    fig = _figure((15, 4.2))
    axes = fig.subplots(1, 3)
    handles, notes = {}, []
    for ax, metric, title in ((axes[0], "loss", "loss"), (axes[1], "acc", "accuracy")):
        series = {split: [r[f"{split}_{metric}"] for r in history] for split in SPLIT_COLORS}
        for split, values in series.items():
            handles[split], = ax.plot(epochs, values, "o-", ms=3, color=SPLIT_COLORS[split],
                                      label=split)
            if best_epoch in epochs:
                ax.plot(best_epoch, values[epochs.index(best_epoch)], "*", ms=11, color=BEST,
                        zorder=4)
        pairs = [(epochs, v) for v in series.values()]
        if metric == "loss" and _positive(*series.values()):
            ax.set_yscale("log")
            title = "loss (log scale)"
        elif metric == "acc" and _first_epoch_outlier(pairs):
            ax.set_ylim(*_y_range(pairs, skip_first=True))
            notes.append(_first_epoch_note(pairs, "the accuracy axis"))
        _keep_within(ax, "y", value_range(f"val_{metric}"))
        ax.set(title=title, xlabel="epoch")
    handles["lr"], = axes[2].plot(epochs, [r["lr"] for r in history], "o-", ms=3, color="0.35",
                                  label="learning rate")
    axes[2].set(title="learning rate", xlabel="epoch")
    for ax in axes:
        if best_epoch:
            handles["best"] = ax.axvline(best_epoch, color=BEST, ls=":", lw=1.5,
                                         label=f"best epoch ({best_epoch})")
        _epoch_axis(ax, epochs)
        ax.grid(alpha=0.3)
    what = [(f"The dotted line and the stars mark the best epoch ({best_epoch}), the "
            "checkpoint every 'best' number comes from.")] if best_epoch else []
    bottom = _caption(fig, " ".join([*what, *notes]) or "Train and val per epoch.")
    height, right = 4.2 + bottom, 1.85
    fig.set_size_inches(15, height)
    _margins(fig, left=0.65, right=right, top=0.4, bottom=0.55 + bottom, wspace=0.25)
    fig.legend(handles=list(handles.values()), loc="upper left", fontsize=9, frameon=False,
               bbox_to_anchor=(1 - (right - 0.1) / 15, 1 - 0.35 / height))
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
    # Column names stand upright only when they do not fit side by side ("0"-"9" do).
    upright = names - 0.15 > 0.85 * size / max(n, 1)
    left, top, gap = names + 0.5, 0.8, 0.3
    bottom = (names if upright else 1.4 * fontsize / 72 + 0.15) + 0.5
    fig = _figure((left + 2 * size + gap + 0.2, top + size + bottom))
    axes = fig.subplots(1, 2, sharey=True)
    _margins(fig, left, 0.2, top, bottom, wspace=gap / size)
    for ax, matrix, name in ((axes[0], counts, "counts"),
                             (axes[1], recall, "row-normalized (recall)")):
        ax.imshow(matrix, cmap="Blues", interpolation="nearest", aspect="equal")
        ax.set_xticks(range(n), classes, rotation=90 if upright else 0, fontsize=fontsize)
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
    """Accuracy within each true class as a dot plot sorted best first, on an axis that spans
    the data (the digits' classes differ between 0.91 and 1.00: on a 0-1 axis they would look
    alike), with the mean over classes as a dashed line and every value written beside the
    axes. Dots, not bars: a bar's length means something only from zero."""
    names, values = list(accuracy), np.array(list(accuracy.values()), dtype=float)
    order = np.argsort(-values, kind="stable")  # best in the top row
    n = len(names)
    axes_height = max(1.6, (0.3 if n <= SIDEWAYS else 0.16) * n)
    fontsize = _category_fontsize(n, axes_height)
    labels = [significant(v) for v in values]
    left = _text_inches(names, fontsize) + 0.35
    right = _text_inches(labels, fontsize) + 0.35
    width = left + 6.0 + right
    mean = float(values.mean()) if n else 0.0
    low, high = (float(values.min()), float(values.max())) if n else (0.0, 1.0)
    fig = _figure((width, axes_height + 1.2))
    bottom = _caption(fig, f"Sorted best first. The axis spans the data ({significant(low)} to "
                           f"{significant(high)}), not 0 to 1. Dashed line: the mean over "
                           f"classes, {significant(mean)}.")
    fig.set_size_inches(width, axes_height + 1.0 + bottom)
    _margins(fig, left, right=right, top=0.45, bottom=0.55 + bottom)
    ax = fig.subplots()
    y = np.arange(n)
    # Not clipped: a dot at 1.0 sits on the frame, whole.
    ax.plot(values[order], y, "o", color="tab:blue", ms=6 if n <= SIDEWAYS else 4, zorder=3,
            clip_on=False)
    ax.axvline(mean, color="k", ls="--", lw=1)
    for yi, i in zip(y, order):
        ax.text(1.01, yi, labels[i], transform=_blended(ax, "y"), va="center",
                fontsize=fontsize)
    ax.set_yticks(y, [names[i] for i in order], fontsize=fontsize)
    pad = max(0.08 * (high - low), 0.005)
    ax.set(xlabel="accuracy within the class (recall)", xlim=(low - pad, high + pad),
           ylim=(n - 0.5, -0.5))
    _keep_within(ax, "x", value_range(ACCURACY))
    ax.grid(alpha=0.3)
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
              title: str, path: Path, seed: int = 0):
    """One t-SNE scatter per (title, features), coloured by true class: scikit-learn's TSNE
    projects each panel's features to 2-D here, so that a background drawer pays for it."""
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (len(labels) - 1) / 3)
    panels = [(name, TSNE(n_components=2, init="pca", learning_rate="auto", perplexity=perplexity,
                          random_state=seed).fit_transform(features))
              for name, features in panels]
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


def plot_gap(history: list[dict], path: Path, best_epoch: int | None = None):
    """Train minus val accuracy per epoch: above zero and growing means overfitting. The y
    axis spans the data and zero; an outlying first epoch is left out of it (the caption says
    so); the best epoch is marked."""
    epochs = [row["epoch"] for row in history]
    gap = [row["train_acc"] - row["val_acc"] for row in history]
    fig = _figure((8.5, 4.0))
    ax = fig.subplots()
    ax.plot(epochs, gap, "o-", ms=3, color="tab:red", label="train acc − val acc")
    ax.axhline(0, color="k", lw=0.8)
    if best_epoch in epochs:
        ax.axvline(best_epoch, color=BEST, ls=":", lw=1.5, label=f"best epoch ({best_epoch})")
        ax.plot(best_epoch, gap[epochs.index(best_epoch)], "*", ms=11, color=BEST, zorder=4)
    notes = [("Train accuracy is measured during each epoch, while the weights change; val "
             "accuracy after it. Above 0 and growing: overfitting.")]
    pairs = [(epochs, gap)]
    if _first_epoch_outlier(pairs):
        ax.set_ylim(*_y_range(pairs, skip_first=True, include=(0.0,)))
        notes.append(_first_epoch_note(pairs))
    ax.set(title="Generalization gap", xlabel="epoch", ylabel="train acc − val acc")
    _epoch_axis(ax, epochs)
    ax.grid(alpha=0.3)
    bottom = _caption(fig, " ".join(notes))
    fig.set_size_inches(8.5, 4.0 + bottom)
    right = _text_inches(["train acc − val acc", f"best epoch ({best_epoch})"], 9) + 0.8
    _margins(fig, left=0.8, right=right, top=0.4, bottom=0.55 + bottom)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, frameon=False)
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
    width = fig.get_size_inches()[0]
    fig.suptitle(textwrap.fill(f"Training samples per class{more}",
                               max(12, int(width * 72 / (0.62 * 12)))))
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
        ax.plot(ks, [shift[str(k)][key] for k in ks], style, label=label, clip_on=False)
    ax.axhline(chance, color="gray", ls=":", label=f"chance ({chance:.2f})")
    ax.set(title="Translation probe: test images shifted by k px (mean of 4 directions)",
           xlabel="shift k (pixels)", ylabel="fraction", ylim=UNIT, xticks=ks)
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
# Sweep comparisons (vbench-report, the multirun summary and report.html). Every run of one
# configuration (its seed group) keeps one colour, one name and one place in the order.


LABEL_CHARS = 40  # a configuration's name wraps past this many characters


@dataclass(frozen=True)
class SweepLegend:
    """How the sweep figures show the configurations: `order` is the leaderboard's ranking by
    `ranked_by` (best first); each label has a colour, a rank (the tables'; None without a
    result) and a name (its rank, then its values: when every label sets the same keys they
    are stated once, in `keys`)."""

    order: list[str]
    names: dict[str, str]
    colors: dict[str, tuple]
    keys: str
    ranked_by: str
    ranks: dict[str, int | None]

    def ranked(self, labels) -> list[str]:
        """The distinct `labels`, in the ranking's order."""
        return sorted(set(labels), key=self.order.index)

    @property
    def caption(self) -> str:
        return (f"In the leaderboard's order: ranked by {self.ranked_by}, best first "
                "(the numbers are ranks).")


def sweep_legend(groups: list[dict], ranked_by: str) -> SweepLegend:
    """The legend of the configurations (runs.configurations: seed groups with their rank by
    `ranked_by`), in the leaderboard's order, each named by its rank (shared by equal values,
    as the tables share it; none for a configuration without a result) and its values; an
    Optuna search's pruned trials say so: their numbers are of fewer epochs."""
    groups = sorted(groups, key=lambda g: (g[RANK] is None, g[RANK] or 0))
    order = [g["label"] for g in groups]
    keys, values = shared_keys([" ".join(t) for t in round_values([o.split() for o in order])])
    values = [f"{v} (pruned)" if partial(g) else v for v, g in zip(values, groups, strict=True)]
    names = {g["label"]: textwrap.fill(value if g[RANK] is None else f"{g[RANK]}. {value}",
                                       LABEL_CHARS, subsequent_indent="   ")
             for g, value in zip(groups, values)}
    return SweepLegend(order, names, run_colors(order), keys, ranked_by,
                       {g["label"]: g[RANK] for g in groups})


def run_colors(labels: list[str]) -> dict[str, tuple]:
    """A colour per distinct label, in first-seen order (tab10, then tab20, then cycling)."""
    distinct = list(dict.fromkeys(labels))
    cmap = _cmap("tab10" if len(distinct) <= 10 else "tab20")
    return {label: cmap(i % cmap.N) for i, label in enumerate(distinct)}


def _lines(text: str) -> int:
    return text.count("\n") + 1


def _legend_box(legend: SweepLegend, labels: list[str], fontsize: float = 9):
    """Width and height in inches of a legend of `labels` (one column up to 30, then two)."""
    names = [line for label in labels for line in legend.names[label].split("\n")]
    columns = 1 if len(labels) <= 30 else 2
    width = columns * (_text_inches([*names, f"rank. {legend.keys}"], fontsize) + 0.6)
    rows = -(-len(names) // columns) + (1 if legend.keys else 0)
    return width, rows * 1.45 * fontsize / 72 + 0.2, columns


def _outside_legend(ax, legend: SweepLegend, labels: list[str], handles: dict,
                    columns: int, fontsize: float = 9) -> None:
    ax.legend([handles[label] for label in labels], [legend.names[label] for label in labels],
              title=f"rank. {legend.keys}" if legend.keys else None, title_fontsize=fontsize,
              fontsize=fontsize,
              loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, ncols=columns,
              alignment="left")


def _sweep_series(curves, key: str):
    """(epochs, values) of every run with `key` in its history."""
    return [([r["epoch"] for r in history], [r[key] for r in history])
            for _, history, _ in curves if history and key in history[0]]


def _draw_run(ax, history, best_epoch, key: str, color, **style) -> None:
    epochs = [r["epoch"] for r in history]
    values = [r[key] for r in history]
    line, = ax.plot(epochs, values, "-", color=color, marker="o" if len(epochs) < 30 else None,
                    ms=3, **style)
    if best_epoch in epochs:
        ax.plot(best_epoch, values[epochs.index(best_epoch)], "*", ms=10, color=color,
                markeredgecolor="k", markeredgewidth=0.5, zorder=5)
    return line


def plot_sweep_curves(curves: list[tuple[str, list[dict], int | None]], legend: SweepLegend,
                      path: Path, key: str = "val_acc", what: str = "Validation accuracy"):
    """`key` per epoch of every run, (label, history, best epoch) each; a star on each run's
    best epoch. Up to OVERLAY configurations share one axes with the legend right of it; more
    get a panel each (the run in colour over the others in grey, all panels on one y axis),
    in the ranking's order: ten overlaid lines tangle. Repeats of a configuration (seeds)
    share its colour and panel."""
    series = _sweep_series(curves, key)
    skip = _first_epoch_outlier(series)
    limits = _y_range(series, skip_first=skip)
    ylabel = what.lower()
    all_epochs = [e for epochs, _ in series for e in epochs]
    configs = legend.ranked(label for label, history, _ in curves if history)
    notes = ["Stars mark each run's best epoch."]
    if skip:
        notes.append(_first_epoch_note(series))
    runs = sum(1 for _, history, _ in curves if history)
    if len(configs) <= OVERLAY:
        width, height, columns = _legend_box(legend, configs)
        fig = _figure((0.85 + 7.0 + width, max(4.6, height + 1.2)))
        ax = fig.subplots()
        handles = {}
        for label, history, best in curves:
            if history:
                handles[label] = _draw_run(ax, history, best, key, legend.colors[label])
        ax.set(title=f"{what} per epoch ({runs} runs)", xlabel="epoch", ylabel=ylabel,
               ylim=limits)
        _keep_within(ax, "y", value_range(key))
        _epoch_axis(ax, all_epochs)
        ax.grid(alpha=0.3)
        bottom = _caption(fig, " ".join([legend.caption, *notes]))
        fig.set_size_inches(0.85 + 7.0 + width, max(4.6, height + 1.2) + bottom)
        _margins(fig, left=0.85, right=width + 0.1, top=0.45, bottom=0.55 + bottom)
        _outside_legend(ax, legend, configs, handles, columns)
        return _save(fig, path)

    shown = configs[:PANELS]
    if len(configs) > PANELS:
        notes.append(f"The {PANELS} best of {len(configs)} configurations are shown.")
    cols = min(5, len(shown))
    rows = -(-len(shown) // cols)
    panel_w, panel_h = 2.7, 1.8
    title_h = max(_lines(legend.names[label]) for label in shown) * 1.3 * 8 / 72 + 0.12
    top = 0.45 + (0.2 if legend.keys else 0)
    width = 0.75 + cols * panel_w + (cols - 1) * 0.15 + 0.2
    fig = _figure((width, 4.0))
    bottom = _caption(fig, " ".join([legend.caption, ("Each panel draws its configuration in "
                                     "colour over every other run in grey."), *notes]))
    height = top + rows * (panel_h + title_h) + 0.5 + bottom
    fig.set_size_inches(width, height)
    _margins(fig, left=0.75, right=0.2, top=top + title_h, bottom=0.5 + bottom,
             wspace=0.15 / panel_w)
    fig.subplots_adjust(hspace=title_h / panel_h)
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    for ax, label in zip(axes.flat, shown):
        for other, history, _ in curves:
            if history and other != label:
                ax.plot([r["epoch"] for r in history], [r[key] for r in history], "-",
                        color="0.82", lw=0.8, zorder=1)
        for own, history, best in curves:
            if history and own == label:
                _draw_run(ax, history, best, key, legend.colors[label], lw=1.8, zorder=3)
        ax.set_title(legend.names[label], fontsize=8, loc="left")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=8)
    for ax in axes.flat[max(0, len(shown) - cols):len(shown)]:
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_tick_params(labelbottom=True)
    axes[0, 0].set_ylim(*limits)
    _keep_within(axes[0, 0], "y", value_range(key))
    _epoch_axis(axes[0, 0], all_epochs)
    title = f"{what} per epoch ({runs} runs), one panel per configuration"
    fig.suptitle(title + (f"\npanels: rank. {legend.keys}" if legend.keys else ""),
                 y=1 - 0.1 / height, va="top", fontsize=11)
    return _save(fig, path)


def curves_svg(curves: list[tuple[str, list[dict], int | None]], legend: SweepLegend,
               key: str, title: str) -> tuple[bytes, str]:
    """report.html's overlay of `key` per epoch for every run, as SVG, without a legend (the
    page lists the runs in HTML, where no label is cut), and its caption: a loss on a log
    scale, an accuracy without an outlying first epoch; a star on each run's best epoch."""
    fig = _figure((6.4, 3.8), "constrained")
    ax = fig.subplots()
    for label, history, best in curves:
        if history and key in history[0]:
            _draw_run(ax, history, best, key, legend.colors[label], lw=1.2)
    series = _sweep_series(curves, key)
    notes = ["Stars mark each run's best epoch."]
    if "loss" in key and _positive(*(values for _, values in series)):
        ax.set_yscale("log")
        title += " (log scale)"
    elif _first_epoch_outlier(series):
        ax.set_ylim(*_y_range(series, skip_first=True))
        notes.append(_first_epoch_note(series))
    _keep_within(ax, "y", value_range(key))
    ax.set(title=title, xlabel="epoch", ylabel=key)
    _epoch_axis(ax, [e for epochs, _ in series for e in epochs])
    ax.grid(alpha=0.3)
    import io

    import matplotlib

    buffer = io.BytesIO()
    # Text as <text>, not glyph outlines: a third of the size, and selectable.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "vbench"}):
        fig.savefig(buffer, format="svg")
    return buffer.getvalue(), " ".join(notes)


def _interval_text(mean, ci, n) -> str:
    """A dot's label: the mean, its 95 % CI's half-width and n when several seeds ran."""
    return (significant(mean) + (f" ± {significant(ci, 2)}" if ci else "")
            + (f" (n={n})" if n > 1 else ""))


def _verdict_text(g: dict) -> str:
    if g[VS_LEADER] == LEADER:
        return "  leader"
    if g[VS_LEADER] in (TIED, WORSE):
        p = p_text(g[P_VALUE])
        return f"  {g[VS_LEADER]} ({'p < ' + p[1:] if p.startswith('<') else 'p = ' + p})"
    return ""


def plot_sweep_bars(groups: list[dict], legend: SweepLegend, path: Path):
    """Per configuration (runs.configurations), in the ranking's order, a dot at the mean with
    its 95 % confidence interval over seeds as an error bar: the ranked metric beside its
    verdict (leader, tied or worse, with Welch's p; the leader's interval shaded across the
    panel), and the best checkpoint's test accuracy, which only reports (so its dots need not
    fall in order: the caption says so). Each axis spans the data and its intervals.
    Configurations without a result show their status."""
    from matplotlib.ticker import MaxNLocator

    groups = sorted(groups, key=lambda g: legend.order.index(g["label"]))
    ranked = next(c for c in RUN_COLUMNS if c.key == legend.ranked_by)
    # (title, mean key, CI key, n key, verdicts shown: judged) of each panel, left to right.
    panels = [(f"{ranked.title} (ranks)", RANKED_MEAN, ci95(RANKED_MEAN), RANKED_N, True)]
    if legend.ranked_by != "best_test_acc":
        panels.append(("best test acc (reports)", "best_test_acc", ci95("best_test_acc"),
                       "best_test_acc_n", False))
    names = [legend.names[g["label"]] for g in groups]
    lines = max(map(_lines, names), default=1)
    row = 0.22 + 0.13 * lines
    texts = [[("" if g[mean] is None else _interval_text(g[mean], g[ci], g[n])
               + (_verdict_text(g) if judged else "")) for g in groups]
             for _, mean, ci, n, judged in panels]
    header = f"rank. {legend.keys}" if legend.keys else ""
    left = max(_text_inches([line for name in names for line in name.split("\n")], 8),
               1.1 * _text_inches([header], 8)) + 0.3  # the header is bold
    rights = [_text_inches(t, 8) + 0.35 for t in texts]
    panel_w = 6.5 if len(panels) == 1 else 3.6
    width = left + len(panels) * panel_w + sum(rights)
    fig = _figure((width, 4.0))
    seeds = any(g[n] > 1 for g in groups for _, _, _, n, _ in panels)
    notes = [(f"In the leaderboard's order, best at the top: ranked by {legend.ranked_by} (the "
             "numbers are ranks).")]
    if len(panels) > 1:
        notes.append("The validation split picks and the test split only reports, so the test "
                     "accuracies need not fall in order.")
    if seeds:
        notes.append("Error bars: 95 % confidence intervals of the mean over seeds (Student's "
                     "t, n − 1); the band is the leader's. 'tied': Welch's t-test cannot tell "
                     "the configuration from the leader (p ≥ 0.05).")
    bottom = _caption(fig, " ".join([*notes, "The axes span the data."]))
    top = 0.45 + (0.25 if legend.keys else 0)
    fig.set_size_inches(width, row * len(groups) + top + 0.6 + bottom)
    _margins(fig, left, right=rights[-1], top=top, bottom=0.6 + bottom,
             wspace=rights[0] / panel_w if len(panels) > 1 else 0.2)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    y = np.arange(len(groups))[::-1]
    for ax, (title, mean, ci, _, judged), values in zip(axes, panels, texts):
        spans = [(g[mean] - (g[ci] or 0), g[mean] + (g[ci] or 0))
                 for g in groups if g[mean] is not None]
        low, high = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else (0, 1)
        fraction = 0 <= low and high <= 1  # an accuracy: at least half a point of margin
        pad = max(0.08 * (high - low), 0.005 if fraction else 1e-3 * max(abs(low), abs(high)),
                  1e-6)
        for yi, g, text in zip(y, groups, values):
            if g[mean] is None:
                ax.text(0.01, yi, g["statuses"], transform=_blended(ax, "y"), va="center",
                        fontsize=8, color="red")
                continue
            ax.errorbar(g[mean], yi, xerr=g[ci] or 0.0, fmt="o", capsize=3,
                        color=legend.colors[g["label"]])
            ax.text(1.01, yi, text, transform=_blended(ax, "y"), va="center", fontsize=8)
            if judged and g[VS_LEADER] == LEADER and g[ci]:
                ax.axvspan(g[mean] - g[ci], g[mean] + g[ci], color=legend.colors[g["label"]],
                           alpha=0.12, lw=0, zorder=0)
        ax.set(xlabel=title, xlim=(low - pad, high + pad), ylim=(-0.6, len(groups) - 0.4))
        if fraction:  # no axis past a metric's range
            _keep_within(ax, "x", value_range(ACCURACY))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=round(panel_w)))  # 6-digit labels fit
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names, fontsize=8)
    if header:
        axes[0].annotate(header, xy=(0, 1), xycoords="axes fraction",
                         xytext=(-4, 6), textcoords="offset points", ha="right", va="bottom",
                         fontsize=8, fontweight="bold")
    what = "mean ± 95 % CI over seeds" if seeds else "one run each"
    fig.suptitle(f"Validation ranks, test reports ({what})" if len(panels) > 1 else
                 f"{ranked.title} ({what})", y=1 - 0.1 / fig.get_size_inches()[1], va="top",
                 fontsize=11)
    return _save(fig, path)


def plot_accuracy_vs_params(points: list[tuple[str, int, float]], legend: SweepLegend,
                            path: Path):
    """Test accuracy against parameter count (log scale): what each parameter buys. Runs of
    equal size are spread sideways (±4 %) so none hides another; the legend, right of the
    axes in the ranking's order, names what differs between runs."""
    configs = legend.ranked(label for label, _, _ in points)
    width, height, columns = _legend_box(legend, configs)
    fig = _figure((0.85 + 7.0 + width, max(4.6, height + 1.2)))
    ax = fig.subplots()
    sizes: dict[int, int] = {}
    for _, params, _ in points:
        sizes[params] = sizes.get(params, 0) + 1
    placed: dict[int, int] = {}
    handles = {}
    for label, params, acc in points:
        k, i = sizes[params], placed.get(params, 0)
        placed[params] = i + 1
        x = params * (1.04 ** (i - (k - 1) / 2)) if k > 1 else params
        handles[label] = ax.scatter(x, acc, s=36, color=legend.colors[label], zorder=3,
                                    clip_on=False)  # whole at 1.0, on the frame
    ax.set_xscale("log")
    accs = [acc for _, _, acc in points]
    pad = max(0.08 * (max(accs) - min(accs)), 0.005)
    ax.set(title="Test accuracy against model size", xlabel="parameters (log scale)",
           ylabel="best-checkpoint test accuracy", ylim=(min(accs) - pad, max(accs) + pad))
    _keep_within(ax, "y", value_range(ACCURACY))
    ax.grid(alpha=0.3, which="both")
    bottom = _caption(fig, legend.caption + " Runs of equal size are spread sideways (±4 %) "
                      "so none hides another. The accuracy axis spans the data.")
    fig.set_size_inches(0.85 + 7.0 + width, max(4.6, height + 1.2) + bottom)
    _margins(fig, left=0.85, right=width + 0.1, top=0.45, bottom=0.55 + bottom)
    _outside_legend(ax, legend, configs, handles, columns)
    return _save(fig, path)
