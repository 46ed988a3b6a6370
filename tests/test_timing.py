"""inference_ms_per_image: the median of several timed batches after a warm-up, so one slow
batch (a thread pool waking, another process on the cores) does not make the number."""

import time

import torch
from torch import nn

from vbench.data import Split
from vbench.evaluation.evaluate import CHEAP_BATCHES, TIMED_BATCHES, timed_predict


class Stalling(nn.Module):
    """A linear model whose forward passes stall (sleep) on the calls given."""

    def __init__(self, stalls: set[int]):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.stalls, self.calls = stalls, 0

    def forward(self, x):
        self.calls += 1
        if self.calls in self.stalls:
            time.sleep(0.2)
        return self.linear(x.flatten(1))


def split(images: int) -> Split:
    g = torch.Generator().manual_seed(0)
    return Split(torch.rand(images, 1, 2, 2, generator=g), torch.zeros(images, dtype=torch.long),
                 None, None)


def test_one_batch_split_is_timed_several_times_after_a_warm_up():
    # One batch (like digits' 360 test images at eval_batch_size 1024): the first pass warms
    # up and stalls, a later one stalls too; the median of the rest is what a batch costs.
    model = Stalling({1, 3})
    logits, ms = timed_predict(model, split(100), 1024, None)
    assert logits.shape == (100, 3)
    # The pass itself, then its first batch again: cheap here, so CHEAP_BATCHES times.
    assert model.calls == 1 + CHEAP_BATCHES
    assert ms < 0.2 * 1000 / 100 / 4  # far below one stalled batch's 2 ms per image
    # A costly batch (0.2 s here) is repeated only up to TIMED_BATCHES.
    slow = Stalling(set(range(1, 100)))
    timed_predict(slow, split(100), 1024, None)
    assert slow.calls == 1 + TIMED_BATCHES


def test_a_split_of_many_batches_is_timed_as_it_is_predicted():
    model = Stalling({1, 4})
    logits, ms = timed_predict(model, split(80), 10, None)
    assert torch.allclose(logits, model.linear(split(80).x.flatten(1)).detach())
    assert model.calls == 8  # no extra pass: 8 batches, 7 timed after the warm-up
    assert ms < 0.2 * 1000 / 10 / 4
