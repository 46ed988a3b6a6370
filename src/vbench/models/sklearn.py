"""scikit-learn baselines as models (seed 000): logistic regression and random forest, fitted
once on the train split's flattened (normalized) pixels, or on the features of a frozen
torchvision backbone (`model.backbone=squeezenet1_0`). They write the same metrics.json as the
networks, so they sit in the same leaderboard:

- one fit, no epochs: epochs_run = best_epoch = 1 and best = final; no history.csv,
  plots/confusion.png as usual;
- checkpoints/best.pt and last.pt (the same) hold no pickled estimator (nothing vbench reads
  may execute code): logistic regression stores its fitted arrays (coef_, intercept_,
  classes_) as tensors; a random forest is refitted from the stored config and seed on the
  same train split (deterministic: random_state = trainer.seed); a backbone's weights are the
  checkpoint's "model" state_dict;
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

from ..core import files
from ..core.console import print_summary
from ..core.errors import choices_error
from ..data import Data, Split, load_data
from ..evaluation.evaluate import evaluate, summary
from ..evaluation.predict import extract
from ..reports import model_card
from ..reports.plots import plot_confusion
from . import InputSpec, build_model
from .freeze import head_name

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
        feats = extract(self.backbone, self.backbone.get_submodule(head_name(self.backbone)),
                        Split(x, torch.zeros(len(x))), self.batch_size, None)
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


def _backbone(cfg, spec: InputSpec, device, weights=None) -> nn.Module | None:
    """The frozen torchvision backbone named by model.backbone, on `device`; `weights` (a
    checkpoint file) replaces model.weights and the pretrained file."""
    if cfg.backbone is None:
        return None
    zoo_cfg = OmegaConf.create({"arch": "torchvision", "name": cfg.backbone,
                                "pretrained": cfg.pretrained, "weights": weights or cfg.weights,
                                "input_size": cfg.input_size})
    return build_model(zoo_cfg, spec).to(device).requires_grad_(False)


def _spec(data: Data) -> InputSpec:
    return InputSpec(data.in_channels, data.image_size, data.num_classes,
                     tuple(data.mean), tuple(data.std))


def _fit(cfg, data: Data, backbone) -> SklearnClassifier:
    model = SklearnClassifier(_estimator(cfg.model, cfg.trainer.seed), backbone,
                              data.num_classes, cfg.trainer.eval_batch_size)
    model.estimator.fit(model.features(data.train.inputs()), data.train.y.cpu().numpy())
    return model


def _estimator_state(estimator) -> dict | None:
    """Logistic regression as plain tensors; None for estimators refitted on load."""
    if not hasattr(estimator, "coef_"):
        return None
    return {"coef": torch.from_numpy(estimator.coef_), "intercept":
            torch.from_numpy(estimator.intercept_), "classes": torch.from_numpy(estimator.classes_)}


def load_baseline(cfg, spec: InputSpec, path: Path, state: dict) -> SklearnClassifier:
    """A baseline from its checkpoint: logreg from its stored arrays, a random forest refitted
    exactly as the run fitted it (same config, seed and train split)."""
    backbone = _backbone(cfg.model, spec, "cpu", weights=path if state["model"] else None)
    if state.get("estimator") is None:
        return _fit(cfg, load_data(cfg.dataset, torch.device("cpu")), backbone)
    estimator = _estimator(cfg.model, cfg.trainer.seed)
    arrays = state["estimator"]
    estimator.coef_, estimator.intercept_ = arrays["coef"].numpy(), arrays["intercept"].numpy()
    estimator.classes_ = arrays["classes"].numpy()
    estimator.n_features_in_ = estimator.coef_.shape[1]
    return SklearnClassifier(estimator, backbone, spec.num_classes, cfg.trainer.eval_batch_size)


def run_sklearn(cfg, data: Data, run_dir: Path, about: dict) -> dict:
    """Fit, evaluate and write the run; `about` (checkpoint.describe) goes into the checkpoint."""
    t = cfg.trainer
    start = time.perf_counter()
    backbone = _backbone(cfg.model, _spec(data), data.train.x.device)
    model = _fit(cfg, data, backbone)
    train_time = time.perf_counter() - start

    result = evaluate(model, data, t.eval_batch_size, None)
    size = _estimator_size(model.estimator)
    frozen = 0
    if backbone is not None:  # its own (unused) classifier head does not count
        frozen = count_params(backbone) - count_params(backbone.get_submodule(head_name(backbone)))
    metrics = summary(cfg, data, result, result, None, status="completed",
                      params={"total": size + frozen, "trainable": size}, epochs_run=1,
                      best_epoch=1, monitor=None, train_time_s=train_time)
    checkpoint = {"model": backbone.state_dict() if backbone is not None else {},
                  "estimator": _estimator_state(model.estimator), "epoch": 1,
                  **about}
    for name in ("best.pt", "last.pt"):  # one fit: best = final
        files.save_torch(run_dir / "checkpoints" / name, checkpoint)
    if result.test_logits is not None:
        plot_confusion(data.test.y.cpu().numpy(), result.test_logits.argmax(1).cpu().numpy(),
                       data.classes, f"{cfg.model.name}, test split",
                       run_dir / "plots/confusion.png")
    model_card.write(run_dir, cfg, metrics)
    files.write_json(run_dir / "metrics.json", metrics)
    print_summary(metrics, run_dir)
    return metrics
