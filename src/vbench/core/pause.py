"""Wait at a named point of a run, so that a test (or a person reproducing a fault) can signal
or kill it at a moment it chooses rather than after a sleep that a fast or a loaded machine
would get wrong.

`VBENCH_PAUSE_AT=<point>` makes the run print `vbench: paused at <point>` on stderr and wait
there until a signal ends the wait (SIGTERM and Ctrl-C interrupt the run as anywhere else;
SIGKILL kills it). The points:

  start             the run directory is locked and the signal handlers are installed; no
                    epoch has started
  epoch:N           epoch N is finished: its history.csv row and checkpoints are on disk
                    (a stack of seeds writes its checkpoints when it ends)
  checkpoint-write  the first checkpoint's temporary file is written, not yet renamed
  figures           in the process drawing a finished run's figures (reports/figures.py),
                    holding the run directory's lock, before the first figure; it prints to
                    the run's vbench.log
"""

import os
import time

from .stderr import say

ENV = "VBENCH_PAUSE_AT"


def pause_at(point: str) -> None:
    if os.environ.get(ENV) != point:
        return
    os.environ.pop(ENV)  # once per process: a resumed or continued run in-process goes on
    say(f"vbench: paused at {point} ({ENV})")
    while True:
        time.sleep(60)
