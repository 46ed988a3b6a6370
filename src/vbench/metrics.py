"""Classification metrics, from scikit-learn."""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score, recall_score


def classification_metrics(logits: torch.Tensor, y: torch.Tensor) -> dict:
    """loss (cross-entropy), accuracy, macro and weighted F1 of `logits` against labels `y`."""
    loss = F.cross_entropy(logits, y).item()
    y_true, y_pred = y.cpu().numpy(), logits.argmax(1).cpu().numpy()
    return {
        "loss": loss,
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
    }


def per_class_accuracy(logits: torch.Tensor, y: torch.Tensor, classes: list[str]) -> dict:
    """Accuracy within each true class (= per-class recall), keyed by class name."""
    y_true, y_pred = y.cpu().numpy(), logits.argmax(1).cpu().numpy()
    labels = np.arange(len(classes))
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {name: float(r) for name, r in zip(classes, recall)}
