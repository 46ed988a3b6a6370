"""Continue an unfinished run directory from checkpoints/last.pt; leave a finished one alone.

Re-running a sweep into its own directory (`hydra.sweep.dir=...`) therefore finishes only
the jobs that did not finish, and `hydra.run.dir=<dir> trainer.resume=true` continues a run.
"""

import json
from pathlib import Path

from ..core import files
from ..core.errors import VBenchError
from ..core.rundir import METRICS_FILE
from ..core.status import FINISHED
from .checkpoint import check_format, path_of


def finished_metrics(resume, fingerprint: dict, run_dir: Path) -> dict | None:
    """The metrics of a finished run in `run_dir`, unless trainer.resume (`resume`) = false asks
    to redo it; one of another config (`fingerprint`: checkpoint.config_fingerprint) is refused."""
    path = Path(run_dir) / METRICS_FILE
    if resume is False or not path.exists():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # written atomically, so unreadable means foreign: train anew
    if metrics.get("status") not in FINISHED:
        return None
    differences = _differences(metrics.get("config") or {}, fingerprint)
    if differences:
        raise VBenchError(f"{run_dir} holds a finished run of another config (differs in "
                          f"{', '.join(differences[:5])}); use another run directory, or "
                          "trainer.resume=false to train this config there instead")
    return metrics


def resume_state(mode, fingerprint: dict, run_dir: Path) -> dict | None:
    """last.pt of an unfinished run of the same config (`fingerprint`), or None to start at
    epoch 1; `mode` is trainer.resume."""
    last = path_of(run_dir, "final")
    if mode is False:
        return None
    if not last.exists():
        if mode is True:
            raise VBenchError(f"trainer.resume=true but {last} does not exist: the run did not "
                              "finish an epoch there; use trainer.resume=auto to start it anew")
        return None
    state = files.load_torch(last)
    check_format(state, last)
    differences = _differences(state.get("config", {}), fingerprint)
    if differences:
        raise VBenchError(f"{last} belongs to a run with another config (differs in "
                          f"{', '.join(differences)}); use another run directory, or "
                          "trainer.resume=false to start over there")
    return state


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys
