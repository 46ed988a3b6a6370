"""trainer.compile: torch.compile in a chosen mode, kept only when it measures faster.

torch.compile pays off on big models and can lose on small ones: on an H200 the default mode
made the seeds' CNN 1.35x slower than eager, while `reduce-overhead` (CUDA graphs) made it
1.25x faster. So before training, the run times its own training step (forward, loss,
backward on a real batch of its batch size, precision and memory format) eager and compiled,
after warm-up, and trains with whichever is faster; metrics.json `compile` records both times
and the choice, and a mode that lost is reported on the console. The measurement changes
nothing the run trains with: gradients, BatchNorm statistics and the random state are put back.

Shapes are static (`dynamic=False`): CUDA graphs are recorded per shape, and a run trains on
two batch shapes at most (the full batches and an epoch's last), so each is compiled once
instead of once as static and again as dynamic. Validation and test passes run eager.
"""

import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from ..core.console import console
from ..core.device import autocast
from ..core.errors import VBenchError
from ..data.registry import Split
from . import distributed

WARMUP_STEPS = 3  # cudagraph trees record on the third call of a shape
TIMED_STEPS = 5  # per round; the median of ROUNDS rounds, eager and compiled alternating
ROUNDS = 3


def compile_mode(setting) -> str | None:
    """The torch.compile mode of a trainer.compile value; None: eager."""
    if setting is False:
        return None
    return "default" if setting is True else setting


def compile_if_faster(model: nn.Module, mode: str, split: Split, batch_size: int,
                      amp_dtype, channels_last: bool) -> tuple[nn.Module, dict]:
    """`model` compiled in `mode` when its training step measures faster so, else `model`
    itself; and metrics.json's `compile` record of the measurement."""
    compiled = torch.compile(model, mode=mode, dynamic=False)  # shares the parameters
    x, y = next(iter(split.batches(min(batch_size, len(split)))))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with _unchanged(model):
        try:
            eager_s, compiled_s = _step_times(model, compiled, x, y, amp_dtype)
        except Exception as e:  # noqa: BLE001 - inductor's failures come in many types
            raise VBenchError(f"trainer.compile={mode}: torch.compile failed "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); train "
                              "eager with trainer.compile=false") from None
    # One decision for every rank of a torchrun job: rank 0's.
    faster = distributed.broadcast(compiled_s < eager_s if distributed.is_main() else None)
    record = {"mode": mode, "eager_ms_per_step": round(eager_s * 1e3, 3),
              "compiled_ms_per_step": round(compiled_s * 1e3, 3),
              "trained": "compiled" if faster else "eager"}
    if not faster:
        console.print(f"trainer.compile={mode}: a training step takes {compiled_s * 1e3:.3g} ms "
                      f"compiled against {eager_s * 1e3:.3g} ms eager after warm-up, so this "
                      "run trains eager (metrics.json compile)", highlight=False, soft_wrap=True)
    return (compiled if faster else model), record


def _step_times(eager: nn.Module, compiled: nn.Module, x, y, amp_dtype) -> tuple[float, float]:
    """Median seconds of a forward-backward step of each, after warm-up (the first compiled
    call compiles)."""
    def step(model):
        with autocast(x.device, amp_dtype):
            loss = F.cross_entropy(model(x), y)
        loss.backward()

    def timed(model) -> float:
        _synchronize(x.device)
        start = time.perf_counter()
        for _ in range(TIMED_STEPS):
            step(model)
        _synchronize(x.device)
        return (time.perf_counter() - start) / TIMED_STEPS

    for _ in range(WARMUP_STEPS):
        step(compiled)
        step(eager)
    rounds = [(timed(eager), timed(compiled)) for _ in range(ROUNDS)]
    return (statistics.median(e for e, _ in rounds), statistics.median(c for _, c in rounds))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class _unchanged:
    """Puts back what measuring steps changes: gradients, buffers (BatchNorm's running
    statistics) and the random state (dropout draws), so the run trains as it would without."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.buffers = {name: b.detach().clone() for name, b in self.model.named_buffers()}
        self.rng = torch.random.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def __exit__(self, *exc):
        with torch.no_grad():
            for name, b in self.model.named_buffers():
                b.copy_(self.buffers[name])
        for p in self.model.parameters():
            p.grad = None
        torch.random.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
