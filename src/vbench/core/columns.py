"""The names of the numbers vbench records, defined once: everything that prints, writes,
logs or reports them (console lines, history.csv, model_card.md, trackers, leaderboards and
report.html) reads them from here. One vocabulary: a split's metrics are SPLIT_METRICS; the
per-epoch columns of history.csv name two of them shorter (`val_acc` is the val split's
`accuracy`), through `epoch_column`."""

# The metrics of one split (metrics.json best/final .val/.test, eval/<dataset>_<split>/).
SPLIT_METRICS = ("loss", "accuracy", "macro_f1", "weighted_f1")
LOSS, ACCURACY = SPLIT_METRICS[:2]

# history.csv's short names of the metrics it records every epoch.
_SHORT = {LOSS: "loss", ACCURACY: "acc"}


def epoch_column(prefix: str, metric: str) -> str:
    """history.csv's column of `metric` for `prefix` (train, val, ema_val): val_acc, ..."""
    return f"{prefix}_{_SHORT[metric]}"


TRAIN_LOSS, TRAIN_ACC = epoch_column("train", LOSS), epoch_column("train", ACCURACY)
VAL_LOSS, VAL_ACC = epoch_column("val", LOSS), epoch_column("val", ACCURACY)
EMA_VAL_LOSS, EMA_VAL_ACC = epoch_column("ema_val", LOSS), epoch_column("ema_val", ACCURACY)

# The range a fraction keeps to: every split metric but the loss (accuracy, the F1 scores) and
# the accuracy columns of history.csv. A figure's axis of one never runs past it.
UNIT = (0.0, 1.0)
FRACTIONS = frozenset({*SPLIT_METRICS[1:], TRAIN_ACC, VAL_ACC, EMA_VAL_ACC})


def value_range(metric: str) -> tuple[float, float] | None:
    """The values `metric` (a split's or history.csv's name) can take: UNIT for a fraction,
    None for a loss (no upper end)."""
    return UNIT if metric in FRACTIONS else None


# One row per epoch: history.csv's columns, in order, and the keys of the rows the epoch loop
# hands the console and the trackers.
EPOCH = "epoch"  # history.csv's first column: the epoch a row is the end of
EPOCH_COLUMNS = (EPOCH, TRAIN_LOSS, TRAIN_ACC, VAL_LOSS, VAL_ACC, "lr", "epoch_s")

# With trainer.ema, the EMA weights' validation, right after the raw weights' (history.csv,
# console lines, trackers): rows of runs without EMA keep EPOCH_COLUMNS exactly.
EMA_COLUMNS = (EMA_VAL_LOSS, EMA_VAL_ACC)

# The columns trainer.monitor may watch: which split metric each is, and its better direction.
MONITORED = {VAL_LOSS: LOSS, VAL_ACC: ACCURACY, EMA_VAL_LOSS: LOSS, EMA_VAL_ACC: ACCURACY}
MONITORS = {column: "min" if metric == LOSS else "max" for column, metric in MONITORED.items()}


def epoch_columns(ema: bool) -> tuple[str, ...]:
    """history.csv's columns of a run with or without the EMA of its weights."""
    if not ema:
        return EPOCH_COLUMNS
    at = EPOCH_COLUMNS.index(VAL_ACC) + 1
    return EPOCH_COLUMNS[:at] + EMA_COLUMNS + EPOCH_COLUMNS[at:]
