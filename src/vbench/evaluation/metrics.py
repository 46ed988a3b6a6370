"""Classification metrics from one confusion matrix (torch.bincount).

They equal scikit-learn's accuracy_score, f1_score(average="macro"/"weighted",
zero_division=0) and recall_score(average=None) to the last bit (tests/test_metrics.py), without
importing scikit-learn (1.2 s) into every run: the final averages use numpy's reductions, as
scikit-learn does."""

import numpy as np
import torch
import torch.nn.functional as F


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> np.ndarray:
    """counts[true, predicted], int64, as scikit-learn's confusion_matrix with labels=range(n)."""
    flat = y_true.long().cpu() * num_classes + y_pred.long().cpu()
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, -1).numpy()


def classification_metrics(logits: torch.Tensor, y: torch.Tensor) -> dict:
    """loss (cross-entropy), accuracy, macro and weighted F1 of `logits` against labels `y`."""
    loss = F.cross_entropy(logits, y).item()
    counts = confusion_matrix(y, logits.argmax(1), max(logits.shape[1], int(y.max()) + 1))
    tp, true, predicted = counts.diagonal(), counts.sum(1), counts.sum(0)
    seen = (true + predicted) > 0  # scikit-learn averages over the labels present in either
    f1 = _divide(2.0 * tp, (true + predicted).astype(np.float64))[seen]
    return {
        "loss": loss,
        "accuracy": float(tp.sum() / len(y)),
        "macro_f1": float(np.mean(f1)),
        "weighted_f1": float(np.average(f1, weights=true[seen]) if true.sum() else np.mean(f1)),
    }


def per_class_accuracy(logits: torch.Tensor, y: torch.Tensor, classes: list[str]) -> dict:
    """Accuracy within each true class (= per-class recall; 0 for a class with no images)."""
    counts = confusion_matrix(y, logits.argmax(1), len(classes))
    recall = _divide(counts.diagonal().astype(np.float64), counts.sum(1).astype(np.float64))
    return {name: float(r) for name, r in zip(classes, recall)}


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (zero_division=0)."""
    return numerator / np.where(denominator == 0, 1, denominator)
