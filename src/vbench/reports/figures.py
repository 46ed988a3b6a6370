"""A run's figures as a list of drawing calls, drawn at once or by a detached process.

Drawing the default figures costs about 0.8 s of a 2-core CPU (matplotlib's import and four
PNGs), which the user would wait for after the run's numbers are on disk and on screen. With
eval.background_plots (the default) the run writes the calls' arguments into plots/
(`.figures.json`, arrays in `.figures.npz`: data only, read back without pickle), writes
metrics.json, and starts `python -I -c ...` (_DRAWER), which draws them. That process inherits
the run directory's lock (core/rundir.py) and holds it until every figure is on disk, so a tool
that reads or writes the run directory next waits for it.

Figures are never worth a run: one that cannot be written (a read-only plots/, a full disk) is
a line naming it, and the training's results stand. The calls read back from plots/ are checked
before any is drawn, since a killed drawer leaves them for the next vbench in that directory,
which must not take someone else's file for its own: each must name a drawing of plots.py
(DRAWINGS), with arguments it takes, writing into plots/ only. Anything else is refused whole,
in one line naming the file.
"""

import contextlib
import inspect
import json
import os
import reprlib
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..core import files
from ..core.errors import VBenchError
from ..core.pause import pause_at
from ..core.rundir import DRAWING, LOG_FILE, PLOTS_DIR, inside, mark_holder
from ..core.stderr import say
from . import plots

SPEC = ".figures.json"  # in plots/: the calls; their arrays in .figures.npz
ARRAYS = ".figures.npz"
# What a call may name: the drawing functions of plots.py and nothing else it holds, so that a
# name read from plots/ never reaches _save, numpy or any other attribute.
DRAWINGS = frozenset(name for name, value in vars(plots).items()
                     if name.startswith("plot_") and inspect.isfunction(value)
                     and value.__module__ == plots.__name__)
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
        if plot not in DRAWINGS:  # a typo fails in the run, not in the drawer
            raise ValueError(f"{plot!r} is not a drawing of reports/plots.py")
        self.calls.append((plot, list(args)))

    def draw(self) -> None:
        """Draw them now; those that cannot be written are named in one line."""
        if not self.calls or _plots_outside(self.run_dir, self.calls):
            return
        unwritten = []
        for plot, args in self.calls:
            try:
                getattr(plots, plot)(*args)
            except OSError as e:  # the others may still be written (a PNG that is a folder)
                unwritten.append((args, e))
        if unwritten:
            _not_drawn([args for args, _ in unwritten], unwritten[0][1])

    def draw_detached(self, lock_fd: int) -> None:
        """Write the calls into plots/ and start the process that draws them; it holds the
        run directory's lock (`lock_fd`, inherited) until it is done."""
        if not self.calls or _plots_outside(self.run_dir, self.calls):
            return
        arrays: dict[str, np.ndarray] = {}
        spec = [[plot, _encode(args, arrays, self.run_dir)] for plot, args in self.calls]
        out = self.run_dir / PLOTS_DIR
        try:
            out.mkdir(parents=True, exist_ok=True)
            np.savez(out / ARRAYS, **arrays)
            files.write_text(out / SPEC, json.dumps(spec))  # last, atomically: the calls are whole
        except (OSError, VBenchError) as e:  # no figure could be written there either
            _not_drawn([args for _, args in self.calls], e)
            return
        with open(self.run_dir / LOG_FILE, "ab") as log:  # the drawer's errors go there
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


def _plots_outside(run_dir: Path, calls: list) -> bool:
    """Whether plots/ leads out of the run directory (a symlink someone left there): then no
    figure is written, and one line says so."""
    if inside(run_dir, run_dir / PLOTS_DIR) == Path(PLOTS_DIR):
        return False
    _not_drawn([args for _, args in calls], f"{run_dir / 'plots'} leads outside the run "
               "directory")
    return True


def _png(args: list) -> str:
    """The name of the file a call writes: its path argument's."""
    return next((a.name for a in args if isinstance(a, Path)), "?")


def _not_drawn(calls_args: list[list], why) -> None:
    _warn(f"figures not drawn: {', '.join(map(_png, calls_args))} ({_why(why)}); the "
          "training's results stand")


def _why(error) -> str:
    """An OSError as the OS says it, naming the path (a rename's target, not its temp file)."""
    if isinstance(error, OSError) and error.filename:
        return f"{error.strerror or error}: {error.filename2 or error.filename}"
    return str(error)


def _warn(text: str) -> None:
    """One line on stderr and in the run's vbench.log (the drawer's stderr is the log); printed
    whole, where the console's copy to the log would wrap it."""
    from rich.markup import escape

    from ..core.console import log

    say(f"vbench: warning: {text}")
    log(escape(f"vbench: warning: {text}"))  # a path's [brackets] are not markup


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


def _decode(value, arrays: dict, run_dir: Path):
    """What `_encode` made JSON of; a ValueError for anything it never writes."""
    if isinstance(value, list):
        return [_decode(v, arrays, run_dir) for v in value]
    if not isinstance(value, dict):
        return value
    kind, inner = next(iter(value.items())) if len(value) == 1 else (None, None)
    if kind == "array" and isinstance(inner, str) and inner in arrays:
        return arrays[inner]
    if kind == "path" and isinstance(inner, str):
        return _in_plots(run_dir, inner)
    if kind == "dict" and isinstance(inner, dict):
        return {k: _decode(v, arrays, run_dir) for k, v in inner.items()}
    raise ValueError(f"{reprlib.repr(value)} is not an array of {ARRAYS}, a path or a dict")


def _in_plots(run_dir: Path, relative: str) -> Path:
    """A figure's output path, which must lie in plots/ whatever it says (absolute, `..`, a
    symlink): nothing outside is written over, nor the run's own records beside plots/."""
    path = run_dir / relative
    where = inside(run_dir, path)
    if where is None or len(where.parts) < 2 or where.parts[0] != PLOTS_DIR:
        raise ValueError(f"{relative!r} is not a file in plots/")
    return path


def _read_calls(run_dir: Path) -> list[tuple[str, list]]:
    """The calls left in plots/, each checked before any is drawn; a ValueError names the
    file and what is wrong with it."""
    out = run_dir / PLOTS_DIR
    if inside(run_dir, out) != Path(PLOTS_DIR):
        raise ValueError(f"{out / SPEC}: plots/ leads outside the run directory")
    spec = _load(out / SPEC, lambda path: json.loads(path.read_text()), "JSON")
    arrays = _load(out / ARRAYS, _arrays, "an .npz of plain arrays")
    try:
        if not isinstance(spec, list):
            raise TypeError("it is not a list of figures")
        return [_call(entry, arrays, run_dir) for entry in spec]
    except (ValueError, TypeError, RecursionError) as e:
        raise ValueError(f"{out / SPEC}: {e}") from None


def _load(path: Path, read, what: str):
    try:
        return read(path)
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - a file vbench did not write fails in many ways
        # (a zip, an .npy, a pickle, JSON nested past the recursion limit); numpy's words for
        # a pickle advise allow_pickle, which would run its code: only the kind is said
        raise ValueError(f"{path}: not {what} ({type(e).__name__})") from None


def _arrays(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as stored:
        return {key: stored[key] for key in stored.files}


def _call(entry, arrays: dict, run_dir: Path) -> tuple[str, list]:
    if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], list)):
        raise ValueError(f"{reprlib.repr(entry)} is not [figure, [arguments]]")
    plot, args = entry
    if not isinstance(plot, str) or plot not in DRAWINGS:
        raise ValueError(f"{reprlib.repr(plot)} is not a drawing of reports/plots.py")
    args = _decode(args, arrays, run_dir)
    try:
        inspect.signature(getattr(plots, plot)).bind(*args)
    except TypeError as e:
        raise ValueError(f"{plot}: {e}") from None
    return plot, args


def _reason(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def draw_pending(run_dir: Path, left_over: bool = False) -> None:
    """Draw the figures a run left in plots/, then remove their arguments. Calls vbench did
    not write are one line and none is drawn; a figure that fails is one line in vbench.log
    and the others are still drawn."""
    pause_at("figures")
    run_dir, out = Path(run_dir), Path(run_dir) / PLOTS_DIR
    try:
        calls = _read_calls(run_dir)
    except ValueError as e:
        _warn(f"figures not drawn: {e}" + (f"; delete plots/{SPEC}, or train again with "
                                            "trainer.resume=false to draw them" if left_over
                                            else ""))
        return
    if left_over:
        say(f"vbench: drawing the figures a stopped drawer left in {run_dir}/plots")
    for plot, args in calls:
        try:
            getattr(plots, plot)(*args)
        except Exception as e:  # noqa: BLE001 - one figure's failure spares the others
            why = _why(e) if isinstance(e, OSError) else f"{out / SPEC}: {_reason(e)}"
            _warn(f"figure {_png(args)} not drawn ({why})")
    with contextlib.suppress(OSError):  # a read-only plots/: the next vbench tries again
        (out / SPEC).unlink()
        (out / ARRAYS).unlink()


def draw_left_over(run_dir: Path) -> None:
    """Draw the figures a drawer that was killed (with its SLURM job, its container) left in
    plots/; the caller holds the run directory's lock, so no drawer runs now."""
    if (Path(run_dir) / PLOTS_DIR / SPEC).is_file():
        draw_pending(Path(run_dir), left_over=True)
