"""trainer.compile: torch.compile in a chosen mode, kept only when it measures faster.

torch.compile pays off on big models and can lose on small ones: on an H200 the default mode
made the seeds' CNN 1.35x slower than eager, while `reduce-overhead` (CUDA graphs) made it
1.25x faster. So before training, the run times its own training step (forward, loss,
backward on a real batch of its batch size, precision and memory format) eager and compiled,
after warm-up, and trains compiled only when that is at least MARGIN faster; metrics.json
`compile` records both times, the choice and why, and a mode that lost is reported on the
console. The measurement changes nothing the run trains with: gradients, BatchNorm statistics
and the random state are put back. The choice goes into every checkpoint, so a resumed run
trains as its first part did.

Shapes are static (`dynamic=False`): CUDA graphs are recorded per shape, and a run trains on
two batch shapes at most (the full batches and an epoch's last), so each is compiled once
instead of once as static and again as dynamic. Validation and test passes run eager.
"""

import time

import torch
import torch.nn.functional as F
from torch import nn

from ..core.console import console
from ..core.device import autocast
from ..core.errors import VBenchError
from ..data.registry import Split
from ..models.freeze import keep_frozen_in_eval
from . import distributed

MARGIN = 0.03  # compiled is kept when this much faster: a tie goes to eager (no compile time)
WARMUP_STEPS = 3  # cudagraph trees record on the third call of a shape
TIMED_STEPS = 5  # per round; the median of ROUNDS rounds, eager and compiled alternating
ROUNDS = 3
# Rounds of one model further apart than this (slowest / fastest) are noise, not the model: a
# preempted core once timed eager at 235 ms a step against 3.4 ms in a run of the same config.
# Measured once more; still that noisy, the measurement does not decide and eager stays.
NOISE = 1.5


def compile_mode(setting) -> str | None:
    """The torch.compile mode of a trainer.compile value; None: eager."""
    if setting is False:
        return None
    return "default" if setting is True else setting


def compile_if_faster(model: nn.Module, mode: str, split: Split, batch_size: int, amp_dtype,
                      channels_last: bool, earlier: dict | None = None,
                      deterministic: bool = False) -> tuple[nn.Module, dict]:
    """`model` compiled in `mode` when its training step measures faster so, else `model`
    itself; and metrics.json's `compile` record. A resumed run keeps the choice its first
    part made (`earlier`, from last.pt), and trainer.deterministic keeps the compiled model
    unmeasured: the noise of a measurement must not choose a run's numerics."""
    compiled = torch.compile(model, mode=mode, dynamic=False)  # shares the parameters
    if earlier is not None and earlier.get("mode") == mode:
        return (compiled if earlier["trained"] == "compiled" else model), earlier
    if deterministic:
        return compiled, _record(mode, None, None, "compiled",
                                 "trainer.deterministic: compiled, not measured")
    times = _measure(model, compiled, split, batch_size, amp_dtype, channels_last, mode)
    # One decision for every rank of a torchrun job: rank 0's.
    eager_s, compiled_s, spread = times or (None, None, None)
    noisy = spread is not None and spread > NOISE
    faster = distributed.broadcast(
        times is not None and not noisy and compiled_s < (1 - MARGIN) * eager_s
        if distributed.is_main() else None)
    if faster:
        return compiled, _record(mode, eager_s, compiled_s, "compiled", "measured faster")
    reason = ("out of memory while measuring it" if times is None else
              f"the measurement was too noisy to decide (rounds {spread:.1f}x apart, twice; "
              "another process on the cores?)" if noisy else
              f"compiled {compiled_s * 1e3:.3g} ms a training step against {eager_s * 1e3:.3g} "
              f"ms eager after warm-up (kept only when {MARGIN:.0%} faster)")
    console.print(f"trainer.compile={mode}: {reason}, so this run trains eager (metrics.json "
                  "compile)", highlight=False, soft_wrap=True)
    torch._dynamo.reset()  # the compiled graphs (and CUDA graphs' memory) are not kept
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    return model, _record(mode, eager_s, compiled_s, "eager", reason)


def _measure(model, compiled, split: Split, batch_size: int, amp_dtype, channels_last: bool,
             mode: str) -> tuple[float, float, float] | None:
    """(eager, compiled) seconds of a training step and the measurement's spread (_step_times);
    None when compiling ran out of memory."""
    n = min(batch_size, len(split))
    x, y = split.head(n)  # decodes n files when streamed
    x = split.inputs(x)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    model.train()
    keep_frozen_in_eval(model)  # the modes the loop trains in: the graph it will run
    with _unchanged(model):
        try:
            return _step_times(model, compiled, x, y, amp_dtype)
        except torch.OutOfMemoryError:
            return None
        except Exception as e:  # noqa: BLE001 - inductor's failures come in many types
            raise VBenchError(f"trainer.compile={mode}: torch.compile failed "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); train "
                              "eager with trainer.compile=false") from None


def not_compiled(mode: str, reason: str) -> dict:
    """metrics.json's `compile` for a run that trainer.compile cannot apply to: nothing
    measured, nothing compiled, and why."""
    return _record(mode, None, None, None, reason)


def _record(mode: str, eager_s, compiled_s, trained: str | None, reason: str) -> dict:
    def ms(seconds):
        return None if seconds is None else round(seconds * 1e3, 3)

    return {"mode": mode, "eager_ms_per_step": ms(eager_s), "compiled_ms_per_step": ms(compiled_s),
            "trained": trained, "reason": reason}


def _step_times(eager: nn.Module, compiled: nn.Module, x, y, amp_dtype):
    """(eager, compiled) seconds of a forward-backward step, the fastest of ROUNDS rounds each
    after warm-up (the first compiled call compiles), and the rounds' spread (slowest /
    fastest of the noisier model)."""
    def step(model):
        # As a training step: fresh gradients (accumulating into the last step's would read
        # CUDA graph outputs that reduce-overhead's next replay overwrote, which torch refuses),
        # and a new CUDA graph step.
        eager.zero_grad(set_to_none=True)
        torch.compiler.cudagraph_mark_step_begin()
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
    for _ in range(2):  # a noisy measurement is repeated once
        rounds = [(timed(eager), timed(compiled)) for _ in range(ROUNDS)]
        spread = max(max(times) / min(times) for times in zip(*rounds, strict=True))
        if spread <= NOISE:
            break
    # The fastest round of each: noise (another process on the cores) only ever adds time.
    return min(e for e, _ in rounds), min(c for _, c in rounds), spread


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
        self.mps_rng = torch.mps.get_rng_state() if torch.backends.mps.is_available() else None

    def __exit__(self, *exc):
        with torch.no_grad():
            for name, b in self.model.named_buffers():
                b.copy_(self.buffers[name])
        for p in self.model.parameters():
            p.grad = None
        torch.random.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        if self.mps_rng is not None:
            torch.mps.set_rng_state(self.mps_rng)
