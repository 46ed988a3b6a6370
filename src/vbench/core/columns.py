"""The names of the numbers vbench records, defined once: everything that prints, writes,
logs or reports them (console lines, history.csv, model_card.md, trackers, leaderboards and
report.html) reads them from here."""

# The metrics of one split (metrics.json best/final .val/.test, eval/<dataset>_<split>/).
SPLIT_METRICS = ("loss", "accuracy", "macro_f1", "weighted_f1")

# One row per epoch: history.csv's columns, in order, and the keys of the rows the epoch loop
# hands the console and the trackers.
EPOCH_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_s")
