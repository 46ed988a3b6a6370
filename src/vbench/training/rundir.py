"""One writer per run directory.

A run holds an exclusive `flock` on `<run dir>/.lock` from before it looks at the directory
until its last file is written. The OS drops the lock when the process ends, however it ends,
so a SIGKILL never leaves a stale lock behind; a second process into the same directory stops
at once, naming the process that holds it. The lock is re-entrant within a process: `vbench`
takes it before Hydra writes `.hydra/` (cli.py), and run() takes it again for callers of the
Python API. The tools that write into a run directory afterwards (vbench-eval, and
vbench-export or vbench-predict when their output lies inside it) take the same lock, and never
write over the run's own records (RECORDS).
"""

import contextlib
import fcntl
import os
from pathlib import Path

from ..core.errors import VBenchError

_HELD: dict[Path, int] = {}  # run dir -> how many times this process entered its lock
# What a run writes about itself, at the top of its directory: no tool may write over these
# (or anything under the folders among them).
RECORDS = ("checkpoints", "metrics.json", "history.csv", ".hydra", "vbench.log",
           "model_card.md", "plots", ".lock")


@contextlib.contextmanager
def exclusive(run_dir: Path, advice: str = "wait for it to end, or choose another "
              "hydra.run.dir"):
    """Hold `run_dir`'s lock; a second process stops at once with a VBenchError ending in
    `advice`."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _HELD:
        _HELD[run_dir] += 1
        try:
            yield
        finally:
            _HELD[run_dir] -= 1
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise VBenchError(f"cannot write the run directory {run_dir}: {e.strerror}; choose "
                          "another hydra.run.dir (or hydra.sweep.dir)") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise VBenchError(f"{run_dir} is in use by another vbench process (pid {holder}); "
                              f"{advice}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[run_dir] = 1
        try:
            yield
        finally:
            del _HELD[run_dir]
    finally:
        os.close(fd)  # releases the lock


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
