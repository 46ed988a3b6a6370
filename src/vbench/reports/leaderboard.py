"""The leaderboard: `vbench-report PATH...` over any run directories, and the same summary
written into the sweep directory when a multirun ends (the SweepSummary Hydra callback).

The runs come from runs.collect_runs, the columns from columns.RUN_COLUMNS (report.html takes
both from there too). No torch import: the callback is instantiated by `vbench -m`, and the
report must answer at once.
"""

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path

from .runs import (
    BAD_STATUSES,
    DEFAULT_SORT,
    collect_runs,
    configurations,
    ensemble_notes,
    ranked,
    read_history,
)
from .study import read_study, study_markdown
from .table import (
    CSV,
    ERROR,
    GROUPS_CSV,
    MARKDOWN,
    RUN_COLUMNS,
    TERMINAL,
    Column,
    extra_columns,
    group_columns,
    shown,
)
from .verdicts import method_line, ranking_notes

# ----------------------------------------------------------------------------------------------
# Writing


def write_summary(rows: list[dict], histories: dict[str, list[dict]], out: Path,
                  metric: str = DEFAULT_SORT, skipped: list[tuple[Path, str]] = (),
                  study: dict | None = None) -> None:
    """summary.csv (one row per run, ranked), summary_groups.csv (one row per configuration,
    with its verdict, when a configuration ran with several seeds), summary.md (runs, what
    their ranks mean, then seed groups, then the runs that could not be read, then an Optuna
    study's trials) and three plots."""
    from ..core import files

    writable_folder(out)
    rows = ranked(rows, metric)
    groups = configurations(rows, metric)
    extra = extra_columns(rows)
    files.write_text(out / "summary.csv", _csv(rows, [*shown(RUN_COLUMNS, CSV, rows), *extra,
                                                      ERROR]))
    if seeded(groups):
        files.write_text(out / GROUPS_CSV, _csv(groups, group_columns(CSV, metric)))
    else:
        (out / GROUPS_CSV).unlink(missing_ok=True)  # an earlier summary's, of other runs
    files.write_text(out / "summary.md", _markdown(rows, groups, extra, metric, skipped, study))
    _plots(rows, groups, histories, out, metric)


def seeded(groups: list[dict]) -> bool:
    """Whether a configuration ran more than once: then every table shows the seed groups."""
    return any(g["runs"] > 1 for g in groups)


def writable_folder(out: Path) -> None:
    """Make `out` or refuse it in one line, before anything is written into it."""
    from ..core.errors import VBenchError

    try:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as e:
        raise VBenchError(f"cannot write the summary into {out}: {e.strerror or e}; choose "
                          "another folder with --out DIR") from None


def _csv(rows: list[dict], columns: list[Column]) -> str:
    keys = list(dict.fromkeys(c.key for c in columns))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, restval="", extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    return buffer.getvalue()


def _markdown(rows, groups, extra, metric, skipped=(), study=None) -> str:
    columns = [*shown(RUN_COLUMNS, MARKDOWN, rows), *extra]
    lines = [f"# vbench summary: {len(rows)} runs, sorted by {metric}", "",
             *_md_table(columns, [[_md_cell(c, c.text(r)) for c in columns] for r in rows])]
    notes = ranking_notes(rows, groups, metric)
    if notes:
        lines += ["", *(f"- {note[0].upper()}{note[1:]}." for note in notes)]
    failed = [r for r in rows if r["status"] in BAD_STATUSES]
    if failed:
        lines += ["", "## Runs without a result", ""]
        lines += [f"- {r['run']}: {r['status']}" + (f": {r['error']}" if r["error"] else "")
                  for r in failed]
    if seeded(groups):
        columns = group_columns(MARKDOWN, metric, groups)
        lines += ["", "## Seed groups", "",
                  (f"Ranked by {metric}: {method_line()}. Other metrics: mean ± sample std "
                  "(ddof=1) over the runs with a value."), "",
                  *_md_table(columns, [[_md_cell(c, _group_text(c, g)) for c in columns]
                                       for g in groups])]
        notes = ensemble_notes(groups)
        if notes:
            lines += ["", *(f"- {note[0].upper()}{note[1:]}." for note in notes)]
    if skipped:
        lines += ["", "## Runs that could not be read", ""]
        lines += [f"- {why}" for _, why in skipped]
    if study is not None:
        lines += study_markdown(study)
    return "\n".join(lines) + "\n"


def _md_table(columns: list[Column], cells: list[list[str]]) -> list[str]:
    return [_md_row(c.title for c in columns), _md_row(["---"] * len(columns)),
            *map(_md_row, cells)]


def _md_cell(column: Column, text: str) -> str:
    return f"`{text}`" if column.code and text else text


def _md_row(cells) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _group_text(column: Column, group: dict) -> str:
    # The group's own cells (its name, runs, statuses) as they are; its metrics averaged.
    return column.group_text(group) if column.groups else column.text(group)


def _plots(rows, groups, histories, out: Path, metric: str) -> None:
    from .plots import plot_accuracy_vs_params, plot_sweep_bars, plot_sweep_curves, sweep_legend

    # One colour, name and place per configuration (its seed repeats share them), in the
    # leaderboard's order.
    legend = sweep_legend(groups, metric)
    config = {g["group"]: g["label"] for g in groups}
    label = {r["run"]: config[r["group"]] for r in rows}
    curves = [(label[r["run"]], histories[r["run"]], r["best_epoch"]) for r in rows
              if histories.get(r["run"])]
    if curves:
        plot_sweep_curves(curves, legend, out / "summary_val_accuracy.png")
    plot_sweep_bars(groups, legend, out / "summary_test_accuracy.png")
    points = [(label[r["run"]], r["params"], r["best_test_acc"]) for r in rows
              if r["params"] and r["best_test_acc"] is not None]
    if points:
        plot_accuracy_vs_params(points, legend, out / "summary_accuracy_vs_params.png")


def summarize(paths: list[Path], out: Path | None = None, metric: str = DEFAULT_SORT,
              skipped: list[tuple[Path, str]] | None = None,
              ensemble: Callable[[list[dict]], object] | None = None) -> tuple[list[dict], Path]:
    """Find the runs under `paths` and write the summary into `out`; returns the rows, best
    first, and where they were written. Runs that cannot be read are left out, listed in
    summary.md and appended to `skipped` as (run directory, why). `ensemble` (the commands
    pass inference.ensemble.add_ensembles, which imports torch) gives the rows of seed groups
    their ensemble's fields before anything is written.

    Runs are named by their path relative to the common parent of their directories (the sweep
    directory for one sweep), which is also the default `out`."""
    skipped = [] if skipped is None else skipped
    rows, root = collect_runs(paths, skipped)
    out = Path(out) if out is not None else root
    if ensemble is not None:
        ensemble(rows)
    histories = {row["run"]: read_history(row["dir"]) for row in rows}
    write_summary(rows, histories, out, metric, skipped, read_study(root))
    return ranked(rows, metric), out


# ----------------------------------------------------------------------------------------------
# The console


def leaderboard_tables(rows: list[dict], metric: str, title: str, width: int,
                       hide_failed: bool = False) -> list:
    """The ranked table of finished runs, the seed groups, and the runs without a result (as
    lines, after them; none with `hide_failed`). Narrow terminals drop the columns with the
    highest `drop` first (see columns.RUN_COLUMNS); the run label wraps; the rank, best val
    and best test always show in full."""
    from ..core.console import Column as TableColumn
    from ..core.console import fitted_table

    def console_columns(columns: list[Column]) -> list[TableColumn]:  # text left, numbers right
        return [TableColumn(c.header, "right" if c.spec else "left", c.drop) for c in columns]

    from rich.text import Text

    rows = ranked(rows, metric)
    finished = [r for r in rows if r["status"] not in BAD_STATUSES]
    failed = [r for r in rows if r["status"] in BAD_STATUSES]
    columns = shown(RUN_COLUMNS, TERMINAL, rows)
    cells = [[c.text(r) for c in columns] for r in finished]
    out = [fitted_table(console_columns(columns), cells, width, label=_label(columns),
                        title=title,
                        caption=f"sorted by {metric}; accuracies on the best checkpoint "
                                f"unless 'final'")]
    groups = configurations(finished, metric)
    out += [Text(note, style="dim") for note in ranking_notes(finished, groups, metric)]
    if seeded(groups):
        columns = group_columns(TERMINAL, metric, groups)
        cells = [[_group_text(c, g) for c in columns] for g in groups]
        out.append(fitted_table(console_columns(columns), cells, width, label=_label(columns),
                                title=f"seed groups, ranked by {metric}",
                                caption=f"{method_line()}; other metrics: mean ± sample std "
                                        "(ddof=1)"))
        out += [Text(note, style="dim") for note in ensemble_notes(groups)]
    if failed and not hide_failed:
        out.append(Text(f"{len(failed)} run(s) without a result:", style="red"))
        out += [Text(f"  {r['label']}: {r['status']}" + (f": {r['error']}" if r["error"] else ""))
                for r in failed]
    return out


def _label(columns: list[Column]) -> int:
    """The index of the column that names a row: it wraps on a narrow terminal."""
    return next(i for i, c in enumerate(columns) if c.key == "label")


def print_leaderboard(rows: list[dict], metric: str, title: str,
                      hide_failed: bool = False) -> None:
    from rich.console import Console

    from ..core.console import console

    # Logs and pipes have no width to respect: do not fold the table into 80 columns there.
    out = console if console.is_terminal else Console(width=max(console.width, 160))
    for item in leaderboard_tables(rows, metric, title, out.width, hide_failed):
        out.print(item, highlight=False)
