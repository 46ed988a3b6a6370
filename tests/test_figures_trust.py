"""A run's figures under a hostile folder (issue 26 item 1): the drawer vbench starts imports
nothing from the current folder or the starting script's folder. Every test starts the
installed `vbench` (or a script that imports vbench) as a user would."""

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conftest import make_cfg, png_ok
from vbench.core.rundir import wait_for_figures
from vbench.reports.figures import SPEC

VBENCH = Path(sys.executable).with_name("vbench")
SRC = Path(__file__).resolve().parents[1] / "src"
DEFAULT_PLOTS = tuple(make_cfg().eval.plots)
SMOKE = ("debug=smoke", "trainer.epochs=2", "eval.background_plots=true")
# A module that says it was imported: in a folder vbench must not import from.
MARKER_MODULE = "open({marker!r}, 'a').write(__file__ + '\\n')\n"


def vbench(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([str(VBENCH), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def _until(condition, what: str, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _no_traceback(done: subprocess.CompletedProcess, run: Path) -> None:
    for text in (done.stdout, done.stderr, (run / "vbench.log").read_text()):
        assert "Traceback" not in text, text


def _warnings(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("vbench: warning:")]


# Item 1: nothing vbench starts imports from the current folder.

def test_the_drawer_imports_nothing_from_the_current_folder(tmp_path):
    """Hostile case: json.py, numpy.py and matplotlib.py in the folder `vbench` starts in."""
    marker = tmp_path / "imported"
    for name in ("json", "numpy", "matplotlib"):
        (tmp_path / f"{name}.py").write_text(MARKER_MODULE.format(marker=str(marker)))
    run = tmp_path / "run"
    done = vbench(*SMOKE, f"hydra.run.dir={run}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    wait_for_figures(run)
    assert not marker.exists(), marker.read_text()
    for name in DEFAULT_PLOTS:
        assert png_ok(run / "plots" / f"{name}.png"), (run / "vbench.log").read_text()
    assert not (run / "plots" / SPEC).exists()


def test_a_script_s_run_draws_with_its_own_vbench_and_not_from_its_folder(tmp_path):
    """A script that put a checkout on sys.path: the drawer imports that vbench (not the
    installed one), and neither the script's folder nor the current folder. Hostile case:
    matplotlib.py, which only the drawer imports, in both folders."""
    checkout = tmp_path / "checkout"
    shutil.copytree(SRC / "vbench", checkout / "vbench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    imports = tmp_path / "imports"  # one line per process that imported the checkout's vbench
    with open(checkout / "vbench" / "__init__.py", "a") as init:
        init.write(f"\nimport os as _os\nwith open({str(imports)!r}, 'a') as _f:\n"
                   "    _f.write(f'{_os.getpid()} {__file__}\\n')\n")
    scripts, marker = tmp_path / "scripts", tmp_path / "imported"
    scripts.mkdir()
    for folder in (scripts, tmp_path):
        (folder / "matplotlib.py").write_text(MARKER_MODULE.format(marker=str(marker)))
    run = tmp_path / "run"
    (scripts / "train.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(checkout)!r})
        from vbench.commands.cli import command
        sys.argv = ["vbench", *{list(SMOKE)!r}, "hydra.run.dir={run}"]
        command()
        """))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}
    done = subprocess.run([sys.executable, str(scripts / "train.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    wait_for_figures(run)
    for name in DEFAULT_PLOTS:
        assert png_ok(run / "plots" / f"{name}.png"), (run / "vbench.log").read_text()
    assert not marker.exists(), marker.read_text()
    pids = {line.split()[0] for line in imports.read_text().splitlines()}
    assert len(pids) == 2  # the script's process and the drawer both imported the checkout
