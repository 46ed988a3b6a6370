"""Where a run's wall-clock time goes: metrics.json `timings` (seconds per phase), which
benchmarks/startup.py prints as the breakdown of a whole `vbench` process."""

import time

import vbench

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
        now = time.perf_counter()
        self.timings[phase] = round(now - (self._last if since is None else since), 4)
        self._last = now
