"""scikit-learn baselines as models (seed 000): logistic regression and random forest, fitted
once on the train split's flattened (normalized) pixels, or on the features of a frozen
torchvision backbone (`model.backbone=squeezenet1_0`). They write the same metrics.json as the
networks, so they sit in the same leaderboard:

- one fit, no epochs: epochs_run = best_epoch = 1 and best = final; no history.csv, no
  checkpoints (the estimator is not a state_dict), plots/confusion.png as usual;
- loss is the log loss of predict_proba; params.trainable counts the fitted estimator
  (logreg: coef_ + intercept_ entries; random forest: total tree nodes) and params.total adds
  the frozen backbone's parameters.
"""

import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from . import files
from .console import print_summary
from .data import Data, Split
from .errors import choices_error
from .features import extract
from .freeze import head_name
from .models import InputSpec, build_model
from .plots import plot_confusion

SKLEARN_ARCHS = ("logreg", "random_forest")


def is_sklearn(model_cfg) -> bool:
    return model_cfg.arch in SKLEARN_ARCHS


class SklearnClassifier(nn.Module):
    """A fitted estimator behind the nn.Module interface run.py evaluates and times:
    images in, log-probabilities (the logits of a softmax) out."""

    def __init__(self, estimator, backbone: nn.Module | None, num_classes: int, batch_size: int):
        super().__init__()
        self.estimator, self.backbone = estimator, backbone
        self.num_classes, self.batch_size = num_classes, batch_size

    def features(self, x: torch.Tensor) -> np.ndarray:
        if self.backbone is None:
            return x.flatten(1).cpu().numpy()
        feats = extract(self.backbone, Split(x, torch.zeros(len(x))), self.batch_size, None)
        if feats.dim() == 4:  # a conv map before the head (squeezenet): pool it, as seed 000
            feats = feats.mean(dim=(2, 3))
        return feats.flatten(1).cpu().numpy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        proba = np.full((len(x), self.num_classes), 1e-12)
        proba[:, self.estimator.classes_] = self.estimator.predict_proba(self.features(x))
        return torch.from_numpy(np.log(np.clip(proba, 1e-12, 1.0))).float().to(x.device)


def _estimator(cfg, seed: int):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    if cfg.arch == "logreg":
        return LogisticRegression(C=cfg.C, max_iter=cfg.max_iter)
    if cfg.arch == "random_forest":
        return RandomForestClassifier(n_estimators=cfg.n_estimators, max_depth=cfg.max_depth,
                                      n_jobs=cfg.n_jobs, random_state=seed)
    raise choices_error("model.arch", cfg.arch, SKLEARN_ARCHS)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _estimator_size(estimator) -> int:
    if hasattr(estimator, "coef_"):
        return int(estimator.coef_.size + estimator.intercept_.size)
    return int(sum(tree.tree_.node_count for tree in estimator.estimators_))


def _backbone(cfg, data: Data) -> nn.Module | None:
    """The frozen torchvision backbone named by model.backbone, on the data's device."""
    if cfg.backbone is None:
        return None
    spec = InputSpec(data.in_channels, data.image_size, data.num_classes,
                     tuple(data.mean), tuple(data.std))
    zoo_cfg = OmegaConf.create({"arch": "torchvision", "name": cfg.backbone,
                                "pretrained": cfg.pretrained, "weights": cfg.weights,
                                "input_size": cfg.input_size})
    return build_model(zoo_cfg, spec).to(data.train.x.device).requires_grad_(False)


def run_sklearn(cfg, data: Data, run_dir: Path) -> dict:
    from .run import _evaluate, summary  # run.py imports this module

    t = cfg.trainer
    start = time.perf_counter()
    backbone = _backbone(cfg.model, data)
    model = SklearnClassifier(_estimator(cfg.model, t.seed), backbone, data.num_classes,
                              t.eval_batch_size)
    model.estimator.fit(model.features(data.train.inputs()), data.train.y.cpu().numpy())
    train_time = time.perf_counter() - start

    results, test_logits = _evaluate(model, data, t.eval_batch_size, None)
    size = _estimator_size(model.estimator)
    frozen = 0
    if backbone is not None:  # its own (unused) classifier head does not count
        frozen = count_params(backbone) - count_params(backbone.get_submodule(head_name(backbone)))
    metrics = summary(cfg, data, model, None, test_logits, status="completed",
                      params={"total": size + frozen, "trainable": size}, epochs_run=1,
                      best_epoch=1, monitor=None, train_time_s=train_time, best=results,
                      final=results)
    if test_logits is not None:
        plot_confusion(data.test.y.cpu().numpy(), test_logits.argmax(1).cpu().numpy(),
                       data.classes, f"{cfg.model.name}, test split",
                       run_dir / "plots/confusion.png")
    files.write_json(run_dir / "metrics.json", metrics)
    print_summary(metrics, run_dir)
    return metrics
