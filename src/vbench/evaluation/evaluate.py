"""One evaluation path: a model's metrics on a run's splits and the inference timing. A run
(networks and scikit-learn baselines alike) and vbench-eval use it.

Timing costs no extra pass: `evaluate` predicts val first, then times its test pass, which the
val pass has warmed up (only a run without a test split pays one warm-up pass over val).
"""

import time
from dataclasses import dataclass

import torch

from ..data import Data, Split
from .forward import predict
from .metrics import classification_metrics


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
