"""The installed `vbench` command in a subprocess, started as a user would start it."""

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

VBENCH = Path(sys.executable).with_name("vbench")  # the console script of this environment
SRC = Path(__file__).parents[2] / "src"


def environment(env: dict | None = None) -> dict[str, str]:
    """os.environ without HYDRA_FULL_ERROR (a user's shell does not set it: errors are one
    line), updated by `env`, where a value None removes that variable."""
    result = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    for key, value in (env or {}).items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = str(value)
    return result


def vbench(*args, cwd: Path, env: dict | None = None, timeout: float | None = 600,
           check: bool = False, program: str | Path = VBENCH,
           src_first: bool = False) -> subprocess.CompletedProcess:
    """`program *args` (the installed `vbench` unless told otherwise) run in `cwd`, its output
    captured as text. env: variables set (None: removed) on top of environment(); src_first:
    this repository's src/ first on PYTHONPATH; timeout: a guard against a hang, in seconds,
    not a bound on speed; check: raise CalledProcessError on a non-zero exit."""
    variables = environment(env)
    if src_first:
        variables["PYTHONPATH"] = os.pathsep.join([str(SRC), variables.get("PYTHONPATH", "")])
    return subprocess.run([str(program), *map(str, args)], cwd=cwd, env=variables,
                          capture_output=True, text=True, timeout=timeout, check=check)


class Started:
    """A command running in the background in its own process group, its stderr read by a
    thread so that every wait on it has a deadline: a test that would hang fails instead, with
    what the command printed. Leaving the with-block kills what is left of the group, so a
    failing test leaves no process behind."""

    def __init__(self, command: list, cwd: Path, env: dict | None = None):
        self.proc = subprocess.Popen([str(c) for c in command], cwd=cwd, env=environment(env),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        self.printed: list[str] = []  # every stderr line read so far
        self._lines: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self._lines.put(line)
        self._lines.put(None)  # end of file: every process holding the pipe has closed it

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def wait_for(self, text: str, count: int = 1, timeout: float = 300) -> None:
        """Until the command has printed `text` `count` times."""
        deadline, seen = time.monotonic() + timeout, 0
        while seen < count:
            line = self._next(deadline, f"{text!r} printed {count} time(s)")
            if line is None:
                raise AssertionError(f"the command ended (exit {self.proc.wait()}) before "
                                     f"printing {text!r} {count} time(s): {self.tail()}")
            seen += line.count(text)

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        """Wait until the command has exited and every process it started has closed its
        stderr (one still holding it outlived the command); its exit code and what it
        printed since the last wait."""
        deadline, start = time.monotonic() + timeout, len(self.printed)
        while self._next(deadline, "the end of its stderr") is not None:
            pass
        return self.proc.wait(timeout=max(1, deadline - time.monotonic())), "".join(
            self.printed[start:])

    def children(self) -> list[int]:
        """The live processes the command started (its direct children)."""
        return [pid for pid in _pids() if _parent(pid) == self.proc.pid]

    def tail(self, chars: int = 3000) -> str:
        return "".join(self.printed)[-chars:]

    def _next(self, deadline: float, waiting_for: str) -> str | None:
        try:
            line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"timed out waiting for {waiting_for}; processes of the "
                                 f"command: {self._group()}; it printed: {self.tail()}") from None
        if line is not None:
            self.printed.append(line)
        return line

    def _group(self) -> list[str]:
        return [f"{pid} {_stat(pid)[0]} {_cmdline(pid)[:120]}" for pid in _pids()
                if _stat(pid) and _pgid(pid) == self.proc.pid]


def start_paused(command: list, point: str, cwd: Path, env: dict | None = None,
                 count: int = 1) -> Started:
    """Start `command` (a vbench run or sweep) that waits at `point` (vbench/core/pause.py),
    and return it once `count` of its processes wait there (a sweep's workers each pause once):
    a signal sent now arrives at that point on any machine. env as vbench()'s."""
    started = Started(command, cwd, {**(env or {}), "VBENCH_PAUSE_AT": point})
    try:
        started.wait_for(f"vbench: paused at {point} ", count)
    except BaseException:
        started.__exit__()
        raise
    return started


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, which has ended, does not)."""
    stat = _stat(pid)
    return bool(stat) and stat[0] != "Z"


def still_running(pids: list[int], timeout: float = 10) -> list[str]:
    """Those of `pids` still running after up to `timeout` seconds, with their command lines
    (joblib's resource tracker, say, ends shortly after the process it served)."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [f"{pid} {_cmdline(pid)[:160]}" for pid in pids if alive(pid)]


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (state, ppid, pgrp, ...); [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _parent(pid: int) -> int | None:
    stat = _stat(pid)
    return int(stat[1]) if stat and stat[0] != "Z" else None


def _pgid(pid: int) -> int | None:
    stat = _stat(pid)
    return int(stat[2]) if stat else None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
