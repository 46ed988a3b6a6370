"""The runs a report shows, collected once for the leaderboard (terminal, summary.md/csv) and
report.html alike: finding run directories, reading each, labelling, sorting and grouping.

Reads only the files a run leaves (metrics.json, history.csv, .hydra/overrides.yaml), so it
works on finished, failed and half-written sweeps alike. No torch import: the report must
answer at once.
"""

import csv
import json
import math
import os
import statistics
from pathlib import Path

from .columns import METRICS

# Statuses that mean the job did not produce a trustworthy result.
BAD_STATUSES = ("failed", "interrupted", "missing")
# The rule of vbench: the validation split picks, the test split only reports.
DEFAULT_SORT = "best_val_acc"
SEED_KEY = "trainer.seed="


def collect_runs(paths: list[Path]) -> tuple[list[dict], Path]:
    """One row per run under `paths`, in directory order, each with its "label" and "dir";
    and the common parent of the run directories, which the rows' "run" is relative to (the
    sweep directory for one sweep)."""
    runs = find_runs(paths)
    if not runs:
        where = ", ".join(map(str, paths))
        raise FileNotFoundError(f"no run directories (with metrics.json or .hydra/) under: {where}")
    root = Path(os.path.commonpath([run.parent for run in runs]))
    rows = [read_run(run, root) for run in runs]
    for row, label, run in zip(rows, short_labels([r["overrides"] for r in rows]), runs):
        row["label"] = row["name"] or label or row["run"]  # run.name, when the user gave one
        row["dir"] = run
    return rows, root


# ----------------------------------------------------------------------------------------------
# Reading run directories


def find_runs(paths: list[Path]) -> list[Path]:
    """Every run directory at or under `paths`: one holding metrics.json or a .hydra/ folder
    (a job that started but never wrote metrics.json is still a run: status "missing")."""
    runs = set()
    for path in map(Path, paths):
        if _is_run(path):
            runs.add(path.resolve())
            continue
        for marker in (*path.rglob("metrics.json"), *path.rglob(".hydra")):
            if _is_run(marker.parent):
                runs.add(marker.parent.resolve())
    return sorted(runs, key=_natural_key)


def _is_run(path: Path) -> bool:
    return (path / "metrics.json").is_file() or (path / ".hydra").is_dir()


def _natural_key(path: Path):
    # Sweep jobs are named 0_..., 1_..., 10_...: sort them by number, not as text.
    head = path.name.split("_", 1)[0]
    return (str(path.parent), int(head) if head.isdigit() else math.inf, path.name)


def read_run(run_dir: Path, root: Path) -> dict:
    """One summary row. Fields a failed or missing run lacks are None."""
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    overrides = _overrides(run_dir)
    best = metrics.get("best") or {}
    final = metrics.get("final") or {}
    params = metrics.get("params") or {}
    row = {
        "run": os.path.relpath(run_dir, root),
        "name": metrics.get("name"),
        "tags": " ".join(metrics.get("tags") or []),
        "overrides": " ".join(overrides),
        "status": metrics.get("status", "missing"),
        "dataset": metrics.get("dataset"),
        "model": metrics.get("model"),
        "seed": metrics.get("seed"),
        "epochs_run": metrics.get("epochs_run"),
        "best_epoch": metrics.get("best_epoch"),
        "best_val_acc": _get(best, "val", "accuracy"),
        "best_test_acc": _get(best, "test", "accuracy"),
        "final_test_acc": _get(final, "test", "accuracy"),
        "macro_f1": _get(best, "test", "macro_f1"),
        "params": params.get("total"),
        "trainable_params": params.get("trainable"),
        "train_time_s": metrics.get("train_time_s"),
        "inference_ms": metrics.get("inference_ms_per_image"),
        # Jobs that differ only in trainer.seed are repeats of one configuration.
        "group": (" ".join(o for o in overrides if not o.startswith(SEED_KEY)) or "(defaults)")
                 if (run_dir / ".hydra").is_dir() else os.path.relpath(run_dir, root),
        "error": metrics.get("error"),
    }
    for name, values in (metrics.get("extra") or {}).items():
        row[f"extra_{name}_acc"] = values["accuracy"]
    return row


def short_labels(texts: list[str]) -> list[str]:
    """Each space-separated list of overrides without the ones every text shares
    (`debug=smoke` in every job of a sweep tells nothing apart)."""
    tokens = [text.split() for text in texts]
    common = set.intersection(*map(set, tokens)) if tokens else set()
    return [" ".join(t for t in toks if t not in common) or text
            for text, toks in zip(texts, tokens)]


def _overrides(run_dir: Path) -> list[str]:
    path = run_dir / ".hydra/overrides.yaml"
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path)]


def _get(d: dict, *keys):
    for key in keys:
        d = d.get(key) if isinstance(d, dict) else None
    return d


def read_history(run_dir: Path) -> list[dict]:
    path = run_dir / "history.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


# ----------------------------------------------------------------------------------------------
# Ranking and seed groups


def sort_rows(rows: list[dict], metric: str = DEFAULT_SORT) -> list[dict]:
    """Best first by `metric`; runs without a result (failed, interrupted, missing) after
    every finished one, then rows without a value. Works for runs and for seed groups alike."""
    sign = -1 if METRICS[metric] else 1
    return sorted(rows, key=lambda r: (r.get("status") in BAD_STATUSES, r[metric] is None,
                                       sign * (r[metric] or 0)))


def group_rows(rows: list[dict]) -> list[dict]:
    """One row per group: mean and sample standard deviation (ddof=1, i.e. the spread of
    repeated seeds, not of the population) of each metric over the runs that have a value."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    out = []
    for name, members in groups.items():
        statuses: dict[str, int] = {}
        for m in members:
            statuses[m["status"]] = statuses.get(m["status"], 0) + 1
        summary = {"group": name, "runs": len(members),
                   "statuses": ", ".join(f"{n} {s}" for s, n in statuses.items())}
        for metric in METRICS:
            values = [m[metric] for m in members if m[metric] is not None]
            summary[metric] = statistics.fmean(values) if values else None
            summary[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else None
            summary[f"{metric}_n"] = len(values)
        out.append(summary)
    for summary, label in zip(out, short_labels([g["group"] for g in out])):
        summary["label"] = label
    return out
