"""scikit-learn baselines as models (seed 000): logistic regression and random forest, fitted
once on the train split's flattened (normalized) pixels, or on the features of a frozen
torchvision backbone (`model.backbone=squeezenet1_0`). A run ends for them as for the networks
(training/finish.py), so they sit in the same leaderboard:

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

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.errors import choices_error
from ..core.schema import Dataset, Library, Sklearn, Trainer
from ..data import Data, Split, load_data
from ..evaluation.forward import extract
from .freeze import head_name
from .registry import InputSpec, build_model

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

    def param_counts(self) -> dict[str, int]:
        """trainable: the fitted estimator's numbers; total adds the frozen backbone's (less
        its own, unused classifier head)."""
        size, frozen = _estimator_size(self.estimator), 0
        if self.backbone is not None:
            head = self.backbone.get_submodule(head_name(self.backbone))
            frozen = _numel(self.backbone) - _numel(head)
        return {"total": size + frozen, "trainable": size}

    def checkpoint_state(self) -> dict:
        """What best.pt/last.pt hold of a baseline: the backbone's weights and logistic
        regression's arrays; never a pickled estimator."""
        return {"model": self.backbone.state_dict() if self.backbone is not None else {},
                "estimator": _estimator_state(self.estimator)}

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


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _estimator_size(estimator) -> int:
    if hasattr(estimator, "coef_"):
        return int(estimator.coef_.size + estimator.intercept_.size)
    return int(sum(tree.tree_.node_count for tree in estimator.estimators_))


def _backbone(cfg: Sklearn, spec: InputSpec, device, weights=None) -> nn.Module | None:
    """The frozen torchvision backbone named by model.backbone, on `device`; `weights` (a
    checkpoint file) replaces model.weights and the pretrained file."""
    if cfg.backbone is None:
        return None
    weights = weights or cfg.weights
    zoo_cfg = Library(arch="torchvision", name=cfg.backbone, pretrained=cfg.pretrained,
                      weights=str(weights) if weights else None, input_size=cfg.input_size)
    return build_model(zoo_cfg, spec).to(device).requires_grad_(False)


def fit_baseline(cfg: Sklearn, trainer: Trainer, data: Data) -> SklearnClassifier:
    """The baseline `cfg` (the model section) fitted on data.train, seeded by trainer.seed,
    its backbone on the data's device."""
    return _fit(cfg, trainer, data, _backbone(cfg, InputSpec.of(data), data.train.x.device))


def _fit(cfg: Sklearn, trainer: Trainer, data: Data, backbone) -> SklearnClassifier:
    model = SklearnClassifier(_estimator(cfg, trainer.seed), backbone,
                              data.num_classes, trainer.eval_batch_size)
    model.estimator.fit(model.features(data.train.inputs()), data.train.y.cpu().numpy())
    return model


def _estimator_state(estimator) -> dict | None:
    """Logistic regression as plain tensors; None for estimators refitted on load."""
    if not hasattr(estimator, "coef_"):
        return None
    return {"coef": torch.from_numpy(estimator.coef_), "intercept":
            torch.from_numpy(estimator.intercept_), "classes": torch.from_numpy(estimator.classes_)}


def load_baseline(cfg: Sklearn, dataset: Dataset, trainer: Trainer, spec: InputSpec, path: Path,
                  state: dict) -> SklearnClassifier:
    """A baseline from its checkpoint: logreg from its stored arrays, a random forest refitted
    exactly as the run fitted it (same config, seed and train split: `dataset`)."""
    backbone = _backbone(cfg, spec, "cpu", weights=path if state["model"] else None)
    if state.get("estimator") is None:
        return _fit(cfg, trainer, load_data(dataset, torch.device("cpu")), backbone)
    estimator = _estimator(cfg, trainer.seed)
    arrays = state["estimator"]
    estimator.coef_, estimator.intercept_ = arrays["coef"].numpy(), arrays["intercept"].numpy()
    estimator.classes_ = arrays["classes"].numpy()
    estimator.n_features_in_ = estimator.coef_.shape[1]
    return SklearnClassifier(estimator, backbone, spec.num_classes, trainer.eval_batch_size)
