"""The names of the numbers vbench records, defined once: everything that prints, writes,
logs or reports them (console lines, history.csv, model_card.md, trackers, leaderboards and
report.html) reads them from here."""

# The metrics of one split (metrics.json best/final .val/.test, eval/<dataset>_<split>/).
SPLIT_METRICS = ("loss", "accuracy", "macro_f1", "weighted_f1")

# One row per epoch: history.csv's columns, in order, and the keys of the rows the epoch loop
# hands the console and the trackers.
EPOCH_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_s")

# With trainer.ema, the EMA weights' validation, right after the raw weights' (history.csv,
# console lines, trackers): rows of runs without EMA keep EPOCH_COLUMNS exactly.
EMA_COLUMNS = ("ema_val_loss", "ema_val_acc")


def epoch_columns(ema: bool) -> tuple[str, ...]:
    """history.csv's columns of a run with or without the EMA of its weights."""
    if not ema:
        return EPOCH_COLUMNS
    at = EPOCH_COLUMNS.index("val_acc") + 1
    return EPOCH_COLUMNS[:at] + EMA_COLUMNS + EPOCH_COLUMNS[at:]
