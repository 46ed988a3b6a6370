"""Where a run's wall-clock time goes: metrics.json `timings` (seconds per phase), which
benchmarks/startup.py prints as the breakdown of a whole `vbench` process."""

import time

import vbench

# The phases, in the order a run passes them: `startup` (imports and the config: the first
# run of a process only), `device` (CUDA's context, on a GPU), `data`, `setup` (the model and
# optimizer; the first optimizer imports torch._dynamo), `compile` (trainer.compile's
# measurement), `training`, `evaluation`, `plots` (the probes and figures; in the background,
# only preparing the figures' data).
PHASES = ("startup", "device", "data", "setup", "compile", "training", "evaluation", "plots")

_first_run = True


class Phases:
    """Laps of one run. The first run of a process starts counting at `import vbench` (the
    `startup` phase: torch, Hydra, composing the config); later runs of a sweep at their start."""

    def __init__(self):
        global _first_run
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()
        if _first_run:
            self.lap("startup", since=vbench.IMPORTED_AT)
        _first_run = False

    def lap(self, phase: str, since: float | None = None) -> None:
        assert phase in PHASES, phase
        now = time.perf_counter()
        self.timings[phase] = round(now - (self._last if since is None else since), 4)
        self._last = now

    def restart(self) -> None:
        """The next lap starts now: a stacked seed whose evaluation waited for the members
        before it counts only its own (training/stack.py)."""
        self._last = time.perf_counter()
