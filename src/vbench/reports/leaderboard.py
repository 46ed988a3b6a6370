"""The leaderboard: `vbench-report PATH...` over any run directories, and the same summary
written into the sweep directory when a multirun ends (the SweepSummary Hydra callback).

Reads only the files a run leaves (metrics.json, history.csv, .hydra/overrides.yaml), so it
works on finished, failed and half-written sweeps alike. No torch import: the callback is
instantiated by `vbench -m`, and the report must answer at once.
"""

import argparse
import csv
import io
import json
import math
import os
import statistics
import sys
from pathlib import Path
from typing import ClassVar

from hydra.experimental.callback import Callback

# Statuses that mean the job did not produce a trustworthy result.
BAD_STATUSES = ("failed", "interrupted", "missing")

# Sortable numeric columns: True when larger is better.
METRICS = {
    "best_test_acc": True, "best_val_acc": True, "final_test_acc": True, "macro_f1": True,
    "params": False, "trainable_params": False, "train_time_s": False, "inference_ms": False,
}
COLUMNS = ["run", "name", "tags", "overrides", "status", "dataset", "model", "seed",
           "epochs_run", "best_epoch", "best_val_acc", "best_test_acc", "final_test_acc",
           "macro_f1", "params", "trainable_params", "train_time_s", "inference_ms", "group"]
# The rule of vbench: the validation split picks, the test split only reports.
DEFAULT_SORT = "best_val_acc"
SEED_KEY = "trainer.seed="


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
# Aggregation


def sort_rows(rows: list[dict], metric: str) -> list[dict]:
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


# ----------------------------------------------------------------------------------------------
# Writing


def write_summary(rows: list[dict], histories: dict[str, list[dict]], out: Path,
                  metric: str = DEFAULT_SORT) -> None:
    """summary.csv (one row per run), summary.md (runs, then seed groups) and three plots."""
    from ..core import files

    out.mkdir(parents=True, exist_ok=True)
    rows = sort_rows(rows, metric)
    groups = group_rows(rows)
    extra = sorted({k for r in rows for k in r if k.startswith("extra_")})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*COLUMNS, *extra, "error"], restval="",
                            extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    files.write_text(out / "summary.csv", buffer.getvalue())
    files.write_text(out / "summary.md", _markdown(rows, groups, extra, metric))
    _plots(rows, groups, histories, out)


def _markdown(rows, groups, extra, metric) -> str:
    several = len({r["dataset"] for r in rows if r["dataset"]}) > 1
    runs_header = ["run", *(["dataset"] if several else []), "overrides", "status",
                   "best val acc", "best test acc",
                   "final test acc", "macro-F1", "params", "trainable", "train s", "ms/image",
                   *(e.removeprefix("extra_").removesuffix("_acc") + " acc" for e in extra)]
    lines = [f"# vbench summary: {len(rows)} runs, sorted by {metric}", "",
             _md_row(runs_header), _md_row(["---"] * len(runs_header))]
    for r in rows:
        lines.append(_md_row([
            r["run"], *([r["dataset"] or "—"] if several else []),
            f"`{r['overrides']}`" if r["overrides"] else "", r["status"],
            _fmt(r["best_val_acc"]), _fmt(r["best_test_acc"]), _fmt(r["final_test_acc"]),
            _fmt(r["macro_f1"]), _fmt(r["params"], ","), _fmt(r["trainable_params"], ","),
            _fmt(r["train_time_s"], ".1f"), _fmt(r["inference_ms"], ".4f"),
            *(_fmt(r.get(e)) for e in extra)]))
    failed = [r for r in rows if r["status"] in BAD_STATUSES]
    if failed:
        lines += ["", "## Runs without a result", ""]
        lines += [f"- {r['run']}: {r['status']}" + (f": {r['error']}" if r["error"] else "")
                  for r in failed]
    if any(g["runs"] > 1 for g in groups):
        header = ["group (overrides without trainer.seed)", "runs", "statuses", "best val acc",
                  "best test acc", "final test acc", "macro-F1", "params", "train s"]
        lines += ["", "## Seed groups: mean ± sample std (ddof=1) over the runs with a value",
                  "", _md_row(header), _md_row(["---"] * len(header))]
        for g in groups:
            lines.append(_md_row([
                f"`{g['group']}`", str(g["runs"]), g["statuses"],
                *(_mean_std(g, m) for m in ("best_val_acc", "best_test_acc", "final_test_acc",
                                            "macro_f1")),
                _fmt(g["params"], ",.0f"), _mean_std(g, "train_time_s", ".1f")]))
    return "\n".join(lines) + "\n"


def _md_row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _fmt(value, spec: str = ".4f") -> str:
    return "—" if value is None else format(value, spec)


def _mean_std(group: dict, metric: str, spec: str = ".4f") -> str:
    mean, std = group[metric], group[f"{metric}_std"]
    if mean is None:
        return "—"
    return _fmt(mean, spec) if std is None else f"{mean:{spec}} ± {std:{spec}}"


def _plots(rows, groups, histories, out: Path) -> None:
    from .plots import plot_accuracy_vs_params, plot_sweep_bars, plot_sweep_curves, run_colors

    # One colour and one legend entry per configuration: its seed repeats share them.
    config = {g["group"]: g["label"] for g in groups}
    label = {r["run"]: config[r["group"]] for r in rows}
    colors = run_colors([g["label"] for g in groups])
    curves = [(label[run], h) for run, h in histories.items() if h]
    if curves:
        plot_sweep_curves(curves, colors, out / "summary_val_accuracy.png")
    plot_sweep_bars(groups, colors, out / "summary_test_accuracy.png")
    points = [(label[r["run"]], r["params"], r["best_test_acc"]) for r in rows
              if r["params"] and r["best_test_acc"] is not None]
    if points:
        plot_accuracy_vs_params(points, colors, out / "summary_accuracy_vs_params.png")


def summarize(paths: list[Path], out: Path | None = None,
              metric: str = DEFAULT_SORT) -> tuple[list[dict], Path]:
    """Find the runs under `paths` and write the summary into `out`; returns the rows, best
    first, and where they were written.

    Runs are named by their path relative to the common parent of their directories (the sweep
    directory for one sweep), which is also the default `out`."""
    runs = find_runs(paths)
    if not runs:
        raise FileNotFoundError(
            f"no run directories (with metrics.json or .hydra/) under: {', '.join(map(str, paths))}")
    root = Path(os.path.commonpath([run.parent for run in runs]))
    out = Path(out) if out is not None else root
    rows = [read_run(run, root) for run in runs]
    labels = short_labels([r["overrides"] for r in rows])
    for row, label in zip(rows, labels):
        row["label"] = row["name"] or label or row["run"]  # run.name, when the user gave one
    histories = {row["run"]: read_history(run) for row, run in zip(rows, runs)}
    write_summary(rows, histories, out, metric)
    return sort_rows(rows, metric), out


# ----------------------------------------------------------------------------------------------
# The console


def leaderboard_tables(rows: list[dict], metric: str, title: str, width: int,
                       hide_failed: bool = False) -> list:
    """The ranked table of finished runs, the seed groups, and the runs without a result (as
    lines, after them; none with `hide_failed`). Narrow terminals drop, in this order: tags,
    ms/img, train s, status, final test, params, macro-F1, dataset; the run label wraps; the
    rank, best val and best test always show in full."""
    from ..core.console import Column, fitted_table

    finished = [r for r in rows if r["status"] not in BAD_STATUSES]
    failed = [r for r in rows if r["status"] in BAD_STATUSES]
    several = len({r["dataset"] for r in rows if r["dataset"]}) > 1
    tagged = any(r.get("tags") for r in rows)
    columns = [Column("#"), Column("run", "left"),
               *([Column("dataset", "left", drop=1)] if several else []),
               Column("status", "left", drop=5), Column("best val"), Column("best test"),
               Column("final test", drop=4), Column("macro-F1", drop=2),
               Column("params", drop=3), Column("train s", drop=6), Column("ms/img", drop=7),
               *([Column("tags", "left", drop=8)] if tagged else [])]
    cells = []
    for rank, r in enumerate(finished, 1):
        cells.append([str(rank), r["label"], *([r["dataset"] or "—"] if several else []),
                      r["status"], _fmt(r["best_val_acc"]), _fmt(r["best_test_acc"]),
                      _fmt(r["final_test_acc"]), _fmt(r["macro_f1"]), _fmt(r["params"], ","),
                      _fmt(r["train_time_s"], ".1f"), _fmt(r["inference_ms"], ".4f"),
                      *([r.get("tags") or ""] if tagged else [])])
    out = [fitted_table(columns, cells, width, label=1, title=title,
                        caption=f"sorted by {metric}; accuracies on the best checkpoint "
                                f"unless 'final'")]
    groups = [g for g in group_rows(finished) if g["runs"] > 1]
    if groups:
        columns = [Column("group", "left"), Column("runs"), Column("best val"),
                   Column("best test"), Column("macro-F1", drop=1)]
        cells = [[g["label"], str(g["runs"]), _mean_std(g, "best_val_acc"),
                  _mean_std(g, "best_test_acc"), _mean_std(g, "macro_f1")]
                 for g in sort_rows(groups, metric)]
        out.append(fitted_table(columns, cells, width,
                                title="seed groups: mean ± sample std (ddof=1)"))
    if failed and not hide_failed:
        from rich.text import Text

        out.append(Text(f"{len(failed)} run(s) without a result:", style="red"))
        out += [Text(f"  {r['label']}: {r['status']}" + (f": {r['error']}" if r["error"] else ""))
                for r in failed]
    return out


def print_leaderboard(rows: list[dict], metric: str, title: str,
                      hide_failed: bool = False) -> None:
    from rich.console import Console

    from ..core.console import console

    # Logs and pipes have no width to respect: do not fold the table into 80 columns there.
    out = console if console.is_terminal else Console(width=max(console.width, 160))
    for item in leaderboard_tables(rows, metric, title, out.width, hide_failed):
        out.print(item, highlight=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vbench-report",
        description="Leaderboard of vbench runs: finds run directories (metrics.json or .hydra/) "
                    "under each PATH, prints them sorted, and writes summary.csv, summary.md "
                    "and comparison plots.")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="a sweep directory, a run directory, or any folder holding runs")
    parser.add_argument("--sort", default=DEFAULT_SORT, choices=list(METRICS),
                        help=f"metric to rank by (default: {DEFAULT_SORT}, the best checkpoint's "
                             "validation accuracy: the test split never picks)")
    parser.add_argument("--hide-failed", action="store_true",
                        help="leave out runs without a result (failed, interrupted, missing)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the summary (default: the common parent of the "
                             "run directories: the sweep directory for one sweep)")
    parser.add_argument("--html", action="store_true",
                        help="also write report.html: one self-contained page (sortable "
                             "leaderboard, config differences, curves, each run's plots)")
    args = parser.parse_args(argv)
    try:
        rows, out = summarize(args.paths, args.out, args.sort)
    except FileNotFoundError as e:
        print(f"vbench-report: error: {e}", file=sys.stderr)
        return 2
    print_leaderboard(rows, args.sort, f"vbench: {len(rows)} runs", args.hide_failed)
    from ..core.console import console

    console.print(f"summary written to {out}/summary.csv, summary.md", highlight=False,
                  soft_wrap=True)
    if args.html:
        from .html import write_html_report

        page = write_html_report(args.paths, out / "report.html", args.sort)
        console.print(f"report written to {page}", highlight=False, soft_wrap=True)
    return 0


# ----------------------------------------------------------------------------------------------
# The Hydra callback


class SweepSummary(Callback):
    """Writes the summary into the sweep directory when a multirun ends, and remembers
    whether a job failed so that `vbench -m` exits non-zero (see cli.main)."""

    failed_jobs: ClassVar[list[str]] = []

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            rows, _ = summarize([sweep_dir], sweep_dir)
        except FileNotFoundError:
            return  # no job started: nothing to summarize
        print_leaderboard(rows, DEFAULT_SORT, f"sweep {sweep_dir}: {len(rows)} jobs")
        SweepSummary.failed_jobs = [r["run"] for r in rows if r["status"] in BAD_STATUSES]
        from .html import write_html_report

        write_html_report([sweep_dir], sweep_dir / "report.html")


if __name__ == "__main__":
    sys.exit(main())
