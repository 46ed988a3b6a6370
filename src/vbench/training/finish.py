"""How a run ends, for networks and scikit-learn baselines alike: metrics.json (written
atomically after every other file: its presence with a finished status means they are
complete, except plots/ while a background process draws it: reports/figures.py), the
figures, model_card.md, the console summary and the experiment trackers. A run that did not
finish says so instead (`write_unfinished`)."""

import contextlib
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

from ..core import files
from ..core.console import console, print_summary
from ..core.errors import VBenchError
from ..core.rundir import METRICS_FILE, held_fd
from ..evaluation.evaluate import Evaluation
from ..evaluation.metrics import per_class_accuracy
from ..reports import model_card
from ..reports.figures import Figures


@dataclass(frozen=True)
class Labels:
    """What names a run in metrics.json, finished or not: its dataset and model, its seed and
    the user's labels (run.name, run.tags)."""

    dataset: str
    model: str
    seed: int
    name: str | None
    tags: list[str]


@dataclass
class Outcome:
    """What fitting produced: the model as evaluated, best and final, and what metrics.json
    says of the fit. `analysis()` runs the probes and returns what they add to metrics and
    the figures to draw."""

    model: torch.nn.Module
    best: Evaluation | None  # None: no epoch was best (every val value was NaN)
    final: Evaluation
    status: str
    epochs_run: int
    best_epoch: int
    monitor: str | None
    train_time_s: float
    analysis: Callable[[], tuple[dict, Figures]]
    ema: dict | None = None  # trainer.ema: the EMA weights' best and final evaluations


def finish(run, outcome: Outcome) -> dict:
    """Write and show the end of `run` (training/run.Run); returns what metrics.json holds."""
    from ..models import count_params

    metrics = summary(run, outcome.best, outcome.final, status=outcome.status,
                      params=count_params(outcome.model), epochs_run=outcome.epochs_run,
                      best_epoch=outcome.best_epoch, monitor=outcome.monitor,
                      train_time_s=outcome.train_time_s, ema=outcome.ema)
    run.phases.lap("evaluation")
    probes, figures = outcome.analysis()
    metrics.update(probes)
    background = _draw_in_background(run)
    if not background:
        figures.draw()
    run.phases.lap("plots")  # with the eval.extra / eval.shift_pixels probes; in the background:
    metrics["timings"] = run.phases.timings  # only preparing the figures' data
    model_card.write(run.dir, metrics, run.recipe)
    files.write_json(run.dir / METRICS_FILE, metrics)
    if background:
        try:
            figures.draw_detached(held_fd(run.dir))
        except (OSError, ValueError, TypeError) as e:  # the run is complete: draw them here
            console.print(f"figures: no background drawer ({e}); drawing them now",
                          highlight=False, soft_wrap=True)
            figures.draw()
    print_summary(metrics, run.dir)
    return run.loggers.finish(metrics, run.dir)


def _draw_in_background(run) -> bool:
    """Whether the figures are drawn after metrics.json by a detached process: for a single
    run whose user waits at a terminal (eval.background_plots=auto), outside SLURM, whose job
    end kills what the job started. A sweep's job draws its own (a drawer beside the next job
    slowed it 3x on 2 cores), and so does a run with a tracker (it logs plots/)."""
    setting = run.eval.background_plots
    if setting is False or run.sweep_job or run.loggers.active:
        return False
    return setting is True or (console.is_terminal and "SLURM_JOB_ID" not in os.environ)


def summary(run, best: Evaluation | None, final: Evaluation, ema: dict | None = None,
            **fields) -> dict:
    """metrics.json: the keys every kind of run shares around `fields`, which differ (status,
    params, epochs_run, best_epoch, monitor, train_time_s). Per-class accuracy and the timing
    are the best checkpoint's (the final weights' when no epoch was best). `best` and `final`
    are the trained weights; with trainer.ema, `ema` holds the EMA weights' alike."""
    labels, data = run.labels, run.data
    chosen = best or final
    return {
        "status": fields.pop("status"),
        "dataset": labels.dataset,
        "model": labels.model,
        "device": str(data.train.x.device),
        "threads": torch.get_num_threads(),  # intra-op threads: parallel launchers lower it
        "world_size": run.world_size,  # processes of a torchrun job
        "data": {"in_memory": data.in_memory, "normalization": data.normalization},
        "seed": labels.seed,
        "name": labels.name,  # run.name and run.tags: the user's labels
        "tags": list(labels.tags),
        **fields,
        "best": best.metrics() if best is not None else None,
        "final": final.metrics(),
        **({"ema": ema} if ema is not None else {}),
        "per_class_accuracy": (per_class_accuracy(best.test_logits, data.test.y, data.classes)
                               if best is not None and best.test_logits is not None else None),
        "inference_ms_per_image": chosen.inference_ms_per_image,
        "precision": str(run.amp_dtype or torch.float32).removeprefix("torch."),
        "precision_reason": run.precision_reason,
        "compile": run.compile,  # trainer.compile: eager and compiled step times, the choice
        "sizes": {"train": len(data.train), "val": len(data.val),
                  "test": len(data.test) if data.test is not None else 0},
        "classes": data.classes,
        "config": run.fingerprint,  # what these numbers belong to (resume.py checks it)
        "versions": versions(),
    }


def write_unfinished(labels: Labels, run_dir: Path, status: str, error: str) -> None:
    """A run that did not finish says so: metrics.json never claims completion. Best effort:
    the disk that failed the run may fail this write too, and the first error is the one to
    report."""
    with contextlib.suppress(OSError, VBenchError):
        files.write_json(run_dir / METRICS_FILE, {
            "status": status, "error": error,
            "dataset": labels.dataset, "model": labels.model,
            "seed": labels.seed, "name": labels.name, "tags": list(labels.tags),
            "versions": versions(),
        })


def versions() -> dict:
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    names = ("vbench", "torch", "torchvision", "timm", "scikit-learn", "hydra-core")
    return {**{name: version(name) for name in names}, "python": platform.python_version()}
