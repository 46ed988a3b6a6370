"""The installed `vbench` command in a subprocess, started as a user would start it."""

import os
import subprocess
import sys
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


def start_paused(command: list[str], point: str, cwd: Path, env: dict | None = None):
    """Start `command` (a vbench run) that waits at `point` (vbench/core/pause.py) and return the
    process once it waits there: a signal sent now arrives at that point on any machine.
    env as vbench()'s."""
    proc = subprocess.Popen(command, cwd=cwd, env=environment({**(env or {}),
                                                                "VBENCH_PAUSE_AT": point}),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:  # ends when the process does
        if line.startswith(f"vbench: paused at {point} "):
            return proc
        seen.append(line)
    raise AssertionError(f"never paused at {point} (exit {proc.wait()}): {''.join(seen)[-2000:]}")
