"""run(cfg): seed -> data -> model -> freeze -> optimizer -> epochs -> evaluate best & final -> write.

The run directory gets history.csv (rewritten every epoch), checkpoints/best.pt and last.pt
(self-contained: checkpoint.py), plots/, model_card.md, and metrics.json, written last: its
presence with status "completed" (or "early_stopped") means every other file is complete.
"""

import contextlib
import csv
import io
import math
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from ..core import files
from ..core.console import console, epoch_progress, print_summary, run_log
from ..core.device import autocast_dtype, configure_determinism, resolve_device
from ..core.errors import VBenchError
from ..core.pause import pause_at
from ..core.schema import MONITORS, validate
from ..data import load_data
from ..evaluation.evaluate import evaluate, summary, versions
from ..evaluation.metrics import classification_metrics
from ..evaluation.predict import predict
from ..loggers import Loggers
from ..models import InputSpec, build_model
from ..models.freeze import apply_freeze
from ..models.sklearn import is_sklearn, run_sklearn
from ..reports import model_card
from ..reports.analysis import analyze, keep_initial, load_extra
from . import distributed
from .checkpoint import describe
from .features import cache_features, uses_feature_cache
from .loop import EarlyStopping, StepRecipe, optimizer_steps, train_one_epoch
from .optim import build_optimizer, build_scheduler
from .resume import finished_metrics, resume_state
from .rundir import exclusive, remove_stale_temps
from .timing import Phases


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Train and evaluate one configuration; returns what metrics.json holds."""
    run_dir = Path(run_dir)
    validate(cfg)  # bad input changes nothing on disk, a finished run's files included
    main = distributed.is_main()  # under torchrun, rank 0 alone touches the run directory
    with _owned(run_dir, cfg.trainer.log_every_s) if main else contextlib.nullcontext():
        done = finished_metrics(cfg, run_dir)  # refuses a finished run of another config
        if done is not None:
            console.print(f"already finished ({done['status']}): {run_dir}; trainer.resume=false "
                          "trains it again", highlight=False, soft_wrap=True)
            return done
        if main:
            remove_stale_temps(run_dir)
        loggers = Loggers()  # experiment trackers, started once the config is known to be valid
        try:
            pause_at("start")
            metrics = _run(cfg, run_dir, loggers)
        except KeyboardInterrupt:
            if main:
                _write_unfinished(cfg, run_dir, "interrupted", "interrupted by the user")
            loggers.close("interrupted")
            distributed.close(finished=False)
            raise
        except Exception as e:
            if main:
                _write_unfinished(cfg, run_dir, "failed", f"{type(e).__name__}: {e}")
            loggers.close("failed")
            distributed.close(finished=False)
            raise
        distributed.close(finished=True)
        return metrics


@contextlib.contextmanager
def _owned(run_dir: Path, log_every_s):
    """One writer (a second process stops here at once); everything the run prints, and the
    error that ends it, also goes to vbench.log."""
    with exclusive(run_dir), run_log(run_dir, log_every_s):
        yield


def _run(cfg: DictConfig, run_dir: Path, loggers: Loggers) -> dict:
    phases = Phases()
    resumed = resume_state(cfg, run_dir)  # a foreign or corrupt last.pt fails before any work
    if distributed.is_main():
        loggers.start(cfg, run_dir)  # a logger whose package is missing fails here
    t = cfg.trainer
    device = distributed.device_for(resolve_device(t.device))
    amp_dtype = autocast_dtype(t.precision, device)
    configure_determinism(t.deterministic, device)
    torch.manual_seed(t.seed)  # weight init; batch order has its own generator below

    data = load_data(cfg.dataset, device)
    phases.lap("data")
    if is_sklearn(cfg.model):  # scikit-learn baselines: one fit, no epochs (baselines.py)
        metrics = (run_sklearn(cfg, data, run_dir, describe(cfg, data))  # rank 0's alone
                   if distributed.is_main() else None)
        return distributed.broadcast(loggers.finish(metrics, run_dir))
    extra = load_extra(cfg, data, device)  # before training, so a shape mismatch fails now
    spec = InputSpec(data.in_channels, data.image_size, data.num_classes,
                     tuple(data.mean), tuple(data.std))
    model = build_model(cfg.model, spec).to(device)
    initial = keep_initial(cfg, model)  # the untrained weights, for t-SNE and weight plots
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    apply_freeze(model, cfg.freeze)
    optimizer = build_optimizer(cfg.optimizer, model)
    scheduler, per_step = build_scheduler(cfg.scheduler, optimizer, t.epochs,
                                          optimizer_steps(data.train, t.batch_size,
                                                          t.accumulate,
                                                          distributed.world_size()))

    phases.lap("setup")  # the model, and torch._dynamo, which the first optimizer imports
    # A frozen backbone without augmentation runs once; only its head trains (features.py).
    start = time.perf_counter()
    trainee, fit_data = model, data
    if uses_feature_cache(cfg):
        trainee, fit_data = cache_features(model, data, t.eval_batch_size, amp_dtype)
    cache_s = time.perf_counter() - start
    recipe = StepRecipe(optimizer, torch.amp.GradScaler(device.type,
                                                        enabled=amp_dtype == torch.float16),
                        scheduler if per_step else None, amp_dtype, t.label_smoothing,
                        t.grad_clip, t.channels_last and fit_data.train.x.ndim == 4,
                        data.augment, t.accumulate, distributed.shard())
    trained = distributed.wrap(trainee, device)  # DDP under torchrun
    trained = torch.compile(trained) if t.compile else trained  # shares the parameters
    title = (f"{cfg.model.name} on {cfg.dataset.name}: {len(data.train)} train / {len(data.val)} "
             f"val images, {device}, up to {t.epochs} epochs")
    with epoch_progress(t.epochs, title, fit_data.train.num_batches(t.batch_size, drop_single=True, world=distributed.world_size())) as report:
        history, status, stopper = _fit(cfg, trained, fit_data, recipe, scheduler, run_dir,
                                        report, resumed, loggers.log_epoch, describe(cfg, data))
    train_time = cache_s + sum(row["epoch_s"] for row in history)  # resumed epochs count too
    phases.lap("training")
    if not distributed.is_main():  # evaluation and every file are rank 0's
        return distributed.broadcast(None)

    # Final = the weights after the last epoch; best = the epoch the val metric chose (the
    # same weights, evaluated once, when the last epoch was the best).
    final, best = evaluate(model, data, t.eval_batch_size, amp_dtype), None
    if stopper.best_epoch == len(history):
        best = final
    elif stopper.best_epoch:
        model.load_state_dict(files.load_torch(run_dir / "checkpoints/best.pt")["model"])
        best = evaluate(model, data, t.eval_batch_size, amp_dtype)
    metrics = summary(
        cfg, data, best, final, amp_dtype, status=status,
        params={"total": sum(p.numel() for p in model.parameters()),
                "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)},
        epochs_run=len(history), best_epoch=stopper.best_epoch, monitor=t.monitor,
        train_time_s=train_time)
    phases.lap("evaluation")
    best_test_logits = best.test_logits if best is not None else None
    metrics.update(analyze(cfg, run_dir, model, data, history, stopper.best_epoch,
                           best_test_logits, amp_dtype, initial, extra))
    phases.lap("plots")  # and the eval.extra / eval.shift_pixels probes when asked
    metrics["timings"] = phases.timings
    model_card.write(run_dir, cfg, metrics)
    files.write_json(run_dir / "metrics.json", metrics)
    print_summary(metrics, run_dir)
    return distributed.broadcast(loggers.finish(metrics, run_dir))


def _fit(cfg, model, data, recipe: StepRecipe, scheduler, run_dir, report, resumed, log_epoch,
         about):
    """The epoch loop: train, validate, keep the best checkpoint, stop early or on divergence.
    `resumed` (last.pt of an interrupted run, or None) puts every piece of state back first;
    each epoch's row goes to the console (`report`) and the experiment trackers (`log_epoch`);
    `about` (checkpoint.describe) goes into both checkpoints, so they stand on their own."""
    t = cfg.trainer
    optimizer, amp_dtype = recipe.optimizer, recipe.amp_dtype
    generator = torch.Generator(device=data.train.x.device).manual_seed(t.seed)
    stopper = EarlyStopping(MONITORS[t.monitor], t.patience, t.min_delta)
    history, status, first_epoch = [], "completed", 1
    if resumed is not None:
        _state_module(model).load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(resumed["scheduler"])
        torch.set_rng_state(resumed["rng"]["torch"])
        generator.set_state(resumed["rng"]["batches"])
        vars(stopper).update(resumed["early_stopping"])
        history, first_epoch = list(resumed["history"]), resumed["epoch"] + 1
        _write_history(history, run_dir / "history.csv")  # a kill may have cut it short
        console.print(f"resuming after epoch {resumed['epoch']} from {run_dir}/checkpoints/last.pt",
                      highlight=False, soft_wrap=True)
        if stopper.should_stop:
            status = "early_stopped"
    for row in history:
        report(row)
        log_epoch(row)
    for epoch in range(first_epoch, t.epochs + 1):
        if status != "completed":
            break
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = distributed.mean_over_ranks(
            *train_one_epoch(model, data.train, t.batch_size, recipe, generator, report.batch))
        if scheduler is not None and recipe.per_step_scheduler is None:
            scheduler.step()
        val = None
        if distributed.is_main():  # the whole val split, once; one decision for every rank
            val = classification_metrics(
                predict(distributed.unwrap(model), data.val, t.eval_batch_size, amp_dtype),
                data.val.y)
        val = distributed.broadcast(val)
        row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
               "val_loss": val["loss"], "val_acc": val["accuracy"], "lr": lr,
               "epoch_s": time.perf_counter() - start}
        history.append(row)
        report(row)
        log_epoch(row)
        if distributed.is_main():
            _write_history(history, run_dir / "history.csv")
        if not math.isfinite(train_loss):
            console.print(f"diverged: the training loss is {train_loss} at epoch {epoch}",
                          highlight=False)
            status = "diverged"
            break
        if stopper.update(row[t.monitor], epoch) and distributed.is_main():
            files.save_torch(run_dir / "checkpoints/best.pt",
                             {"model": _state(model), "epoch": epoch, t.monitor: stopper.best,
                              **about})
        if distributed.is_main():
            files.save_torch(run_dir / "checkpoints/last.pt", {
                "model": _state(model), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "epoch": epoch, "early_stopping": vars(stopper).copy(), "history": history,
                "rng": {"torch": torch.get_rng_state(), "batches": generator.get_state()},
                **about,  # its "config" is the fingerprint resume compares
            })
        pause_at(f"epoch:{epoch}")
        if stopper.should_stop:
            console.print(f"early stopping: {t.monitor} has not improved for {t.patience} epochs; "
                          f"best epoch {stopper.best_epoch}", highlight=False, soft_wrap=True)
            status = "early_stopped"
            break
    return history, status, stopper


def _state_module(model):
    """The model itself, also when it runs through torch.compile or DDP."""
    return distributed.unwrap(getattr(model, "_orig_mod", model))


def _state(model) -> dict:
    return _state_module(model).state_dict()


def _write_history(history: list[dict], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    files.write_text(path, buffer.getvalue())


def _write_unfinished(cfg, run_dir: Path, status: str, error: str) -> None:
    """A run that did not finish says so: metrics.json never claims completion. Best effort:
    the disk that failed the run may fail this write too, and the first error is the one to
    report."""
    with contextlib.suppress(OSError, VBenchError):
        files.write_json(run_dir / "metrics.json", {
            "status": status, "error": error,
            "dataset": cfg.dataset.get("name"), "model": cfg.model.get("name"),
            "seed": cfg.trainer.get("seed"), "name": cfg.run.name, "tags": list(cfg.run.tags),
            "versions": versions(),
        })

