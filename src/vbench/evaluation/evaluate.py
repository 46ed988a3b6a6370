"""One evaluation path: a model's metrics on a run's splits, the metrics.json summary, and the
inference timing. run.py, the scikit-learn baselines and vbench-eval all use it.

Timing costs no extra pass: `evaluate` predicts val first, then times its test pass, which the
val pass has warmed up (only a run without a test split pays one warm-up pass over val).
"""

import platform
import time
from dataclasses import dataclass
from importlib import metadata

import torch

from ..data import Data, Split
from ..training import distributed
from ..training.resume import config_fingerprint
from .metrics import classification_metrics, per_class_accuracy
from .predict import predict


@dataclass
class Evaluation:
    """A model's metrics on val and test (None without a test split), its test logits, and
    the batched inference time per image of its timed pass."""

    val: dict
    test: dict | None
    test_logits: torch.Tensor | None
    inference_ms_per_image: float

    def metrics(self) -> dict:
        """metrics.json's {"val": ..., "test": ...} for one checkpoint."""
        return {"val": self.val, "test": self.test}


def evaluate(model, data: Data, batch_size: int, amp_dtype) -> Evaluation:
    """Metrics of `model` on data.val and data.test; the test pass (val without a test split,
    after a warm-up pass) is the timed one."""
    val_logits = predict(model, data.val, batch_size, amp_dtype)
    if data.test is None:
        test_logits, ms = None, timed_predict(model, data.val, batch_size, amp_dtype)[1]
    else:
        test_logits, ms = timed_predict(model, data.test, batch_size, amp_dtype)
    return Evaluation(
        val=classification_metrics(val_logits, data.val.y),
        test=None if test_logits is None else classification_metrics(test_logits, data.test.y),
        test_logits=test_logits, inference_ms_per_image=ms)


def timed_predict(model, split: Split, batch_size: int, amp_dtype) -> tuple[torch.Tensor, float]:
    """predict() and its wall time in ms per image, with the device synchronized around it."""
    sync = torch.cuda.synchronize if split.x.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    logits = predict(model, split, batch_size, amp_dtype)
    sync()
    return logits, (time.perf_counter() - start) * 1000 / len(split)


def summary(cfg, data: Data, best: Evaluation | None, final: Evaluation, amp_dtype,
            **fields) -> dict:
    """metrics.json: the keys every kind of run shares around `fields`, which differ (status,
    params, epochs_run, best_epoch, monitor, train_time_s). Per-class accuracy and the timing
    are the best checkpoint's (the final weights' when no epoch was best)."""
    chosen = best or final
    return {
        "status": fields.pop("status"),
        "dataset": cfg.dataset.name,
        "model": cfg.model.name,
        "device": str(data.train.x.device),
        "threads": torch.get_num_threads(),  # intra-op threads: parallel launchers lower it
        "world_size": distributed.world_size(),  # processes of a torchrun job
        "data": {"in_memory": data.in_memory, "normalization": data.normalization},
        "seed": cfg.trainer.seed,
        "name": cfg.run.name,  # run.name and run.tags: the user's labels
        "tags": list(cfg.run.tags),
        **fields,
        "best": best.metrics() if best is not None else None,
        "final": final.metrics(),
        "per_class_accuracy": (per_class_accuracy(best.test_logits, data.test.y, data.classes)
                               if best is not None and best.test_logits is not None else None),
        "inference_ms_per_image": chosen.inference_ms_per_image,
        "precision": str(amp_dtype or torch.float32).removeprefix("torch."),
        "sizes": {"train": len(data.train), "val": len(data.val),
                  "test": len(data.test) if data.test is not None else 0},
        "classes": data.classes,
        "config": config_fingerprint(cfg),  # what these numbers belong to (resume.py checks it)
        "versions": versions(),
    }


def versions() -> dict:
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    names = ("vbench", "torch", "torchvision", "timm", "scikit-learn", "hydra-core")
    return {**{name: version(name) for name in names}, "python": platform.python_version()}
