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

from ..core.rundir import HISTORY_FILE, HYDRA_DIR, METRICS_FILE
from ..core.status import BAD as BAD_STATUSES
from ..core.status import MISSING, PARTIAL
from .table import ENSEMBLE_ERROR, ENSEMBLE_KEYS, ENSEMBLE_VAL_ACC, METRICS
from .verdicts import RANK, ci95, judge_groups, rank_runs, t_interval

# Statuses that mean the job did not produce a trustworthy result.
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
    # Runs of the same overrides (five `vbench trainer.epochs=3`) are told apart by directory.
    counts = {}
    for row in rows:
        counts[row["label"]] = counts.get(row["label"], 0) + 1
    for row in rows:
        if counts[row["label"]] > 1 and not row["name"]:
            row["label"] = row["run"]
    _seed_groups(rows)
    return rows, root


# ----------------------------------------------------------------------------------------------
# Reading run directories


def find_runs(paths: list[Path]) -> list[Path]:
    """Every run directory at or under `paths`. A run is a directory holding `.hydra/` (what
    Hydra writes before a job starts, so a job that never wrote metrics.json is still a run:
    status "missing"), or a run's metrics.json without it (one that names a `status`, or one
    that cannot be read: it is reported as skipped). What lies inside a run directory is the
    run's own (vbench-eval's `eval/<dataset>_<split>/metrics.json`, export/, trackers' folders),
    never another run."""
    found = set()
    for path in map(Path, paths):
        candidates = [path] if _is_run(path) else [
            marker.parent for marker in (*path.rglob(HYDRA_DIR), *path.rglob(METRICS_FILE))]
        found.update(c.resolve() for c in candidates if _is_run(c))
    hydra_runs = {run for run in found if (run / HYDRA_DIR).is_dir()}
    runs = [run for run in found if not any(parent in hydra_runs for parent in run.parents)]
    return sorted(runs, key=_natural_key)


def _is_run(path: Path) -> bool:
    if (path / HYDRA_DIR).is_dir():
        return True
    metrics = path / METRICS_FILE
    if not metrics.is_file():
        return False
    try:
        record = json.loads(metrics.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return True  # a run's file cut off or damaged: reported as skipped, with why
    # vbench-eval's records hold a checkpoint's metrics and no status: not a run.
    return not isinstance(record, dict) or "status" in record


def _natural_key(path: Path):
    # Sweep jobs are named 0_..., 1_..., 10_...: sort them by number, not as text.
    head = path.name.split("_", 1)[0]
    return (str(path.parent), int(head) if head.isdigit() else math.inf, path.name)


def read_run(run_dir: Path, root: Path) -> dict:
    """One summary row. Fields a failed or missing run lacks are None. UnreadableRun when
    metrics.json or .hydra/overrides.yaml is damaged or holds values of the wrong type."""
    metrics_path = run_dir / METRICS_FILE
    metrics = _read_metrics(metrics_path) if metrics_path.is_file() else {}
    overrides = _overrides(run_dir)
    m = _Fields(metrics, metrics_path)
    row = {
        "run": os.path.relpath(run_dir, root),
        "dir": run_dir,
        "name": m.text("name"),
        "tags": " ".join(m.texts("tags")),
        "overrides": " ".join(overrides),
        "status": m.text("status") or MISSING,
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
        "val_size": m.number("sizes", "val"),  # what one val image is worth (verdicts.py)
        # Jobs that differ only in trainer.seed are repeats of one configuration.
        "group": (" ".join(o for o in overrides if not o.startswith(SEED_KEY)) or "(defaults)")
                 if (run_dir / HYDRA_DIR).is_dir() else os.path.relpath(run_dir, root),
        "error": m.text("error"),
        **dict.fromkeys(ENSEMBLE_KEYS),  # its seed group's ensemble, when one is computed
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
    (`debug=smoke` in every job of a sweep tells nothing apart), its decimal values rounded to
    the significant digits that tell the runs apart (see `round_values`)."""
    tokens = [text.split() for text in texts]
    common = set.intersection(*map(set, tokens)) if tokens else set()
    kept = round_values([[t for t in toks if t not in common] for toks in tokens])
    return [" ".join(toks) or text for text, toks in zip(texts, kept)]


SIGNIFICANT = 4  # digits of a decimal value in a label, more only where runs need them


def round_values(labels: list[list[str]]) -> list[list[str]]:
    """`key=value` tokens whose value is a decimal number (`optimizer.lr=0.009145320282946534`,
    as Optuna writes them) rounded to SIGNIFICANT significant digits (`optimizer.lr=0.009145`),
    or to as many more as tell that value apart from the key's other values; integers and text
    as they are."""
    values: dict[str, set[str]] = {}
    for toks in labels:
        for key, value in map(_key_value, toks):
            if key is not None and _decimal(value):
                values.setdefault(key, set()).add(value)
    shown = {}
    for key, distinct in values.items():
        for value in distinct:
            others = {float(v) for v in distinct} - {float(value)}
            digits = next((d for d in range(SIGNIFICANT, 18)
                           if all(_round(value, d) != _round(str(o), d) for o in others)), 17)
            shown[key, value] = _round(value, digits)

    def rounded(token: str) -> str:
        key, value = _key_value(token)
        return f"{key}={shown[key, value]}" if (key, value) in shown else token

    return [[rounded(t) for t in toks] for toks in labels]


def _key_value(token: str) -> tuple[str | None, str]:
    key, sep, value = token.partition("=")
    return (key, value) if sep and key else (None, token)


def _decimal(value: str) -> bool:
    """A number written with a point or an exponent (a learning rate), not an integer."""
    try:
        float(value)
    except ValueError:
        return False
    return any(c in value for c in ".eE") and value.lower() not in ("nan", "inf", "-inf")


def _round(value: str, digits: int) -> str:
    return f"{float(value):.{digits}g}"


def shared_keys(labels: list[str]) -> tuple[str, list[str]]:
    """(the keys, each label's values) when every label sets the same keys in the same order
    (`model.depth=4 model.activation=relu` -> "model.depth, model.activation" and "4, relu"),
    so a figure states the keys once; ("", labels) otherwise."""
    pairs = [[_key_value(t) for t in label.split()] for label in labels]
    keys = [[k for k, _ in p] for p in pairs]
    if not labels or None in keys[0] or not keys[0] or any(k != keys[0] for k in keys):
        return "", list(labels)
    return ", ".join(keys[0]), [", ".join(v for _, v in p) for p in pairs]


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
    path = run_dir / HISTORY_FILE
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


def _seed_groups(rows: list[dict]) -> None:
    """A seed group is the runs of one configuration whose seeds differ: runs of one
    configuration that all ran with the same seed (five `vbench` runs with the defaults) are
    repeats, not a spread over seeds, so each stays a group of its own, named by its
    directory."""
    configs: dict[str, list[dict]] = {}
    for row in rows:
        configs.setdefault(row["group"], []).append(row)
    for members in configs.values():
        if len(members) > 1 and len({_seed(m) for m in members} - {None}) < 2:
            for m in members:
                m["group"] = m["run"]


def _seed(row: dict):
    """The run's trainer.seed: its override when given, else what metrics.json records (None:
    unknown, a job that never wrote it)."""
    for override in row["overrides"].split():
        if override.startswith(SEED_KEY):
            return override.removeprefix(SEED_KEY)
    return None if row["seed"] is None else str(row["seed"])


def sort_rows(rows: list[dict], metric: str = DEFAULT_SORT) -> list[dict]:
    """Best first by `metric`; runs without a result (failed, interrupted, missing) after
    every finished one, then rows without a value. Works for runs and for seed groups alike."""
    sign = -1 if METRICS[metric] else 1
    return sorted(rows, key=lambda r: (r.get("status") in BAD_STATUSES, partial(r),
                                       r[metric] is None, sign * (r[metric] or 0)))


def partial(row: dict) -> bool:
    """A run (or a seed group of runs) stopped from outside, an Optuna search's pruned trial:
    its numbers are of fewer epochs, so it ranks after the runs that finished."""
    if "statuses" in row:  # a group: "2 pruned", "1 completed, 1 pruned"
        return all(part.split(" ", 1)[1] in PARTIAL for part in row["statuses"].split(", "))
    return row.get("status") in PARTIAL


def ranked(rows: list[dict], metric: str = DEFAULT_SORT) -> list[dict]:
    """The rows best first by `metric` (sort_rows), each with its "rank": runs of equal value
    share one (see verdicts.py)."""
    rows = sort_rows(rows, metric)
    rank_runs(rows, metric, METRICS[metric])
    return rows


def configurations(rows: list[dict], metric: str = DEFAULT_SORT) -> list[dict]:
    """The seed groups of `rows` (group_rows), each with its verdict on `metric` (its rank,
    mean ± 95 % CI and how it compares with the leader: verdicts.judge_groups), best first."""
    groups = group_rows(rows)
    judge_groups(groups, rows, metric, METRICS[metric])
    return sorted(groups, key=lambda g: (g[RANK] is None, g[RANK] or 0))


def group_rows(rows: list[dict]) -> list[dict]:
    """One row per group: mean, sample standard deviation (ddof=1, i.e. the spread of
    repeated seeds, not of the population) and the half-width of the mean's 95 % t-interval
    (the figures' error bars) of each metric over the runs that have a value."""
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
            summary[ci95(metric)] = t_interval(values)
            summary[f"{metric}_n"] = len(values)
        for key in ENSEMBLE_KEYS:  # the same on every member that has it
            summary[key] = next((m[key] for m in members if m[key] is not None), None)
        out.append(summary)
    for summary, label in zip(out, short_labels([g["group"] for g in out])):
        summary["label"] = label
    return out


def ensemble_notes(groups: list[dict]) -> list[str]:
    """What the group tables' ensemble columns are, and why a group has none (its error)."""
    notes = []
    if any(g[ENSEMBLE_VAL_ACC] is not None for g in groups):
        notes.append("ensemble: the mean of the softmax of a configuration's completed runs' "
                     "best checkpoints, scored as one model")
    notes += [f"no ensemble for {g['label']}: {g[ENSEMBLE_ERROR]}" for g in groups
              if g[ENSEMBLE_ERROR]]
    return notes
