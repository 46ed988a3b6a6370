"""Refuse bad values before any data is read or any weight is trained.

Each message names the key, the bad value and what is allowed. Keys a group does not have
(e.g. model.width on a model without one) are skipped; Hydra itself refuses unknown keys.
"""

from omegaconf import DictConfig, OmegaConf

from .errors import VBenchError, choices_error

MONITORS = {"val_loss": "min", "val_acc": "max"}
PLOTS = ("curves", "confusion", "per_class", "misclassified", "tsne", "weights", "gap", "samples")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fraction_or_count(v) -> bool:
    return (_is_int(v) and v >= 1) or (isinstance(v, float) and 0 < v < 1)


# key -> (test, what is allowed, required)
RULES = {
    "trainer.epochs": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", True),
    "trainer.batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", True),
    "trainer.eval_batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", True),
    "trainer.seed": (_is_int, "an integer", True),
    "trainer.patience": (lambda v: v is None or (_is_int(v) and v >= 1),
                         "null (off) or an integer >= 1", True),
    "trainer.min_delta": (lambda v: _is_number(v) and v >= 0, "a number >= 0", True),
    "trainer.label_smoothing": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)",
                                True),
    "trainer.grad_clip": (lambda v: v is None or (_is_number(v) and v > 0),
                          "null (off) or a number > 0", True),
    "trainer.channels_last": (lambda v: isinstance(v, bool), "true or false", True),
    "trainer.compile": (lambda v: isinstance(v, bool), "true or false", True),
    "trainer.deterministic": (lambda v: isinstance(v, bool), "true or false", True),
    "optimizer.lr": (lambda v: _is_number(v) and v > 0, "a number > 0", True),
    "optimizer.weight_decay": (lambda v: _is_number(v) and v >= 0, "a number >= 0", False),
    "optimizer.momentum": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)", False),
    "model.depth": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", False),
    "model.width": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", False),
    "model.widths": (lambda v: v is None or (len(v) >= 1 and all(_is_int(w) and w >= 1 for w in v)),
                     "null or a list of integers >= 1, e.g. [128,64]", False),
    "model.fc_width": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", False),
    "model.blocks": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", False),
    "model.kernel_size": (lambda v: _is_int(v) and v >= 1 and v % 2 == 1,
                          "an odd integer >= 1", False),
    "model.input_size": (lambda v: v is None or (_is_int(v) and v >= 1),
                         "null (keep the dataset's size) or an integer >= 1", False),
    "model.dropout": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)", False),
    "model.batchnorm": (lambda v: isinstance(v, bool), "true or false", False),
    "dataset.val_size": (_fraction_or_count, "a fraction in (0, 1) or a count >= 1", True),
    "dataset.test_size": (_fraction_or_count, "a fraction in (0, 1) or a count >= 1", False),
    "dataset.subset_per_class": (lambda v: v is None or (_is_int(v) and v >= 1),
                                 "null or an integer >= 1", False),
    "dataset.max_samples": (lambda v: v is None or (_is_int(v) and v >= 1),
                            "null or an integer >= 1", False),
    "eval.tsne_samples": (lambda v: _is_int(v) and v >= 10, "an integer >= 10", False),
    "eval.misclassified": (lambda v: _is_int(v) and v >= 1, "an integer >= 1", False),
}


def validate(cfg: DictConfig) -> None:
    from .device import PRECISIONS
    from .models.layers import ACTIVATIONS
    from .optim import SCHEDULERS
    from .resume import RESUME_MODES

    for key, (ok, allowed, required) in RULES.items():
        present = OmegaConf.select(cfg, key, default=_MISSING) is not _MISSING
        if not present:
            if required:
                raise VBenchError(f"{key} is missing from the config; it must be {allowed}")
            continue
        value = OmegaConf.select(cfg, key)
        if not ok(value):
            raise VBenchError(f"{key}={value!r} is not valid; it must be {allowed}")
    _choice(cfg, "trainer.monitor", MONITORS)
    _choice(cfg, "scheduler.name", SCHEDULERS)
    _choice(cfg, "trainer.resume", RESUME_MODES)
    _choice(cfg, "trainer.precision", PRECISIONS, as_str=True)
    if OmegaConf.select(cfg, "model.activation", default=None) is not None:
        _choice(cfg, "model.activation", ACTIVATIONS)
    _validate_eval(cfg)


def _validate_eval(cfg: DictConfig) -> None:
    from .analysis import dataset_options

    for plot in cfg.eval.plots:
        if plot not in PLOTS:
            raise choices_error("eval.plots", plot, PLOTS)
    for entry in cfg.eval.extra:
        name = entry if isinstance(entry, str) else entry.get("name")
        if name not in dataset_options():
            raise choices_error("eval.extra", name, dataset_options())
    for k in cfg.eval.shift_pixels:
        if not (_is_int(k) and k >= 0):
            raise VBenchError(f"eval.shift_pixels contains {k!r}; it must list integers >= 0")


_MISSING = object()


def _choice(cfg, key: str, choices, as_str: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    if (str(value) if as_str else value) not in choices:
        raise choices_error(key, value, choices)
