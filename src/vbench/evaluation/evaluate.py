"""One evaluation path: a model's metrics on a run's splits and the inference timing. A run
(networks and scikit-learn baselines alike) and vbench-eval use it.

Timing: one timed batch is noise (a thread pool waking up, another process on the cores: two
jobs of one sweep measured the same 9,866-parameter MLP 270x apart), so inference_ms_per_image
is the median over several batches, per image, after a warm-up batch. The batches of the test
pass are timed as they are predicted (`evaluate` predicts val first, which warms the model up
too); a split of fewer batches (digits' 360 test images are one batch of eval_batch_size)
times its first batch again (see timed_predict), which costs a few forward passes of one
batch.
"""

import statistics
import time
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


TIMED_BATCHES = 5  # the median is taken over at least this many batches after the warm-up
CHEAP_BATCHES, CHEAP_S = 15, 0.5  # and over up to 15 when repeating a batch takes < 0.5 s


def timed_predict(model, split: Split, batch_size: int, amp_dtype) -> tuple[torch.Tensor, float]:
    """predict() and the inference time in ms per image: the median over the batches timed
    after a warm-up batch, each with the device synchronized around it. A split of fewer
    than TIMED_BATCHES + 1 batches times its first batch again: TIMED_BATCHES times at least,
    CHEAP_BATCHES while that takes under CHEAP_S seconds (on 2 shared cores one batch in six
    or seven was preempted, 25-150x slower, sometimes three in a row)."""
    per_image: list[float] = []
    logits = predict(model, split, batch_size, amp_dtype, per_image)
    if len(per_image) <= TIMED_BATCHES:
        first = next(iter(split.batches(batch_size)))[0]
        start = time.perf_counter()
        while len(per_image) <= TIMED_BATCHES or (
                len(per_image) <= CHEAP_BATCHES and time.perf_counter() - start < CHEAP_S):
            predict_batch(model, first, amp_dtype, per_image)
    return logits, statistics.median(per_image[1:])  # the first batch warms up
