"""The run's figures. matplotlib is imported here only, with a non-interactive backend."""

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: list[dict], path: Path) -> None:
    """Loss, accuracy (train and val) and learning rate per epoch."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, metric, title in ((axes[0], "loss", "loss"), (axes[1], "acc", "accuracy")):
        ax.plot(epochs, [r[f"train_{metric}"] for r in history], "o-", label="train")
        ax.plot(epochs, [r[f"val_{metric}"] for r in history], "o-", label="val")
        ax.set(title=title, xlabel="epoch")
        _integer_epochs(ax)
        ax.legend()
        ax.grid(alpha=0.3)
    axes[2].plot(epochs, [r["lr"] for r in history], "o-")
    axes[2].set(title="learning rate", xlabel="epoch")
    _integer_epochs(axes[2])
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], title: str,
                   path: Path) -> None:
    """Counts beside the row-normalized matrix: the diagonal of the second is per-class recall."""
    plt = _pyplot()
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(5.0, 0.5 * len(classes))
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size + 0.5))
    for ax, normalize, fmt, name in ((axes[0], None, "d", "counts"),
                                     (axes[1], "true", ".2f", "row-normalized (recall)")):
        ConfusionMatrixDisplay.from_predictions(
            y_true, y_pred, labels=np.arange(len(classes)), display_labels=classes, ax=ax,
            normalize=normalize, values_format=fmt, cmap="Blues", colorbar=False,
            xticks_rotation="vertical",
            include_values=len(classes) <= 20)
        ax.set_title(name)
    fig.suptitle(f"Confusion matrix: {title}")
    fig.tight_layout()
    _save(fig, path)


def plot_per_class(accuracy: dict[str, float], title: str, path: Path) -> None:
    """Accuracy within each true class, with the mean over classes as a reference line."""
    plt = _pyplot()
    names, values = list(accuracy), np.array(list(accuracy.values()))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(names) + 2), 4.5))
    bars = ax.bar(range(len(names)), values, color=plt.cm.RdYlGn(values))
    if len(names) <= 30:
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=8, padding=2)
    ax.axhline(values.mean(), color="k", ls="--", lw=1, label=f"mean {values.mean():.3f}")
    ax.set_xticks(range(len(names)), names, rotation=90 if len(names) > 10 else 0)
    ax.set(title=f"Per-class accuracy: {title}", xlabel="class", ylabel="accuracy (recall)",
           ylim=(0, 1.08))
    ax.legend(loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def plot_misclassified(images: np.ndarray, true: np.ndarray, pred: np.ndarray,
                       confidence: np.ndarray, classes: list[str], total: tuple[int, int],
                       path: Path) -> None:
    """A grid of wrong test predictions, most confident first: true → predicted (confidence)."""
    plt = _pyplot()
    cols = min(5, max(len(images), 1))
    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.9 * rows + 0.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, t, p, c in zip(axes.flat, images, true, pred, confidence):
        _show_image(ax, img)
        ax.set_title(f"{classes[t]} → {classes[p]}\n({c:.0%})", fontsize=9,
                     color="red" if c > 0.8 else "darkorange")
    wrong, n = total
    if not len(images):
        axes[0, 0].text(0.5, 0.5, "no misclassified test images", ha="center", va="center")
    fig.suptitle(f"Misclassified test images: {wrong} of {n} ({wrong / max(n, 1):.1%}), "
                 f"most confident first\ntrue → predicted (confidence)")
    fig.tight_layout()
    _save(fig, path)


def plot_tsne(panels: list[tuple[str, np.ndarray]], labels: np.ndarray, classes: list[str],
              title: str, path: Path) -> None:
    """One t-SNE scatter per (title, 2-D embedding), coloured by true class."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels) + 1.5, 6), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
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
    fig.tight_layout()
    _save(fig, path)


def plot_weights(layers: list[tuple[str, np.ndarray, np.ndarray | None]], path: Path) -> None:
    """A histogram of each layer's weights, trained over initial when the latter is known."""
    plt = _pyplot()
    cols = min(4, len(layers))
    rows = -(-len(layers) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows + 0.5), squeeze=False)
    for ax in axes.flat[len(layers):]:
        ax.axis("off")
    for ax, (name, trained, initial) in zip(axes.flat, layers):
        bins = np.histogram_bin_edges(trained if initial is None
                                      else np.concatenate([trained, initial]), bins=60)
        if initial is not None:
            ax.hist(initial, bins=bins, alpha=0.5, color="gray", label="initial")
        ax.hist(trained, bins=bins, alpha=0.7, color="tab:blue", label="trained")
        ax.set_title(f"{name}\n{trained.size:,} weights, std {trained.std():.3g}", fontsize=9)
        ax.set(xlabel="weight", ylabel="count")
        ax.legend(fontsize=8)
    fig.suptitle("Weight distribution per layer (best checkpoint)")
    fig.tight_layout()
    _save(fig, path)


def plot_gap(history: list[dict], path: Path) -> None:
    """Train minus val accuracy per epoch: above zero and growing means overfitting."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    gap = [row["train_acc"] - row["val_acc"] for row in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, gap, "o-", color="tab:red")
    ax.axhline(0, color="k", lw=0.8)
    ax.set(title="Generalization gap (train acc is measured during the epoch)",
           xlabel="epoch", ylabel="train acc − val acc")
    _integer_epochs(ax)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def plot_samples(images: np.ndarray, labels: np.ndarray, classes: list[str], path: Path,
                 per_class: int = 8) -> None:
    """The first `per_class` training images of each class, one class per row."""
    plt = _pyplot()
    shown = [c for c in range(len(classes)) if (labels == c).any()][:20]
    fig, axes = plt.subplots(len(shown), per_class, squeeze=False,
                             figsize=(1.1 * per_class + 1.2, 1.1 * len(shown) + 0.6))
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
    fig.tight_layout()
    _save(fig, path)


def plot_class_distribution(counts: dict[str, np.ndarray], classes: list[str],
                            path: Path) -> None:
    """Images per class in each split, side by side."""
    plt = _pyplot()
    x = np.arange(len(classes))
    width = 0.8 / len(counts)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(classes) + 2), 4.5))
    for i, (split, n) in enumerate(counts.items()):
        ax.bar(x + (i - (len(counts) - 1) / 2) * width, n, width, label=f"{split} ({n.sum():,})")
    ax.set_xticks(x, classes, rotation=90 if len(classes) > 10 else 0)
    top = max(n.max() for n in counts.values())
    ax.set(title="Class distribution per split", xlabel="class", ylabel="images",
           ylim=(0, top * 1.2))  # headroom for the legend
    ax.legend(ncol=len(counts), loc="upper center")
    fig.tight_layout()
    _save(fig, path)


def plot_mean_images(means: np.ndarray, classes: list[str], path: Path) -> None:
    """The pixel-wise mean training image of each class: how separable the classes look."""
    plt = _pyplot()
    cols = min(10, len(classes))
    rows = -(-len(classes) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, name in zip(axes.flat, means, classes):
        _show_image(ax, img)
        ax.set_title(name, fontsize=9)
    fig.suptitle("Mean training image per class")
    fig.tight_layout()
    _save(fig, path)


def plot_shift(shift: dict[str, dict], chance: float, path: Path) -> None:
    """Test accuracy and mean top-1 confidence against the translation in pixels."""
    plt = _pyplot()
    ks = [int(k) for k in shift]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label, style in (("accuracy", "accuracy", "o-"),
                              ("confidence", "mean confidence (max softmax)", "s--")):
        ax.plot(ks, [shift[str(k)][key] for k in ks], style, label=label)
    ax.axhline(chance, color="gray", ls=":", label=f"chance ({chance:.2f})")
    ax.set(title="Translation probe: test images shifted by k px (mean of 4 directions)",
           xlabel="shift k (pixels)", ylabel="fraction", ylim=(0, 1.05), xticks=ks)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, path)


def _integer_epochs(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _show_image(ax, img: np.ndarray) -> None:
    """Draw a (C, H, W) image with values in [0, 1]: grey with one channel, RGB with three."""
    if img.shape[0] == 1:
        ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 1))

def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


# ----------------------------------------------------------------------------------------------
# Sweep comparisons (vbench-report and the multirun summary)


def plot_sweep_curves(curves: list[tuple[str, list[dict]]], path: Path) -> None:
    """Validation accuracy per epoch of every run, overlaid."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5))
    cmap = plt.get_cmap("tab10" if len(curves) <= 10 else "tab20")
    for i, (label, history) in enumerate(curves):
        ax.plot([r["epoch"] for r in history], [r["val_acc"] for r in history], "-",
                marker="o" if len(history) < 30 else None, ms=3, color=cmap(i % cmap.N),
                label=label if i < 20 else None)
    ax.set(title=f"Validation accuracy per epoch ({len(curves)} runs)", xlabel="epoch",
           ylabel="val accuracy")
    _integer_epochs(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def plot_sweep_bars(groups: list[dict], path: Path) -> None:
    """Best-checkpoint test accuracy per configuration, mean ± sample std over seeds; runs
    without a result are listed with their status instead of a bar."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(groups) + 1.6))
    y = np.arange(len(groups))[::-1]
    means = [g["best_test_acc"] if g["best_test_acc"] is not None else 0.0 for g in groups]
    errors = [g["best_test_acc_std"] or 0.0 for g in groups]
    ax.barh(y, means, xerr=errors, capsize=3, color="tab:blue", alpha=0.8)
    for yi, g, m in zip(y, groups, means):
        n = g["best_test_acc_n"]
        text = f"{m:.4f}" + (f" (n={n})" if n > 1 else "") if n else g["statuses"]
        ax.text(m + 0.01, yi, text, va="center", fontsize=8,
                color="black" if n else "red")
    ax.set_yticks(y, [_short(g["label"]) for g in groups], fontsize=8)
    ax.set(title="Test accuracy of the best checkpoint (mean ± std over seeds)",
           xlabel="test accuracy", xlim=(0, 1.15))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def plot_accuracy_vs_params(points: list[tuple[str, int, float]], path: Path) -> None:
    """Test accuracy against parameter count (log scale): what each parameter buys."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for label, params, acc in points:
        ax.scatter(params, acc, s=30)
        if len(points) <= 20:
            ax.annotate(_short(label, 30), (params, acc), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set(title="Test accuracy against model size", xlabel="parameters (log scale)",
           ylabel="best-checkpoint test accuracy")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    _save(fig, path)


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
