"""inference_ms_per_image: the median of several timed batches after a warm-up, so one slow
batch (a thread pool waking, another process on the cores) does not make the number.

The clock is the tests': time passes only in the model's forward passes, by a fixed amount for
a plain pass and more for a stalled one, so what is timed and what the median makes of it are
exact on any machine, however loaded."""

import time

import pytest
import torch
from torch import nn

from vbench.data import Split
from vbench.evaluation.evaluate import CHEAP_BATCHES, TIMED_BATCHES, timed_predict

PASS_S, STALL_S = 2.0**-10, 0.25  # a forward pass and a stalled one, on the clock below


class Clock:
    """time.perf_counter for the code under test: it moves only when a Stalling model runs."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(time, "perf_counter", clock)
    return clock


class Stalling(nn.Module):
    """A linear model whose forward passes take PASS_S on `clock`, STALL_S on the calls given."""

    def __init__(self, clock: Clock, stalls: set[int]):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.clock, self.stalls, self.calls = clock, stalls, 0

    def forward(self, x):
        self.calls += 1
        self.clock.now += STALL_S if self.calls in self.stalls else PASS_S
        return self.linear(x.flatten(1))


def split(images: int) -> Split:
    g = torch.Generator().manual_seed(0)
    return Split(torch.rand(images, 1, 2, 2, generator=g), torch.zeros(images, dtype=torch.long),
                 None, None)


def test_one_batch_split_is_timed_several_times_after_a_warm_up(clock):
    # One batch (like digits' 360 test images at eval_batch_size 1024): the first pass warms
    # up and stalls, a later one stalls too; the median of the rest is what a batch costs.
    model = Stalling(clock, {1, 3})
    logits, ms = timed_predict(model, split(100), 1024, None)
    assert logits.shape == (100, 3)
    # The pass itself, then its first batch again: cheap here, so CHEAP_BATCHES times.
    assert model.calls == 1 + CHEAP_BATCHES
    assert ms == pytest.approx(PASS_S * 1000 / 100)  # a plain batch's, not a stalled one's
    # A costly batch (STALL_S here) is repeated only up to TIMED_BATCHES.
    slow = Stalling(clock, set(range(1, 100)))
    timed_predict(slow, split(100), 1024, None)
    assert slow.calls == 1 + TIMED_BATCHES


def test_a_split_of_many_batches_is_timed_as_it_is_predicted(clock):
    model = Stalling(clock, {1, 4})
    logits, ms = timed_predict(model, split(80), 10, None)
    assert torch.allclose(logits, model.linear(split(80).x.flatten(1)).detach())
    assert model.calls == 8  # no extra pass: 8 batches, 7 timed after the warm-up
    assert ms == pytest.approx(PASS_S * 1000 / 10)  # the stalled 4th batch is not the median
