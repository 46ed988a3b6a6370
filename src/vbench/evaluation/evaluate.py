"""One evaluation path: a model's metrics on a run's splits and the inference timing. A run
(networks and scikit-learn baselines alike) and vbench-eval use it.

Timing: one timed batch is noise (a thread pool waking up, another process on the cores: two
jobs of one sweep measured the same 9,866-parameter MLP 270x apart), so inference_ms_per_image
is the median over TIMED_BATCHES batches, per image, after a warm-up batch. The batches of
the test pass are timed as they are predicted (`evaluate` predicts val first, which warms the
model up too); a split of fewer batches than that (digits' 360 test images are one batch of
eval_batch_size) times its first batch again until there are TIMED_BATCHES, which costs a
few forward passes of one batch.
"""

import statistics
from dataclasses import dataclass

import torch

from ..data import Data, Split
from .forward import predict, predict_batch
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


TIMED_BATCHES = 5  # batches the median is taken over, after one warm-up batch


def timed_predict(model, split: Split, batch_size: int, amp_dtype) -> tuple[torch.Tensor, float]:
    """predict() and the inference time in ms per image: the median over TIMED_BATCHES
    batches after a warm-up batch, each timed with the device synchronized around it."""
    per_image: list[float] = []
    logits = predict(model, split, batch_size, amp_dtype, per_image)
    if len(per_image) <= TIMED_BATCHES:
        first = next(iter(split.batches(batch_size)))[0]
        while len(per_image) <= TIMED_BATCHES:
            predict_batch(model, first, amp_dtype, per_image)
    return logits, statistics.median(per_image[1:])  # the first batch warms up
