"""A run's figures under a hostile folder (issue 26 items 1, 2 and 4): the drawer vbench starts
imports nothing from the current folder or the starting script's folder; figure calls left in
plots/ write nowhere but plots/; a plots/ that cannot be written, or left-over figure data that
vbench did not write, is one line and never fails the run. Every test starts the installed
`vbench` (or a script that imports vbench) as a user would.

Hostile cases, 30 in all (2 skipped as root, whom a read-only folder does not stop): modules
in the current folder (1) and in the starting script's folder (1); left-over output paths that
leave plots/ (5: absolute, `..`, a run record, a symlinked folder, plots/ a symlink); a plots/
that cannot be written or leads outside, drawn at once and in the background (6: a regular
file, a read-only folder, a symlink out); a PNG that cannot be written (1); left-over figure
data vbench did not write (16: 15 refused whole, 1 that fails as it is drawn)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import make_cfg, png_ok
from vbench.core.rundir import wait_for_figures
from vbench.reports.figures import ARRAYS, SPEC

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


# Item 2: figure calls left in plots/ write nowhere else.

@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Path:
    """A finished run whose drawer was killed before it drew anything: plots/ holds the
    figure calls' data exactly as vbench wrote it."""
    base = tmp_path_factory.mktemp("stopped")
    run = base / "run"
    done = vbench(*SMOKE, f"hydra.run.dir={run}", cwd=base, env={"VBENCH_PAUSE_AT": "figures"})
    assert done.returncode == 0, done.stderr
    _until(lambda: "paused at figures" in (run / "vbench.log").read_text(), "drawer paused")
    os.kill(int((run / ".lock").read_text().split()[0]), signal.SIGKILL)
    wait_for_figures(run)
    assert (run / "plots" / SPEC).is_file() and not list((run / "plots").glob("*.png"))
    return run


def _left_over(stopped: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(stopped, run, symlinks=True)
    return run


def _rerun(run: Path, cwd: Path) -> subprocess.CompletedProcess:
    """The next `vbench` into `run`, which draws what a stopped drawer left."""
    done = vbench(*SMOKE, f"hydra.run.dir={run}", cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert "already finished (completed)" in done.stdout
    _no_traceback(done, run)
    return done


def _with_paths(spec: list, path) -> list:
    """`spec` with every output path replaced by `path(old)`."""
    def swap(value):
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, dict) and "path" in value:
            return {"path": path(value["path"])}
        if isinstance(value, dict) and "dict" in value:
            return {"dict": {k: swap(v) for k, v in value["dict"].items()}}
        return value
    return swap(spec)


ESCAPES = {
    "absolute": lambda run, outside: str(outside / "{name}"),
    "dot-dot": lambda run, outside: "plots/../../outside/{name}",
    "a record of the run": lambda run, outside: "metrics.json",
    "a symlinked folder": lambda run, outside: "plots/elsewhere/{name}",
    "plots/ a symlink": lambda run, outside: "plots/{name}",
}


@pytest.mark.parametrize("escape", ESCAPES)
def test_left_over_figures_are_never_drawn_outside_plots(stopped, tmp_path, escape):
    run = _left_over(stopped, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "curves.png"
    victim.write_bytes(b"someone else's file")
    plots = run / "plots"
    if escape == "a symlinked folder":
        (plots / "elsewhere").symlink_to(outside)
    if escape == "plots/ a symlink":  # the calls themselves lie outside, in `outside`
        for item in plots.iterdir():
            item.rename(outside / item.name)
        plots.rmdir()
        plots.symlink_to(outside)
    where = ESCAPES[escape](run, outside)
    spec = json.loads((plots / SPEC).read_text())
    spec = _with_paths(spec, lambda old: where.format(name=Path(old).name))
    (plots / SPEC).write_text(json.dumps(spec))
    metrics = (run / "metrics.json").read_bytes()

    done = _rerun(run, tmp_path)
    assert victim.read_bytes() == b"someone else's file"
    assert sorted(p.name for p in outside.iterdir() if not p.name.startswith(".")) == \
        ["curves.png"]
    assert (run / "metrics.json").read_bytes() == metrics
    assert not list(run.rglob("*.png"))  # a file with one bad call is not drawn at all
    assert len(done.stderr.splitlines()) == 1, done.stderr
    [line] = _warnings(done)
    assert str(plots / SPEC) in line
    assert line in (run / "vbench.log").read_text()


# Item 4: figures that cannot be written, or left-over data vbench did not write.

def _unwritable_plots(run: Path, how: str) -> None:
    run.mkdir()
    if how == "a regular file":  # what stops root as well as any user
        (run / "plots").write_text("not a folder")
    elif how == "a read-only folder":
        (run / "plots").mkdir(mode=0o555)
    else:  # a symlink left in the run directory: writable, but outside the run
        (run.parent / "outside").mkdir()
        (run / "plots").symlink_to(run.parent / "outside")


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("how", ["a regular file", "a read-only folder", "a symlink out"])
def test_a_plots_folder_that_cannot_be_written_leaves_the_training_s_results(
        tmp_path, how, background):
    if how == "a read-only folder" and os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder")
    run = tmp_path / "run"
    _unwritable_plots(run, how)
    done = vbench(*SMOKE[:-1], f"eval.background_plots={str(background).lower()}",
                  f"hydra.run.dir={run}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    wait_for_figures(run)
    _no_traceback(done, run)
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    [line] = _warnings(done)
    assert "figures not drawn" in line and str(run / "plots") in line
    assert line in (run / "vbench.log").read_text()
    if how == "a symlink out":
        assert not list((tmp_path / "outside").iterdir())


def test_a_png_that_cannot_be_written_spares_the_others(tmp_path):
    """Hostile case: plots/curves.png is a folder."""
    run = tmp_path / "run"
    (run / "plots" / "curves.png").mkdir(parents=True)
    done = vbench(*SMOKE[:-1], "eval.background_plots=false", f"hydra.run.dir={run}",
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    _no_traceback(done, run)
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    [line] = _warnings(done)
    assert "curves.png" in line and "gap.png" not in line
    for name in DEFAULT_PLOTS:
        if name != "curves":
            assert png_ok(run / "plots" / f"{name}.png")


def _object_npz(path: Path) -> None:
    np.savez(path, a0=np.array([{"runs": "code"}], dtype=object))  # a pickle inside


# Left-over data vbench did not write: (what to do to plots/, the file the line names).
MALFORMED = {
    "not a list": (lambda p: (p / SPEC).write_text('{"plot_curves": []}'), SPEC),
    "not JSON": (lambda p: (p / SPEC).write_bytes(b"\xff\xfe[not json"), SPEC),
    "nested too deep": (lambda p: (p / SPEC).write_text("[" * 100_000), SPEC),
    "an entry that is not a pair": (lambda p: (p / SPEC).write_text('[["plot_curves"]]'), SPEC),
    "arguments not a list": (lambda p: (p / SPEC).write_text('[["plot_curves", "x"]]'), SPEC),
    "an unknown figure": (lambda p: _swap_name(p, "plot_nothing"), SPEC),
    "a private function": (lambda p: _swap_name(p, "_save"), SPEC),
    "a helper, not a figure": (lambda p: _swap_name(p, "significant"), SPEC),
    "a module of plots.py": (lambda p: _swap_name(p, "np"), SPEC),
    "too few arguments": (lambda p: (p / SPEC).write_text('[["plot_curves", []]]'), SPEC),
    "an unknown array": (lambda p: (p / SPEC).write_text(
        '[["plot_confusion", [{"array": "nope"}, {"array": "nope"}, [], "t", '
        '{"path": "plots/confusion.png"}]]]'), SPEC),
    "a wrapper of the wrong shape": (lambda p: (p / SPEC).write_text(
        '[["plot_per_class", [{"dict": 5}, "t", {"path": "plots/per_class.png"}]]]'), SPEC),
    "arrays missing": (lambda p: (p / ARRAYS).unlink(), ARRAYS),
    "arrays corrupt": (lambda p: (p / ARRAYS).write_bytes(os.urandom(4096)), ARRAYS),
    "arrays holding a pickle": (lambda p: _object_npz(p / ARRAYS), ARRAYS),
}


def _swap_name(plots: Path, name: str) -> None:
    spec = json.loads((plots / SPEC).read_text())
    spec[0][0] = name
    (plots / SPEC).write_text(json.dumps(spec))


@pytest.mark.parametrize("case", MALFORMED)
def test_left_over_figure_data_vbench_did_not_write_is_one_line(stopped, tmp_path, case):
    run = _left_over(stopped, tmp_path)
    spoil, named = MALFORMED[case]
    spoil(run / "plots")
    metrics = (run / "metrics.json").read_bytes()
    done = _rerun(run, tmp_path)
    assert len(done.stderr.splitlines()) == 1, done.stderr
    [line] = _warnings(done)
    assert str(run / "plots" / named) in line
    assert line in (run / "vbench.log").read_text()  # whole, its [brackets] too
    assert (run / "metrics.json").read_bytes() == metrics
    assert not list(run.rglob("*.png"))


def test_arguments_a_figure_cannot_draw_are_one_line_and_spare_the_others(stopped, tmp_path):
    """Hostile case: the right number of arguments, of the wrong kind."""
    run = _left_over(stopped, tmp_path)
    spec = json.loads((run / "plots" / SPEC).read_text())
    curves = next(call for call in spec if call[0] == "plot_curves")
    curves[1][0] = 5  # a history that is a number
    (run / "plots" / SPEC).write_text(json.dumps(spec))
    done = _rerun(run, tmp_path)
    [line] = _warnings(done)
    assert "curves.png" in line and str(run / "plots" / SPEC) in line
    for name in DEFAULT_PLOTS:
        if name != "curves":
            assert png_ok(run / "plots" / f"{name}.png")
