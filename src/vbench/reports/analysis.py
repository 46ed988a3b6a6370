"""After training: the analysis plots of `eval.plots`, the cross-domain evaluation of
`eval.extra` and the translation-shift probe of `eval.shift_pixels`.

Everything here looks at the best checkpoint on the test split, as metrics.json's "best" does.
"""

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from ..core.errors import VBenchError, choices_error
from ..core.rundir import PLOTS_DIR
from ..core.schema import Dataset, Eval, Trainer, load_option, option_names
from ..data import Data, Split, load_data
from ..evaluation.forward import predict
from ..evaluation.metrics import classification_metrics, per_class_accuracy
from .figures import Figures

# Keys an eval.extra dataset takes from the training dataset's config unless the entry sets
# them: where the files lie, and how much a smoke run keeps.
# val_size too: only the extra dataset's test split is used, and its own val count (e.g. 5000)
# would not fit a subset.
INHERITED_KEYS = ("root", "download", "split_seed", "subset_per_class", "max_samples",
                  "val_size")


def keep_initial(plots: list[str], model: nn.Module) -> nn.Module | None:
    """A copy of the untrained model, kept only when a plot (eval.plots) compares against it."""
    return copy.deepcopy(model) if {"tsne", "weights"} & set(plots) else None


def extra_dataset_cfg(entry, train_cfg: Dataset) -> Dataset:
    """The config of one eval.extra entry: a dataset option name (`fashion_mnist`), or a
    mapping naming the option and overriding its keys (`{name: fake, image_size: 8}`).

    The option's YAML is read from the package's conf/dataset/ (runtime composition of a second
    Hydra config inside a job is not possible), then the training dataset's INHERITED_KEYS and
    the entry's own keys are merged over it."""
    entry = {"name": entry} if isinstance(entry, str) else dict(entry)
    name = entry.get("name")
    if name not in option_names("dataset"):
        raise choices_error("eval.extra", name, option_names("dataset"))
    base = load_option("dataset", name)
    inherited = {k: getattr(train_cfg, k) for k in INHERITED_KEYS
                 if hasattr(train_cfg, k) and k in base}
    return OmegaConf.to_object(OmegaConf.merge(base, inherited, entry))


def load_extra(entries: list, train_cfg: Dataset, data: Data, device) -> dict[str, Split]:
    """The test split of every eval.extra dataset (`entries`), normalized with the *training*
    statistics (the model only knows those). Called before training, so a mismatch fails at
    once."""
    extra = {}
    for entry in entries:
        dcfg = extra_dataset_cfg(entry, train_cfg)
        other = load_data(dcfg, device, stats=(data.mean, data.std))
        shape = (other.in_channels, *other.train.x.shape[-2:], other.num_classes)
        expected = (data.in_channels, *data.train.x.shape[-2:], data.num_classes)
        if shape != expected:
            raise VBenchError(
                f"eval.extra: {dcfg.name} has images {shape[0]}x{shape[1]}x{shape[2]} and "
                f"{shape[3]} classes, the model is trained on {data.name} with "
                f"{expected[0]}x{expected[1]}x{expected[2]} and {expected[3]} classes; "
                f"cross-domain evaluation needs the same shape and number of classes")
        if other.test is None:
            raise VBenchError(f"eval.extra: {dcfg.name} has no test split to evaluate on")
        if dcfg.name in extra:
            raise VBenchError(f"eval.extra lists {dcfg.name} twice")
        extra[dcfg.name] = other.test
    return extra


@dataclass
class Trained:
    """What a run's figures and probes read of its training. `model` holds the best
    checkpoint and `test_logits` are its test predictions (None when there is no best epoch or
    no test split: then only the plots that need neither are drawn); `initial` is the untrained
    copy (t-SNE and weight plots), `extra` the eval.extra test sets."""

    model: nn.Module
    history: list[dict]
    best_epoch: int
    test_logits: torch.Tensor | None
    initial: nn.Module | None = None
    extra: dict[str, Split] | None = None


def analyze(ev: Eval, trainer: Trainer, run_dir: Path, data: Data, trained: Trained,
            amp_dtype) -> tuple[dict, Figures]:
    """The probes' results for metrics.json, and the requested figures (to draw)."""
    model, history, best_epoch = trained.model, trained.history, trained.best_epoch
    test_logits, initial, extra = trained.test_logits, trained.initial, trained.extra
    out, figures = Path(run_dir) / PLOTS_DIR, Figures(run_dir)
    batch_size = trainer.eval_batch_size
    results = {"extra": {}, "shift": {}}
    if test_logits is not None:
        results["extra"] = {name: classification_metrics(
            predict(model, split, batch_size, amp_dtype), split.y)
            for name, split in (extra or {}).items()}
        results["shift"] = shift_probe(model, data, list(ev.shift_pixels), batch_size, amp_dtype)
        if results["shift"]:
            figures.add("plot_shift", results["shift"], 1 / data.num_classes, out / "shift.png")

    wanted = set(ev.plots)
    if "curves" in wanted:
        figures.add("plot_curves", history, out / "curves.png", best_epoch)
    if "gap" in wanted:
        figures.add("plot_gap", history, out / "gap.png", best_epoch)
    if "samples" in wanted:
        _plot_dataset(data, out, figures)
    if "weights" in wanted:
        layers = _weight_layers(model, initial)
        if layers:
            figures.add("plot_weights", layers, out / "weights.png")
    if test_logits is None:
        return results, figures

    y_true, y_pred = data.test.y.cpu().numpy(), test_logits.argmax(1).cpu().numpy()
    where = f"best checkpoint (epoch {best_epoch}), test split"
    if "confusion" in wanted:
        figures.add("plot_confusion", y_true, y_pred, data.classes, where, out / "confusion.png")
    if "per_class" in wanted:
        figures.add("plot_per_class", per_class_accuracy(test_logits, data.test.y, data.classes),
                    where, out / "per_class.png")
    if "misclassified" in wanted:
        _plot_misclassified(data, test_logits, ev.misclassified, out / "misclassified.png",
                            figures)
    if "tsne" in wanted:
        _plot_tsne(ev.tsne_samples, trainer, model, initial, data.test, data.classes, amp_dtype,
                   out / "tsne.png", figures)
    return results, figures


def shift_probe(model: nn.Module, data: Data, ks: list[int], batch_size: int,
                amp_dtype) -> dict[str, dict]:
    """Test accuracy and mean max-softmax confidence with the images translated by k pixels,
    averaged over the four axis directions. Uncovered pixels are black (0 before
    normalization), as a camera shift would leave them."""
    test, y = data.test, data.test.y
    results = {}
    for k in ks:
        moves = [(0, 0)] if k == 0 else [(k, 0), (-k, 0), (0, k), (0, -k)]
        accuracy = confidence = 0.0
        for dx, dy in moves:
            shifted = Split(shift_images(test.uint8(), dx, dy), y, test.mean, test.std)
            probs = predict(model, shifted, batch_size, amp_dtype).softmax(1)
            accuracy += (probs.argmax(1) == y).float().mean().item() / len(moves)
            confidence += probs.max(1).values.mean().item() / len(moves)
        results[str(k)] = {"accuracy": accuracy, "confidence": confidence}
    return results


def shift_images(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """(N, C, H, W) images moved right by dx and down by dy (negative: left/up), new pixels
    black (0)."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    dx, dy = max(-w, min(w, dx)), max(-h, min(h, dy))
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def _plot_dataset(data: Data, out: Path, figures: Figures) -> None:
    """Seed 001 section 1: samples per class, class distribution, mean image per class (of
    train; of val when train streams from shards, which are read in order only)."""
    shown = data.val if data.train.sequential else data.train
    y = shown.y.cpu().numpy()
    per_class = 8
    picks = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(data.num_classes)])
    figures.add("plot_samples", shown.pixels(picks).cpu().numpy(), y[picks], data.classes,
                out / "samples.png", per_class)
    splits = {"train": data.train, "val": data.val, "test": data.test}
    counts = {name: np.bincount(s.y.cpu().numpy(), minlength=data.num_classes)
              for name, s in splits.items() if s is not None and not s.sequential}
    figures.add("plot_class_distribution", counts, data.classes, out / "class_distribution.png")
    means = np.stack([shown.pixels(shown.y == c).mean(0).cpu().numpy()
                      if (y == c).any() else np.zeros(shown.x.shape[1:])
                      for c in range(data.num_classes)])
    figures.add("plot_mean_images", means, data.classes, out / "mean_images.png")


def _plot_misclassified(data: Data, logits: torch.Tensor, count: int, path: Path,
                        figures: Figures) -> None:
    probs = logits.softmax(1)
    confidence, pred = probs.max(1)
    wrong = torch.nonzero(pred != data.test.y).flatten()
    # The most confident mistakes are the informative ones (label noise, look-alike classes).
    wrong = wrong[confidence[wrong].argsort(descending=True)]
    shown = wrong[:count]
    figures.add("plot_misclassified", data.test.pixels(shown).cpu().numpy(),
                data.test.y[shown].cpu().numpy(), pred[shown].cpu().numpy(),
                confidence[shown].cpu().numpy(), data.classes, (len(wrong), len(data.test)),
                path)


def _plot_tsne(samples: int, trainer: Trainer, model, initial, split: Split, classes, amp_dtype,
               path: Path, figures: Figures) -> None:
    """Penultimate features (the input of the last nn.Linear) of the trained model beside the
    untrained initialisation, on a fixed random sample (`samples`: eval.tsne_samples) of the
    test split, seeded by trainer.seed."""
    g = torch.Generator().manual_seed(trainer.seed)
    n = min(samples, len(split))
    idx = torch.randperm(len(split), generator=g)[:n].to(split.y.device)
    sample = split.subset(idx)
    panels = []
    for name, m in (("untrained initialisation", initial), ("trained (best checkpoint)", model)):
        if m is None:
            continue
        features = _penultimate(m, sample, trainer.eval_batch_size, amp_dtype)
        if features is None:
            return  # no nn.Linear head: nothing to project
        panels.append((f"{name}\n{features.shape[1]} features", features))
    figures.add("plot_tsne", panels, sample.y.cpu().numpy(), classes,
                f"t-SNE of penultimate features, {n} test images", path, trainer.seed)


def _penultimate(model: nn.Module, split: Split, batch_size: int, amp_dtype) -> np.ndarray | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        return None
    captured = []
    hook = linears[-1].register_forward_hook(
        lambda module, inputs, output: captured.append(inputs[0].detach().float().flatten(1)))
    try:
        predict(model, split, batch_size, amp_dtype)
    finally:
        hook.remove()
    return torch.cat(captured).cpu().numpy()


def _weight_layers(model: nn.Module, initial: nn.Module | None, limit: int = 16):
    """(title, trained, initial) weights of each layer with a weight matrix or kernel, evenly
    thinned to `limit` layers so a ResNet's figure stays readable. Non-finite values (a diverged
    run) are dropped."""
    start = dict(initial.named_modules()) if initial is not None else {}
    layers = [(name, m) for name, m in model.named_modules()
              if isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.dim() >= 2]
    layers = layers[::max(1, -(-len(layers) // limit))]
    out = []
    for name, m in layers:
        trained = m.weight.detach().float().cpu().numpy().ravel()
        trained = trained[np.isfinite(trained)]
        before = (start[name].weight.detach().float().cpu().numpy().ravel()
                  if name in start else None)
        if trained.size:
            out.append((f"{name}: {type(m).__name__} {tuple(m.weight.shape)}", trained, before))
    return out
