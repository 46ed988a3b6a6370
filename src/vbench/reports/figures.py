"""A run's figures as a list of drawing calls, drawn at once or by a detached process.

Drawing the default figures costs about 0.8 s of a 2-core CPU (matplotlib's import and four
PNGs), which the user would wait for after the run's numbers are on disk and on screen. With
eval.background_plots (the default) the run writes the calls' arguments into plots/
(`.figures.json`, arrays in `.figures.npz`: data only, read back without pickle), writes
metrics.json, and starts `python -I -c ...` (_DRAWER), which draws them. That process inherits
the run directory's lock (core/rundir.py) and holds it until every figure is on disk, so a tool
that reads or writes the run directory next waits for it.
"""

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np

from ..core import files
from ..core.pause import pause_at
from ..core.rundir import DRAWING, mark_holder
from . import plots

SPEC = ".figures.json"  # in plots/: the calls; their arrays in .figures.npz
ARRAYS = ".figures.npz"
# The drawer. `-I` keeps the current folder, the script's folder and PYTHONPATH off sys.path (a
# json.py where the user stands must not run; `-P` is 3.11+); argv[3:] is the import path of
# the run that started it (_import_path). argv[2], the lock it holds, is closed as it ends.
_DRAWER = ("import sys; sys.path[:] = sys.argv[3:]; "
           "from vbench.reports.figures import draw_pending; draw_pending(sys.argv[1])")


class Figures:
    """Calls of plots.py functions, each given its output path and arguments (numpy arrays,
    JSON values, paths in the run directory)."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.calls: list[tuple[str, list]] = []

    def add(self, plot: str, *args) -> None:
        getattr(plots, plot)  # a typo fails in the run, not in the drawer
        self.calls.append((plot, list(args)))

    def draw(self) -> None:
        for plot, args in self.calls:
            getattr(plots, plot)(*args)

    def draw_detached(self, lock_fd: int) -> None:
        """Write the calls into plots/ and start the process that draws them; it holds the
        run directory's lock (`lock_fd`, inherited) until it is done."""
        if not self.calls:
            return
        arrays: dict[str, np.ndarray] = {}
        spec = [[plot, _encode(args, arrays, self.run_dir)] for plot, args in self.calls]
        out = self.run_dir / "plots"
        out.mkdir(parents=True, exist_ok=True)
        np.savez(out / ARRAYS, **arrays)
        files.write_text(out / SPEC, json.dumps(spec))  # last, atomically: the calls are whole
        with open(self.run_dir / "vbench.log", "ab") as log:  # the drawer's errors go there
            drawer = subprocess.Popen(
                [sys.executable, "-I", "-c", _DRAWER, str(self.run_dir), str(lock_fd),
                 *_import_path()],
                pass_fds=(lock_fd,), start_new_session=True, stdin=subprocess.DEVNULL,
                stdout=log, stderr=log,
                env={**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
        mark_holder(lock_fd, DRAWING, pid=drawer.pid)  # others wait for it instead of stopping


def _import_path() -> list[str]:
    """The drawer's sys.path: this process's, which found this vbench and what it imports (a
    checkout a script put first, PYTHONPATH, the user's site-packages), less the current
    folder and the starting script's folder; this vbench's folder first when it is missing."""
    import vbench

    root = Path(vbench.__file__).resolve().parents[1]
    unsafe = {Path.cwd().resolve()}
    script = getattr(sys.modules.get("__main__"), "__file__", None)  # not sys.argv[0]: a
    if script:  # script may set sys.argv for Hydra; `-c` and a notebook have none
        unsafe.add(Path(script).resolve().parent)
    paths = [os.path.abspath(p) for p in sys.path if p and Path(p).resolve() not in unsafe]
    if root not in {Path(p).resolve() for p in paths}:
        paths.insert(0, str(root))
    return list(dict.fromkeys(paths))


def _encode(value, arrays: dict, run_dir: Path):
    """JSON for `value`: arrays become {"array": key} (stored in `arrays`), paths
    {"path": relative to the run dir}."""
    if isinstance(value, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"array": key}
    if isinstance(value, Path):
        return {"path": str(value.relative_to(run_dir))}
    if isinstance(value, dict):
        return {"dict": {k: _encode(v, arrays, run_dir) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return [_encode(v, arrays, run_dir) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode(value, arrays, run_dir: Path):
    if isinstance(value, list):
        return [_decode(v, arrays, run_dir) for v in value]
    if isinstance(value, dict):
        if "array" in value:
            return arrays[value["array"]]
        if "path" in value:
            return run_dir / value["path"]
        return {k: _decode(v, arrays, run_dir) for k, v in value["dict"].items()}
    return value


def draw_pending(run_dir: Path) -> None:
    """Draw the figures a run left in plots/, then remove their arguments. Each figure on its
    own: one that fails is reported in vbench.log and the others are still drawn."""
    pause_at("figures")
    out = Path(run_dir) / "plots"
    spec = json.loads((out / SPEC).read_text())
    with np.load(out / ARRAYS, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    for plot, args in spec:
        try:
            getattr(plots, plot)(*_decode(args, arrays, Path(run_dir)))
        except Exception:  # noqa: BLE001 - one figure's failure spares the others
            print(f"vbench: figure {plot} could not be drawn:\n{traceback.format_exc()}",
                  file=sys.stderr, flush=True)
    (out / SPEC).unlink()
    (out / ARRAYS).unlink()


def draw_left_over(run_dir: Path) -> None:
    """Draw the figures a drawer that was killed (with its SLURM job, its container) left in
    plots/; the caller holds the run directory's lock, so no drawer runs now."""
    if not (Path(run_dir) / "plots" / SPEC).is_file():
        return
    print(f"vbench: drawing the figures a stopped drawer left in {run_dir}/plots",
          file=sys.stderr, flush=True)
    try:
        draw_pending(Path(run_dir))
    except (OSError, ValueError, KeyError) as e:  # unreadable: the run's numbers still stand
        print(f"vbench: could not read them ({e}); rerun with trainer.resume=false to draw "
              "them again", file=sys.stderr, flush=True)
