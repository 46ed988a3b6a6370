"""One writer per run directory.

A run holds an exclusive `flock` on `<run dir>/.lock` from before it looks at the directory
until its last file is written. The OS drops the lock when the process ends, however it ends,
so a SIGKILL never leaves a stale lock behind; a second process into the same directory stops
at once, naming the process that holds it. The lock is re-entrant within a process: `vbench`
takes it before Hydra writes `.hydra/` (cli.py), and run() takes it again for callers of the
Python API. The tools that write into a run directory afterwards (vbench-eval, and
vbench-export or vbench-predict when their output lies inside it) take the same lock, and never
write over the run's own records (RECORDS).

The process that draws a run's figures after the run has returned (reports/figures.py) inherits
the lock's file descriptor and holds the lock until the figures are on disk: a process that
finds the lock held by a figure drawer waits for it (a second or so) instead of stopping.
"""

import contextlib
import fcntl
import os
import time
from pathlib import Path

from ..core.errors import VBenchError
from .stderr import say

_HELD: dict[Path, list[int]] = {}  # run dir -> [lock fd, times this process entered it]
DRAWING = "figures"  # the lock file's second word while a figure drawer holds it
WAIT_FOR_FIGURES_S = 300  # a drawer that takes longer is stuck: stop waiting for it
# The run directory's files and folders, named once (the README's "The run directory").
METRICS_FILE, HISTORY_FILE = "metrics.json", "history.csv"
LOG_FILE, MODEL_CARD_FILE, LOCK_FILE = "vbench.log", "model_card.md", ".lock"
CHECKPOINTS_DIR, PLOTS_DIR, HYDRA_DIR = "checkpoints", "plots", ".hydra"
EVAL_DIR, EXPORT_DIR = "eval", "export"  # what vbench-eval and vbench-export add
# What hydra/sweeper=optuna writes into the sweep directory: the study's default storage and
# every trial's state with the best trial's config.
OPTUNA_JOURNAL, OPTIMIZATION_RESULTS = "optuna.journal", "optimization_results.yaml"
# What a run writes about itself, at the top of its directory: no tool may write over these
# (or anything under the folders among them).
RECORDS = (CHECKPOINTS_DIR, METRICS_FILE, HISTORY_FILE, HYDRA_DIR, LOG_FILE, MODEL_CARD_FILE,
           PLOTS_DIR, LOCK_FILE)


@contextlib.contextmanager
def exclusive(run_dir: Path, advice: str = "wait for it to end, or choose another "
              "hydra.run.dir"):
    """Hold `run_dir`'s lock; a second process stops at once with a VBenchError ending in
    `advice`."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _HELD:
        _HELD[run_dir][1] += 1
        try:
            yield
        finally:
            _HELD[run_dir][1] -= 1
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise VBenchError(f"cannot write the run directory {run_dir}: {e.strerror}; choose "
                          "another hydra.run.dir (or hydra.sweep.dir)") from None
    try:
        if not _locked(fd, fcntl.LOCK_EX):
            holder = _holder(fd)
            raise VBenchError(f"{run_dir} is in use by another vbench process (pid "
                              f"{holder[0] if holder else 'unknown'}); {advice}")
        mark_holder(fd)
        _HELD[run_dir] = [fd, 1]
        try:
            yield
        finally:
            del _HELD[run_dir]
    finally:
        os.close(fd)  # releases the lock (a figure drawer may still hold it: it has a copy)


def _locked(fd: int, mode: int) -> bool:
    """Take the lock in `mode`; False when another process holds it, after waiting for a
    figure drawer to finish."""
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    holder = _holder(fd)
    if DRAWING not in holder:
        return False
    say(f"vbench: waiting for pid {holder[0]} to finish drawing the run's figures")
    deadline = time.monotonic() + WAIT_FOR_FIGURES_S
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
    return False


_MARK_BYTES = 64  # the lock file's record, written whole: a reader never sees it half-written


def _holder(fd: int) -> list[str]:
    """The lock file's words: the holder's pid, and DRAWING for a figure drawer."""
    return os.pread(fd, _MARK_BYTES, 0).decode(errors="replace").split()


def mark_holder(fd: int, *words: str, pid: int | None = None) -> None:
    """Name the holder (this process, or `pid`) in the lock file, for the message of a process
    that finds it held: one write of a fixed-size record, never a truncation first."""
    record = " ".join([str(pid or os.getpid()), *words]).ljust(_MARK_BYTES - 1) + "\n"
    os.pwrite(fd, record.encode(), 0)


def held_fd(run_dir: Path) -> int:
    """The file descriptor of `run_dir`'s lock, which this process holds (exclusive)."""
    return _HELD[Path(run_dir).resolve()][0]


def wait_for_figures(run_dir: Path) -> None:
    """Return once no process draws `run_dir`'s figures (at once when none was started): what
    reads plots/ right after a run (report.html, tests) calls this first."""
    lock = Path(run_dir) / LOCK_FILE
    if Path(run_dir).resolve() in _HELD or not lock.exists():
        return
    with contextlib.suppress(OSError):
        fd = os.open(lock, os.O_RDONLY)
        try:
            if DRAWING in _holder(fd):  # else: no drawer was started, nothing to wait for
                _locked(fd, fcntl.LOCK_SH)
        finally:
            os.close(fd)


def remove_stale_temps(run_dir: Path) -> None:
    """Temp files of writes a killed process never finished (files.py writes `.<name>.*.tmp`
    and renames it into place); only the lock holder may call this."""
    for tmp in Path(run_dir).rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def inside(run_dir: Path, path: Path) -> Path | None:
    """`path` relative to `run_dir` when it lies inside it, both resolved (`..` and symlinks
    followed, so neither slips past); None when it lies elsewhere."""
    try:
        return Path(path).resolve().relative_to(Path(run_dir).resolve())
    except ValueError:
        return None


def own_record(run_dir: Path, path: Path) -> Path | None:
    """The run's own record (RECORDS) that writing `path` would replace, relative to
    `run_dir`; None when `path` is not one of them."""
    relative = inside(run_dir, path)
    if relative is None or not relative.parts or relative.parts[0] not in RECORDS:
        return None
    return relative
