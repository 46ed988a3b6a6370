"""The leaderboard's columns, defined once: the terminal table, summary.md, summary.csv and
report.html all take their columns, titles and number formats from RUN_COLUMNS (and the seed
groups' from group_columns), in this order. A column added here shows everywhere it says.

The keys are those of the rows runs.read_run makes."""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from .verdicts import (
    P_VALUE,
    RANK,
    RANKED_BY,
    RANKED_MEAN,
    RANKED_N,
    VS_LEADER,
    ci95,
    p_text,
)

# The tables a column can show in.
CSV, MARKDOWN, TERMINAL, HTML = "summary.csv", "summary.md", "terminal", "report.html"
EVERYWHERE = frozenset({CSV, MARKDOWN, TERMINAL, HTML})
# How a seed group shows a metric: the spread over seeds, or only the mean (one config has one
# parameter count: a std of 0 says nothing), or the ranked metric's confidence interval.
MEAN_STD, MEAN, MEAN_CI = "mean ± std", "mean", "mean ± 95 % CI"


def several_datasets(rows: list[dict]) -> bool:
    return len({r["dataset"] for r in rows if r.get("dataset")}) > 1


def tagged(rows: list[dict]) -> bool:
    return any(r.get("tags") for r in rows)


@dataclass(frozen=True)
class Column:
    key: str                          # the row's key; summary.csv's header
    title: str                        # summary.md's and report.html's header
    spec: str | None = None           # the number's format; None: text
    short: str | None = None          # the terminal's header, where narrower than `title`
    drop: int | None = None           # narrow terminals drop the highest first; None: never
    on: frozenset = EVERYWHERE        # the tables that show it
    when: Callable[[list[dict]], bool] | None = None  # shown only when this holds (not in csv)
    higher_is_better: bool | None = None  # a metric to rank by; None: not one
    groups: str | None = None         # MEAN_STD or MEAN: shown in the seed-group tables
    code: bool = False                # command-line text, shown as code
    show: Callable[[object], str] | None = None  # the cell's text where `spec` cannot say it

    @property
    def header(self) -> str:
        return self.short or self.title

    def text(self, row: dict) -> str:
        """The cell as the tables print it: "—" for a value the run does not have."""
        value = row.get(self.key)
        if value is None:
            return "—"
        if self.show:
            return self.show(value)
        return format(value, self.spec) if self.spec else str(value)

    def group_text(self, group: dict) -> str:
        """The seed group's cell: mean ± sample std, mean ± the half-width of its confidence
        interval (MEAN_CI: verdicts.ci95), or the mean alone."""
        spread = group.get(ci95(self.key) if self.groups == MEAN_CI else f"{self.key}_std")
        if self.groups == MEAN or spread is None:
            return self.text(group)
        return f"{group[self.key]:{self.spec}} ± {spread:{self.spec}}"


def _only(*tables: str) -> frozenset:
    return frozenset(tables)


def _accuracy(key: str, title: str, short: str, drop: int | None = None) -> Column:
    return Column(key, title, ".4f", short, drop, higher_is_better=True, groups=MEAN_STD)


# In summary.csv's order. The terminal and report.html name a run by its label (run.name, else
# what its overrides do not share with the others'); summary.md by its directory, beside its
# overrides.
RUN_COLUMNS = [
    # Competition ranking by the sort metric: equal values share a rank (1, 1, 3).
    Column(RANK, "rank", "d"),
    Column("run", "run", on=_only(CSV, MARKDOWN)),
    Column("label", "run", on=_only(TERMINAL, HTML)),
    Column("name", "name", on=_only(CSV)),
    Column("tags", "tags", drop=8, when=tagged),
    Column("overrides", "overrides", on=_only(CSV, MARKDOWN), code=True),
    Column("status", "status", drop=5),
    Column("dataset", "dataset", drop=1, when=several_datasets),
    Column("model", "model", on=_only(CSV)),
    Column("seed", "seed", on=_only(CSV)),
    Column("epochs_run", "epochs_run", on=_only(CSV)),
    Column("best_epoch", "best_epoch", on=_only(CSV)),
    _accuracy("best_val_acc", "best val acc", "best val"),
    _accuracy("best_test_acc", "best test acc", "best test"),
    _accuracy("final_test_acc", "final test acc", "final test", drop=4),
    Column("macro_f1", "macro-F1", ".4f", drop=2, higher_is_better=True, groups=MEAN_STD),
    Column("params", "params", ",.0f", drop=3, higher_is_better=False, groups=MEAN),
    Column("trainable_params", "trainable", ",.0f", on=_only(CSV, MARKDOWN),
           higher_is_better=False),
    Column("train_time_s", "train s", ".1f", drop=6, higher_is_better=False, groups=MEAN_STD),
    Column("inference_ms", "ms/image", ".4f", "ms/img", drop=7, higher_is_better=False),
    Column("group", "group", on=_only(CSV)),
]
# Last in summary.csv, after the extra_*_acc columns of cross-domain probes: long text.
ERROR = Column("error", "error", on=_only(CSV))

# Sortable numeric columns: True when larger is better.
METRICS = {c.key: c.higher_is_better for c in RUN_COLUMNS if c.higher_is_better is not None}


def shown(columns: list[Column], table: str, rows: list[dict]) -> list[Column]:
    """The columns `table` shows for these rows (summary.csv always has every one of its own)."""
    return [c for c in columns
            if table in c.on and (table == CSV or c.when is None or c.when(rows))]


def extra_columns(rows: list[dict]) -> list[Column]:
    """A column per cross-domain probe (extra_<dataset>_acc): in summary.csv and summary.md."""
    keys = sorted({k for r in rows for k in r if k.startswith("extra_")})
    return [Column(k, k.removeprefix("extra_").removesuffix("_acc") + " acc", ".4f",
                   on=_only(CSV, MARKDOWN)) for k in keys]


# A seed group's ensemble (the mean of its runs' softmax: inference/ensemble.py computes it,
# on each member's row; runs.group_rows takes it to the group's).
ENSEMBLE_VAL_ACC, ENSEMBLE_TEST_ACC = "ensemble_val_acc", "ensemble_test_acc"
ENSEMBLE_MACRO_F1, ENSEMBLE_RUNS = "ensemble_macro_f1", "ensemble_runs"
ENSEMBLE_ERROR = "ensemble_error"  # why a group with several finished runs has none
ENSEMBLE_KEYS = (ENSEMBLE_VAL_ACC, ENSEMBLE_TEST_ACC, ENSEMBLE_MACRO_F1, ENSEMBLE_RUNS,
                 ENSEMBLE_ERROR)


def ensembled(groups: list[dict]) -> bool:
    return any(g[ENSEMBLE_VAL_ACC] is not None for g in groups)


# summary_groups.csv: one row per configuration.
GROUPS_CSV = "summary_groups.csv"


def group_columns(table: str, metric: str, groups: list[dict] | None = None) -> list[Column]:
    """The seed-group table of `table` when ranked by `metric`: the configuration's rank and
    verdict (its `metric` as mean ± 95 % CI, Welch's p against the leader, tied or not; see
    verdicts.py), its ensemble's accuracies when computed, and the metrics its run table shows
    that a group averages (mean ± std). With `groups`, the columns their `when` holds for."""
    title = "group (overrides without trainer.seed)"
    ranked = next(c for c in RUN_COLUMNS if c.key == metric)
    columns = [Column(RANK, "rank", "d"),
               Column("group", title, on=_only(MARKDOWN, CSV), code=True),
               Column("label", title, short="group", on=_only(TERMINAL, HTML)),
               Column("runs", "runs", "d"),
               Column("statuses", "statuses", on=_only(MARKDOWN, HTML, CSV)),
               Column(RANKED_BY, "ranked by", on=_only(CSV)),
               Column(RANKED_N, "seeds", "d", on=_only(CSV)),
               Column(RANKED_MEAN, f"{ranked.title}: mean ± 95 % CI", ranked.spec,
                      f"{ranked.header} ± 95% CI", on=_only(MARKDOWN, TERMINAL, HTML),
                      higher_is_better=ranked.higher_is_better, groups=MEAN_CI),
               Column(RANKED_MEAN, "mean", ranked.spec, on=_only(CSV)),
               Column(ci95(RANKED_MEAN), "95 % CI ±", ranked.spec, on=_only(CSV)),
               Column(P_VALUE, "p vs leader (Welch)", short="p", show=p_text),
               Column(VS_LEADER, "vs leader"),
               Column(ENSEMBLE_VAL_ACC, "ensemble val acc", ".4f", "ens. val", drop=1,
                      when=ensembled, higher_is_better=True, groups=MEAN),
               Column(ENSEMBLE_TEST_ACC, "ensemble test acc", ".4f", "ens. test", drop=1,
                      when=ensembled, higher_is_better=True, groups=MEAN),
               Column(ENSEMBLE_MACRO_F1, "ensemble macro-F1", ".4f",
                      on=_only(MARKDOWN, HTML, CSV), when=ensembled, higher_is_better=True,
                      groups=MEAN),
               Column(ENSEMBLE_RUNS, "ensemble runs", "d", on=_only(CSV)),
               Column(ENSEMBLE_ERROR, "ensemble error", on=_only(CSV)),
               # A seed group's mean ± std of each metric. Narrow terminals drop them before
               # the verdict and the ensemble: the ranked metric's first (its CI is above).
               *(dataclasses.replace(c, drop=10 if c.key == metric else c.drop or 2)
                 for c in RUN_COLUMNS if c.groups)]
    columns = [c for c in columns if table in c.on]
    return columns if groups is None else shown(columns, table, groups)
