"""How a run ends: metrics.json's `status`, named once. Training, resume, the leaderboards and
the trackers read these names from here."""

COMPLETED = "completed"
EARLY_STOPPED = "early_stopped"  # trainer.patience ran out: finished, by design
DIVERGED = "diverged"  # a non-finite training loss: finished, with the numbers it had
FAILED = "failed"  # an error ended it (metrics.json `error` says which)
INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM: resumable from checkpoints/last.pt
PRUNED = "pruned"  # an Optuna search stopped the trial early (hydra.sweeper.pruner): finished,
# with every file; ranked after the completed runs, and never the search's best
MISSING = "missing"  # a sweep's job that left no metrics.json (leaderboards only)

STATUSES = (COMPLETED, EARLY_STOPPED, DIVERGED, PRUNED, FAILED, INTERRUPTED)
FINISHED = (COMPLETED, EARLY_STOPPED, DIVERGED, PRUNED)  # rerunning the same config skips these
PARTIAL = (PRUNED,)  # a result of a run stopped from outside: ranked after the others
BAD = (FAILED, INTERRUPTED, MISSING)  # ranked last, and a sweep with one exits non-zero
