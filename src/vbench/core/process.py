"""How a console command ends its process: at once, once its work is on disk.

A Python process that imported torch and torch._dynamo (every run does: the first optimizer
imports it) spends about half a second at exit tearing down its ~2,000 modules one by one,
after the user's results are written and shown; measured on 2 CPU cores, the floor process of
benchmarks/startup.py ends 0.6 s sooner with os._exit. `console_command` keeps what the
interpreter's exit does that matters (threads still writing, atexit handlers: loggers, joblib's
workers, TensorBoard's writer; flushed output) and skips the teardown. In-process callers
(tests, notebooks) call the undecorated function and keep Python's normal exit.
"""

import atexit
import contextlib
import ctypes
import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn


def console_command(main: Callable[[], object]) -> Callable[[], NoReturn]:
    """The entry point of a console script running `main`: its exit code (what it returns or
    raises SystemExit with, as a console script's `sys.exit(main())`) without Python's
    teardown. An uncaught exception keeps Python's own handling."""

    @functools.wraps(main)
    def command() -> NoReturn:
        # No process vbench starts imports from the current folder: joblib's and the fill
        # launcher's workers (python -m ...) and DataLoader workers under spawn would put it
        # first on their path (Python 3.11+ reads this; the figure drawer runs with -I anyway).
        os.environ.setdefault("PYTHONSAFEPATH", "1")
        try:
            code = main()
        except SystemExit as e:
            code = e.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)  # sys.exit("message"), as Python prints it
            code = 1
        exit_now(code or 0)

    return command


def exit_now(code: int) -> NoReturn:
    # What Python's exit does first, in its order: threading's exit hooks (which tell
    # concurrent.futures' workers, e.g. inductor's compile pool, to stop), then wait for the
    # non-daemon threads; then the atexit handlers (logging.shutdown, trackers', joblib's).
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe (vbench ... | head): nothing to lose
            pass
    with contextlib.suppress(OSError, AttributeError):  # C's stdio buffers (C++ libraries')
        ctypes.CDLL(None).fflush(None)
    os._exit(code)
