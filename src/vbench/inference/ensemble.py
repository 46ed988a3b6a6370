"""A seed group's ensemble: the mean of its runs' softmax on the val and test splits, scored as
one model (issue 28). The leaderboard asks for it through a hook (commands/report.py passes
`add_ensembles` to reports.leaderboard.summarize and reports.html.write_html_report), so the
reports stay free of torch: torch is imported only once a seed group with two finished runs
that both have checkpoints/best.pt is there.

Cost: per seed group, reading its dataset once (the decoded-array cache makes that a load of
uint8 tensors) and one forward pass of every member's best checkpoint over val and test, in
float32 on the best device (cuda > mps > cpu): the evaluation pass each run already made at
its end, once more. A random-forest baseline is refitted when loaded (see models/sklearn.py).
Results are kept for the process, keyed by the checkpoint files, so the summary files and
report.html of one sweep compute them once.
"""

import time
from pathlib import Path

from ..core.errors import VBenchError
from ..core.rundir import CHECKPOINTS_DIR
from ..core.status import COMPLETED, EARLY_STOPPED
from ..reports.table import (
    ENSEMBLE_ERROR,
    ENSEMBLE_MACRO_F1,
    ENSEMBLE_RUNS,
    ENSEMBLE_TEST_ACC,
    ENSEMBLE_VAL_ACC,
)
from ..training.checkpoint import CHECKPOINTS

# The runs an ensemble takes: those that finished as planned (a diverged run's best checkpoint
# is kept, but a member that blew up says nothing about the configuration's seeds).
ENSEMBLED = (COMPLETED, EARLY_STOPPED)
_DONE: dict[tuple, dict] = {}  # the checkpoint files' identity -> the ensemble's fields


def add_ensembles(rows: list[dict]) -> float:
    """Give every run of a seed group with at least two ENSEMBLED runs its group's ensemble
    fields (the same on each member; runs.group_rows takes them from there): accuracy on val
    and test and test macro-F1, or ENSEMBLE_ERROR saying in one line why there is none.
    Returns the seconds it took."""
    start = time.perf_counter()
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row["status"] in ENSEMBLED:
            groups.setdefault(row["group"], []).append(row)
    for members in groups.values():
        if len(members) < 2:
            continue
        dirs = [Path(m["dir"]) for m in members]
        try:
            fields = ensemble(dirs)
        except (VBenchError, OSError, RuntimeError, ValueError) as e:  # the report goes on
            fields = {ENSEMBLE_ERROR: " ".join(str(e).split()) or type(e).__name__}
        for m in members:
            m.update(fields)
    return time.perf_counter() - start


def ensemble(run_dirs: list[Path]) -> dict:
    """The ensemble fields of these runs' best checkpoints (one configuration, several seeds).
    VBenchError, in one line, when a checkpoint is missing or unreadable, the data cannot be
    read, or the runs do not share their val and test images."""
    files = [d / CHECKPOINTS_DIR / CHECKPOINTS["best"] for d in run_dirs]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise VBenchError(f"no best checkpoint: {', '.join(missing)}")
    key = tuple((str(f.resolve()), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    if key not in _DONE:
        _DONE[key] = _compute(run_dirs)
    return _DONE[key]


def _compute(run_dirs: list[Path]) -> dict:
    import torch

    from ..core.device import resolve_device
    from ..data import load_data
    from ..evaluation.forward import predict
    from ..evaluation.metrics import classification_metrics
    from ..training.checkpoint import load_run_model

    device = resolve_device("auto")
    sums: dict[str, torch.Tensor] = {}
    labels: dict[str, torch.Tensor] = {}
    loaded: dict[tuple, object] = {}  # one dataset read per distinct config and statistics
    for run_dir in run_dirs:
        run = load_run_model(run_dir)
        where = (repr(run.cfg.dataset), tuple(run.mean), tuple(run.std))
        if where not in loaded:
            loaded[where] = load_data(run.cfg.dataset, device, stats=(run.mean, run.std))
        data = loaded[where]
        model = run.model.to(device)
        batch = run.cfg.trainer.eval_batch_size
        for name, split in (("val", data.val), ("test", data.test)):
            if split is None:
                continue
            if name in labels and not torch.equal(labels[name], split.y):
                raise VBenchError(f"{run_dir} was evaluated on other {name} images than "
                                  f"{run_dirs[0]}: its dataset config differs")
            labels[name] = split.y
            probs = predict(model, split, batch, None).softmax(1)
            sums[name] = probs if name not in sums else sums[name] + probs
    scores = {}
    for name, total in sums.items():
        mean = total / len(run_dirs)
        # log of the mean probability as logits: cross-entropy is then the ensemble's NLL.
        logits = mean.clamp_min(torch.finfo(mean.dtype).tiny).log()
        scores[name] = classification_metrics(logits, labels[name])
    test = scores.get("test")
    return {ENSEMBLE_VAL_ACC: scores["val"]["accuracy"],
            ENSEMBLE_TEST_ACC: test["accuracy"] if test else None,
            ENSEMBLE_MACRO_F1: test["macro_f1"] if test else None,
            ENSEMBLE_RUNS: len(run_dirs), ENSEMBLE_ERROR: None}
