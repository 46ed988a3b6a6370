"""What a ranking can tell, and what it cannot: the verdicts every leaderboard prints.

- **Ranks.** Runs are ranked by the leaderboard's sort metric with competition ranking
  (1, 1, 3): runs of equal value share a rank, so eight runs at the same val accuracy read as
  eight firsts, not as an order that only their directory names made.
- **Resolution.** With one seed per configuration nothing but the val split's size says how
  far apart two runs are: one val image moves the accuracy by 1/(val images), and the
  leaderboard says so.
- **Seed groups** (the runs of one configuration over several `trainer.seed`): the mean of the
  sort metric with its 95 % confidence interval (Student's t, n − 1 degrees of freedom; with
  2 seeds t = 12.7, so the interval is wide: that is what two seeds know), and against the
  leader (the configuration of the best mean) Welch's two-sided t-test (unequal variances,
  scipy.stats.ttest_ind(equal_var=False)). A configuration whose p-value is ALPHA or more is
  not distinguishable from the leader: it is marked tied with it.
- **Edge cases**, decided here once: a configuration or a leader with one value gets no test
  (`no test: 1 seed`); when neither side varies over its seeds (identical values, which an
  accuracy on a small val split often is) the t statistic is 0/0 or ±inf, so equal means are
  tied (p = 1) and different means differ (p = 0, the test's limit); only finished runs
  (not failed, interrupted or missing) count.

No torch: scipy's statistics only, imported when a seed group needs them.
"""

import math
import statistics

from ..core.status import BAD

CONFIDENCE = 0.95  # the confidence intervals' level
ALPHA = 0.05  # p at or above this: not distinguishable from the leader, i.e. tied
TEST = "Welch's t-test"  # how a configuration is compared with the leader (two-sided)

# The keys verdicts add: a run's and a configuration's RANK; a configuration's RANKED_BY (the
# metric), RANKED_N (its finished runs with a value), RANKED_MEAN and ci95(RANKED_MEAN) (the
# half-width of its interval), P_VALUE and VS_LEADER (summary_groups.csv's columns).
RANK = "rank"
RANKED_BY, RANKED_N, RANKED_MEAN = "ranked_by", "ranked_n", "ranked_mean"
P_VALUE, VS_LEADER = "p_value", "vs_leader"


def ci95(key: str) -> str:
    """The key of the half-width of `key`'s 95 % confidence interval in a group's row."""
    return f"{key}_ci95"


# A configuration's verdict against the leader (summary.csv `vs_leader`, every group table).
LEADER = "leader"
TIED = "tied"
WORSE = "worse"  # distinguishable from the leader: p < ALPHA
NO_TEST_ONE_SEED = "no test: 1 seed"
NO_TEST_LEADER_ONE_SEED = "no test: leader has 1 seed"


def competition_ranks(values: list, higher_is_better: bool) -> list[int | None]:
    """Each value's rank, best first, equal values sharing the best rank of their tie
    (1, 1, 3); None for a missing value."""
    sign = -1 if higher_is_better else 1
    known = sorted(sign * v for v in values if v is not None)
    first = {}
    for position, key in enumerate(known, 1):
        first.setdefault(key, position)
    return [None if v is None else first[sign * v] for v in values]


def rank_runs(rows: list[dict], metric: str, higher_is_better: bool) -> None:
    """Set each row's "rank" by `metric`: finished runs only (a failed run's number, if any,
    ranks nothing)."""
    values = [None if r["status"] in BAD else r[metric] for r in rows]
    for row, rank in zip(rows, competition_ranks(values, higher_is_better)):
        row[RANK] = rank


def t_interval(values: list[float]) -> float | None:
    """The half-width of the CONFIDENCE t-interval of the mean of `values` (sample std,
    n - 1 degrees of freedom); None below 2 values."""
    n = len(values)
    if n < 2:
        return None
    from scipy import stats

    return float(stats.t.ppf((1 + CONFIDENCE) / 2, n - 1) * statistics.stdev(values)
                 / math.sqrt(n))


def welch_p(a: list[float], b: list[float]) -> float:
    """The two-sided p-value of Welch's t-test of equal means (2 values or more on each side).
    Neither side varying: 1.0 for equal means, 0.0 for different ones (the test's limit)."""
    if len(set(a)) == 1 and len(set(b)) == 1:
        return 1.0 if a[0] == b[0] else 0.0
    import warnings

    from scipy import stats

    with warnings.catch_warnings():  # one side without spread: scipy warns, the result holds
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def judge_groups(groups: list[dict], rows: list[dict], metric: str,
                 higher_is_better: bool) -> None:
    """Add each configuration's verdict on `metric` to its seed-group row (runs.group_rows):
    `rank` (by the mean, competition ranking), `ranked_mean`, `ranked_mean_ci95` (the
    interval's half-width), `ranked_n` (finished runs with a value), `p_value` and `vs_leader`. The leader
    is the configuration of the best mean."""
    values = {g["group"]: [] for g in groups}
    for row in rows:
        if row["status"] not in BAD and row[metric] is not None and row["group"] in values:
            values[row["group"]].append(row[metric])
    for g in groups:
        v = values[g["group"]]
        g[RANKED_BY] = metric
        g[RANKED_N] = len(v)
        g[RANKED_MEAN] = statistics.fmean(v) if v else None
        g[ci95(RANKED_MEAN)] = t_interval(v)
        g[P_VALUE] = g[VS_LEADER] = None
    means = [g[RANKED_MEAN] for g in groups]
    for g, rank in zip(groups, competition_ranks(means, higher_is_better)):
        g[RANK] = rank
    ranked = [g for g in groups if g[RANK] is not None]
    if not ranked:
        return
    leader = min(ranked, key=lambda g: g[RANK])  # the first of a tie: the table's first
    leader[VS_LEADER] = LEADER
    best = values[leader["group"]]
    for g in ranked:
        if g is leader:
            continue
        if g[RANKED_N] < 2:
            g[VS_LEADER] = NO_TEST_ONE_SEED
        elif len(best) < 2:
            g[VS_LEADER] = NO_TEST_LEADER_ONE_SEED
        else:
            g[P_VALUE] = welch_p(values[g["group"]], best)
            g[VS_LEADER] = TIED if g[P_VALUE] >= ALPHA else WORSE


def p_text(p: float) -> str:
    """A p-value as the tables print it: 3 decimals, or "<0.001"."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def method_line() -> str:
    """What the group tables' verdict columns mean, in one sentence."""
    return (f"mean ± {CONFIDENCE * 100:.0f} % confidence interval (Student's t, n − 1 degrees of "
            f"freedom); p: {TEST} (two-sided, unequal variances) against the leader, the "
            f"configuration of the best mean; p ≥ {ALPHA} is not distinguishable from the "
            f"leader: tied; a configuration or leader with 1 seed gets no test")


# ----------------------------------------------------------------------------------------------
# What a single-seed ranking can tell


def resolution_line(rows: list[dict]) -> str | None:
    """How much one val image moves a val accuracy: 1/(val images) of the finished runs, a
    range when their val splits differ; None when no run recorded its sizes."""
    sizes = sorted({r["val_size"] for r in rows if r["status"] not in BAD and r.get("val_size")})
    if not sizes:
        return None
    if len(sizes) == 1:
        return (f"one val image moves val accuracy by 1/{sizes[0]} = "
                f"{100 / sizes[0]:.2f} %")
    return (f"one val image moves val accuracy by 1/{sizes[-1]} to 1/{sizes[0]} = "
            f"{100 / sizes[-1]:.2f} to {100 / sizes[0]:.2f} % (val splits of {sizes[0]} to "
            f"{sizes[-1]} images)")


def shared_ranks(rows: list[dict]) -> list[tuple[int, int]]:
    """(rank, runs) of every rank that several runs share, best first."""
    counts: dict[int, int] = {}
    for r in rows:
        if r.get(RANK) is not None:
            counts[r[RANK]] = counts.get(r[RANK], 0) + 1
    return sorted((rank, n) for rank, n in counts.items() if n > 1)


def ranking_notes(rows: list[dict], groups: list[dict], metric: str) -> list[str]:
    """The lines under a leaderboard that say what its order means: shared ranks, and with a
    configuration of one seed, how much one val image is worth."""
    notes = []
    shared = shared_ranks(rows)
    if shared:
        told = ", ".join(f"{n} runs share rank {rank}" for rank, n in shared[:4])
        more = f" and {len(shared) - 4} more ranks" if len(shared) > 4 else ""
        notes.append(f"equal {metric} values share a rank: {told}{more}; their order within "
                     "a rank is arbitrary")
    if any(g[RANKED_N] == 1 for g in groups if g[RANK] is not None):
        line = resolution_line(rows)
        if line:
            notes.append(f"{line}; with one seed, a configuration's rank rests on one run")
    return notes
