"""What a `vbench` process costs around its training (issue 20 item 5): the figures are drawn
after metrics.json by a background process that holds the run directory's lock (at a terminal,
or with eval.background_plots=true), and the process ends without Python's teardown, once its
threads and atexit handlers are done."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from helpers import make_cfg, png_ok, vbench
from vbench.core.rundir import exclusive, wait_for_figures
from vbench.reports.figures import ARRAYS, SPEC

DEFAULT_PLOTS = tuple(make_cfg().eval.plots)


def _vbench(tmp_path: Path, run_dir: Path, *overrides: str, env: dict | None = None):
    return vbench("-m", "vbench", "debug=smoke", "trainer.epochs=2", f"hydra.run.dir={run_dir}",
                  *overrides, program=sys.executable, cwd=tmp_path, env=env, timeout=None)


def _until(condition, what: str, limit_s: float = 120):
    """Wait for an event another process causes (no sleep stands in for it)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def test_the_command_returns_before_the_figures_whose_drawer_holds_the_lock(tmp_path):
    run_dir = tmp_path / "run"
    done = _vbench(tmp_path, run_dir, "eval.background_plots=true",
                   env={"VBENCH_PAUSE_AT": "figures"})
    assert done.returncode == 0, done.stderr
    # The command is back; its drawer waits at the pause point, every number already written.
    _until(lambda: "paused at figures" in (run_dir / "vbench.log").read_text(), "drawer paused")
    assert '"status": "completed"' in (run_dir / "metrics.json").read_text()
    assert not list((run_dir / "plots").glob("*.png"))
    assert (run_dir / "plots" / SPEC).is_file() and (run_dir / "plots" / ARRAYS).is_file()
    drawer, word = (run_dir / ".lock").read_text().split()
    assert word == "figures"

    # A writer that comes next (vbench-eval, a rerun) waits for the drawer instead of stopping.
    entered = threading.Event()

    def next_writer():
        with exclusive(run_dir):
            entered.set()

    writer = threading.Thread(target=next_writer)
    writer.start()
    assert not entered.wait(1.0)  # the drawer is paused for good: nothing can let it in
    os.kill(int(drawer), signal.SIGTERM)
    writer.join(60)
    assert entered.is_set()

    # Killed with its job (SLURM, a container): the next vbench there draws what it left.
    again = _vbench(tmp_path, run_dir, "eval.background_plots=true")
    assert again.returncode == 0 and "already finished" in again.stdout
    assert "drawing the figures a stopped drawer left" in again.stderr
    for name in DEFAULT_PLOTS:
        assert png_ok(run_dir / "plots" / f"{name}.png")
    assert not (run_dir / "plots" / SPEC).exists()


def test_figures_drawn_in_the_background_match_those_drawn_inline(tmp_path):
    background, inline = tmp_path / "background", tmp_path / "inline"
    assert _vbench(tmp_path, background, "eval.background_plots=true").returncode == 0
    assert _vbench(tmp_path, inline, "eval.background_plots=false").returncode == 0
    wait_for_figures(background)
    for name in DEFAULT_PLOTS:
        drawn = background / "plots" / f"{name}.png"
        assert png_ok(drawn)
        assert drawn.read_bytes() == (inline / "plots" / f"{name}.png").read_bytes()
    assert sorted(p.name for p in (background / "plots").iterdir()) == sorted(
        f"{name}.png" for name in DEFAULT_PLOTS)  # the calls' data is gone


def test_off_a_terminal_the_figures_are_drawn_before_the_command_returns(tmp_path):
    """eval.background_plots=auto (the default): a script, CI or a SLURM job reads plots/ as
    soon as vbench returns, and no drawer outlives a job whose end kills it."""
    run_dir = tmp_path / "run"
    assert _vbench(tmp_path, run_dir).returncode == 0  # output captured: not a terminal
    assert all(png_ok(run_dir / "plots" / f"{name}.png") for name in DEFAULT_PLOTS)
    assert not (run_dir / "plots" / SPEC).exists()
    assert "figures" not in (run_dir / ".lock").read_text()


def test_a_console_command_ends_after_its_threads_and_atexit_handlers(tmp_path):
    """console_command skips Python's teardown, not what the exit owes: a non-daemon thread
    finishes, atexit handlers run, output is flushed, and the exit code is main's."""
    script = f"""
import atexit, pathlib, sys, threading, time
from vbench.core.process import console_command
out = pathlib.Path({str(tmp_path)!r})
def late():
    time.sleep(0.3)
    (out / "thread").write_text("done")
def main():
    threading.Thread(target=late).start()
    atexit.register(lambda: (out / "atexit").write_text("ran"))
    sys.stdout.write("no newline, still flushed")
    return 3
console_command(main)()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 3
    assert done.stdout == "no newline, still flushed"
    assert (tmp_path / "thread").read_text() == "done"
    assert (tmp_path / "atexit").read_text() == "ran"
    exits_with_a_message = ("import sys\nfrom vbench.core.process import console_command\n"
                            "console_command(lambda: sys.exit('bad input'))()")
    message = subprocess.run([sys.executable, "-c", exits_with_a_message], capture_output=True,
                             text=True, check=False)
    assert (message.returncode, message.stderr) == (1, "bad input\n")
