"""The runs a report shows, collected once for the leaderboard (terminal, summary.md/csv) and
report.html alike: finding run directories, reading each, labelling, sorting and grouping.

Reads only the files a run leaves (metrics.json, history.csv, .hydra/overrides.yaml), so it
works on finished, failed and half-written sweeps alike. A run whose files cannot be read
(a truncated metrics.json, one with values of the wrong type, a broken overrides.yaml) is
skipped, with why, and the others are reported. No torch import: the report must answer at
once.
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


class UnreadableRun(Exception):
    """A run directory whose files do not hold what vbench writes: the message says which file
    and what is wrong, in one line."""


def collect_runs(paths: list[Path], skipped: list[tuple[Path, str]] | None = None
                 ) -> tuple[list[dict], Path]:
    """One row per run under `paths`, in directory order, each with its "label" and "dir";
    and the common parent of the run directories, which the rows' "run" is relative to (the
    sweep directory for one sweep). Unreadable runs are left out; each is appended to
    `skipped` as (run directory, why). FileNotFoundError when no run is there, or none can be
    read."""
    runs = find_runs(paths)
    where = ", ".join(map(str, paths))
    if not runs:
        raise FileNotFoundError(f"no run directories (with metrics.json or .hydra/) under: {where}")
    # All the runs found, readable or not, name the folder: where the summary goes does not
    # depend on which runs can be read.
    root = Path(os.path.commonpath([run.parent for run in runs]))
    rows = []
    for run in runs:
        try:
            rows.append(read_run(run, root))
        except UnreadableRun as e:
            if skipped is not None:
                skipped.append((run, str(e)))
    if not rows:
        raise FileNotFoundError(f"none of the {len(runs)} run directories under {where} can be "
                                "read; fix or remove their metrics.json")
    for row, label in zip(rows, short_labels([r["overrides"] for r in rows])):
        row["label"] = row["name"] or label or row["run"]  # run.name, when the user gave one
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
    """One summary row. Fields a failed or missing run lacks are None. UnreadableRun when
    metrics.json or .hydra/overrides.yaml is damaged or holds values of the wrong type."""
    metrics_path = run_dir / "metrics.json"
    metrics = _read_metrics(metrics_path) if metrics_path.is_file() else {}
    overrides = _overrides(run_dir)
    m = _Fields(metrics, metrics_path)
    row = {
        "run": os.path.relpath(run_dir, root),
        "dir": run_dir,
        "name": m.text("name"),
        "tags": " ".join(m.texts("tags")),
        "overrides": " ".join(overrides),
        "status": m.text("status") or "missing",
        "dataset": m.text("dataset"),
        "model": m.text("model"),
        "seed": m.number("seed"),
        "epochs_run": m.number("epochs_run"),
        "best_epoch": m.number("best_epoch"),
        "best_val_acc": m.number("best", "val", "accuracy"),
        "best_test_acc": m.number("best", "test", "accuracy"),
        "final_test_acc": m.number("final", "test", "accuracy"),
        "macro_f1": m.number("best", "test", "macro_f1"),
        "params": m.number("params", "total"),
        "trainable_params": m.number("params", "trainable"),
        "train_time_s": m.number("train_time_s"),
        "inference_ms": m.number("inference_ms_per_image"),
        # Jobs that differ only in trainer.seed are repeats of one configuration.
        "group": (" ".join(o for o in overrides if not o.startswith(SEED_KEY)) or "(defaults)")
                 if (run_dir / ".hydra").is_dir() else os.path.relpath(run_dir, root),
        "error": m.text("error"),
    }
    for name in m.node("extra") or {}:
        row[f"extra_{name}_acc"] = m.number("extra", name, "accuracy")
    return row


def _read_metrics(path: Path) -> dict:
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UnreadableRun(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column "
                            f"{e.colno}): the file is cut off or damaged") from None
    except UnicodeDecodeError:
        raise UnreadableRun(f"{path}: not a text file") from None
    except OSError as e:
        raise UnreadableRun(f"{path}: cannot read it: {e.strerror or e}") from None
    if not isinstance(metrics, dict):
        raise UnreadableRun(f"{path}: holds a JSON {type(metrics).__name__}, not an object")
    return metrics


class _Fields:
    """Typed reads of metrics.json: a missing or null field is None; a field of another type
    than vbench writes makes the run unreadable, naming the field."""

    def __init__(self, metrics: dict, path: Path):
        self.metrics, self.path = metrics, path

    def _get(self, keys: tuple[str, ...]):
        value = self.metrics
        for depth, key in enumerate(keys):
            if value is None:
                return None
            if not isinstance(value, dict):
                self._wrong(keys[:depth], value, "an object")
            value = value.get(key)
        return value

    def _wrong(self, keys, value, wanted: str):
        shown = json.dumps(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise UnreadableRun(f"{self.path}: {'.'.join(keys)} is {shown}, not {wanted}")

    def node(self, *keys: str) -> dict | None:
        value = self._get(keys)
        if value is not None and not isinstance(value, dict):
            self._wrong(keys, value, "an object")
        return value

    def number(self, *keys: str) -> float | int | None:
        value = self._get(keys)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            self._wrong(keys, value, "a number")
        return value

    def text(self, *keys: str) -> str | None:
        value = self._get(keys)
        if value is not None and not isinstance(value, str):
            self._wrong(keys, value, "a string")
        return value

    def texts(self, *keys: str) -> list[str]:
        value = self._get(keys)
        if value is not None and not (isinstance(value, list)
                                      and all(isinstance(v, str) for v in value)):
            self._wrong(keys, value, "a list of strings")
        return value or []


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
    import yaml

    try:
        overrides = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        why = getattr(e, "problem", None) or getattr(e, "strerror", None) or type(e).__name__
        raise UnreadableRun(f"{path}: cannot read it ({why})") from None
    if overrides is None:
        return []
    if not isinstance(overrides, list):
        raise UnreadableRun(f"{path}: holds no list of overrides")
    return [str(o) for o in overrides]


def read_history(run_dir: Path) -> list[dict]:
    """history.csv's rows as numbers, up to the first row that is not (a file cut off while
    a run was writing it); [] when it is missing or unreadable: it only draws curves."""
    path = run_dir / "history.csv"
    rows = []
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                rows.append({k: float(v) for k, v in row.items()})
    except (OSError, UnicodeDecodeError, csv.Error, TypeError, ValueError):
        pass  # TypeError: a short row (None) or a long one (a list under the key None)
    return rows


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
