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
        ax.legend()
        ax.grid(alpha=0.3)
    axes[2].plot(epochs, [r["lr"] for r in history], "o-")
    axes[2].set(title="learning rate", xlabel="epoch")
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], title: str,
                   path: Path) -> None:
    plt = _pyplot()
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(5.0, 0.5 * len(classes))
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=np.arange(len(classes)), display_labels=classes, ax=ax,
        colorbar=False, xticks_rotation="vertical", include_values=len(classes) <= 20)
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
