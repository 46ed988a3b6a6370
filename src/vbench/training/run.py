"""run(cfg): one configuration trained, evaluated and written, in a few named steps over a
small state object (`Run`):

    prepare (resume state, trackers, device, data)
      -> fit: a network over epochs (`_fit_network`), or a scikit-learn baseline once
      -> evaluate the best and the final weights on val and test
      -> finish (training/finish.py: metrics.json, figures, model card, summary, trackers)

The run directory gets history.csv (rewritten every epoch), checkpoints/best.pt and last.pt
(training/checkpoint.py), plots/, model_card.md, and metrics.json, written last: its presence
with status "completed" (or "early_stopped") means every other file is complete.
"""

import contextlib
import csv
import dataclasses
import io
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from ..core import files
from ..core.columns import (
    ACCURACY,
    EMA_VAL_ACC,
    EMA_VAL_LOSS,
    EPOCH_COLUMNS,
    LOSS,
    MONITORS,
    TRAIN_LOSS,
    epoch_columns,
)
from ..core.console import console, epoch_progress, run_log
from ..core.device import (
    auto_precision,
    autocast_dtype,
    configure_determinism,
    resolve_device,
)
from ..core.errors import VBenchError
from ..core.pause import pause_at
from ..core.rundir import (
    HISTORY_FILE,
    HYDRA_DIR,
    LOCK_FILE,
    LOG_FILE,
    PLOTS_DIR,
    exclusive,
    remove_stale_temps,
)
from ..core.schema import Eval, Root, Trainer, typed
from ..core.status import COMPLETED, DIVERGED, EARLY_STOPPED, FAILED, INTERRUPTED, PRUNED
from ..data import Data, load_data
from ..evaluation.evaluate import Evaluation, evaluate
from ..evaluation.forward import predict
from ..evaluation.metrics import classification_metrics
from ..loggers import Loggers
from ..models import InputSpec, build_model, count_params
from ..models.freeze import apply_freeze
from ..models.sklearn import fit_baseline, is_sklearn
from ..reports.analysis import Trained, analyze, keep_initial, load_extra
from ..reports.figures import Figures, draw_left_over
from ..reports.model_card import Recipe
from . import checkpoint, distributed
from .compile import compile_if_faster, compile_mode, not_compiled
from .ema import WeightsEma
from .features import cache_features, full_model, uses_feature_cache
from .finish import Labels, Outcome, finish, write_unfinished
from .loop import EarlyStopping, StepRecipe, optimizer_steps, train_one_epoch
from .mix import build_mix
from .optim import build_optimizer, build_scheduler
from .resume import finished_metrics, resume_state
from .timing import Phases

# Told each epoch's number and monitored value (trainer.monitor) after the epoch's checkpoints
# are written; True stops the run there with status "pruned" (an Optuna trial asking its
# pruner: commands/study.py). Called on rank 0 only; its answer reaches every rank.
EpochReport = Callable[[int, float], bool]


def run(cfg: DictConfig | Root, run_dir: Path, sweep_job: bool = False,
        epoch_report: EpochReport | None = None) -> dict:
    """Train and evaluate one configuration (composed by Hydra, or already typed); returns
    what metrics.json holds. This is where a run's config becomes typed (schema.typed): the
    steps below get the sections they need. A refusal before
    the run produced anything (missing data, a split that cannot be made) removes the run
    directory, unless the run is a `sweep_job` (the sweep's summary lists it as failed). A
    sweep's job draws its figures in its own process, which trains the next job (a drawer
    beside it slowed a 4-job CPU sweep's training 3x); a single run draws them after
    metrics.json in the background (eval.background_plots)."""
    run_dir = Path(run_dir)
    cfg = typed(cfg)  # bad input changes nothing on disk, a finished run's files included
    main = distributed.is_main()  # under torchrun, rank 0 alone touches the run directory
    refused = []
    try:
        with _owned(run_dir, cfg.trainer.log_every_s) if main else contextlib.nullcontext():
            return _guarded(cfg, run_dir, main, None if sweep_job else refused, sweep_job,
                            epoch_report)
    finally:
        if refused:  # after the lock and the log are let go
            shutil.rmtree(run_dir, ignore_errors=True)


def _guarded(cfg: Root, run_dir: Path, main: bool, refused: list | None,
             sweep_job: bool, epoch_report: EpochReport | None = None) -> dict:
    """The run, with how it ends when it does not finish: interrupted or failed in
    metrics.json; or, refused before it produced anything, no run directory at all (appended
    to `refused`, run() removes it; None: record the refusal as a failure)."""
    fingerprint, labels = checkpoint.config_fingerprint(cfg), _labels(cfg)
    # a finished run of another config is refused
    done = finished_metrics(cfg.trainer.resume, fingerprint, run_dir)
    if done is not None:
        if main:
            draw_left_over(run_dir)
        console.print(f"already finished ({done['status']}): {run_dir}; trainer.resume=false "
                      "trains it again", highlight=False, soft_wrap=True)
        return done
    if main:
        remove_stale_temps(run_dir)
    loggers = Loggers()  # experiment trackers, started once the config is known to be valid
    try:
        pause_at("start")
        metrics = _run(cfg, run_dir, loggers, sweep_job, epoch_report)
    except KeyboardInterrupt:
        if main:
            write_unfinished(labels, run_dir, INTERRUPTED, "interrupted by the user")
        loggers.close(INTERRUPTED)
        distributed.close(finished=False)
        raise
    except Exception as e:
        if (main and refused is not None and isinstance(e, VBenchError)
                and _holds_only_its_start(run_dir)):
            refused.append(run_dir)
        elif main:
            write_unfinished(labels, run_dir, FAILED, f"{type(e).__name__}: {e}")
        loggers.close(FAILED)
        distributed.close(finished=False)
        raise
    distributed.close(finished=True)
    return metrics


# What a run directory holds before the run produced anything: Hydra's record of the config,
# the log and the lock.
_START_FILES = {HYDRA_DIR, LOG_FILE, LOCK_FILE}


def _holds_only_its_start(run_dir: Path) -> bool:
    return {p.name for p in run_dir.iterdir()} <= _START_FILES


@contextlib.contextmanager
def _owned(run_dir: Path, log_every_s):
    """One writer (a second process stops here at once); everything the run prints, and the
    error that ends it, also goes to vbench.log."""
    with exclusive(run_dir), run_log(run_dir, log_every_s):
        yield


def _labels(cfg: Root) -> Labels:
    return Labels(cfg.dataset.name, cfg.model.name, cfg.trainer.seed, cfg.run.name,
                  list(cfg.run.tags))


def _run(cfg: Root, run_dir: Path, loggers: Loggers, sweep_job: bool,
         epoch_report: EpochReport | None) -> dict:
    run = _prepare(cfg, run_dir, loggers)
    run.sweep_job, run.epoch_report = sweep_job, epoch_report
    outcome = _fit_baseline(cfg, run) if is_sklearn(cfg.model) else _fit_network(cfg, run)
    # Evaluation and every file are rank 0's; the other ranks get its metrics.
    return distributed.broadcast(finish(run, outcome) if distributed.is_main() else None)


@dataclass
class Run:
    """What the steps of one run share: the sections of its config they all read, and what
    preparing it produced. The steps in this file get the typed config (`cfg`) as well."""

    trainer: Trainer
    eval: Eval
    labels: Labels  # what names the run in metrics.json and the summaries
    fingerprint: dict  # the config its numbers belong to (checkpoint.config_fingerprint)
    recipe: Recipe  # how it trained, for model_card.md
    dir: Path
    loggers: Loggers
    phases: Phases = field(default_factory=Phases)  # seconds per phase, for metrics.json
    resumed: dict | None = None  # last.pt of an interrupted run of this config
    device: torch.device | None = None
    amp_dtype: torch.dtype | None = None  # autocast's dtype; None: float32
    precision_reason: str = "trainer.precision"  # why amp_dtype (metrics.json)
    data: Data | None = None
    about: dict | None = None  # checkpoint.describe: what every checkpoint carries
    world_size: int = 1  # processes of a torchrun job
    sweep_job: bool = False  # one job of a sweep (run())
    compile: dict | None = None  # trainer.compile's measurement (compile.py), for metrics.json
    epoch_report: EpochReport | None = None  # an Optuna trial's pruning question (run())


def _new(cfg: Root, run_dir: Path, loggers: Loggers) -> Run:
    t = cfg.trainer
    return Run(t, cfg.eval, _labels(cfg), checkpoint.config_fingerprint(cfg),
               Recipe(cfg.model.arch, cfg.optimizer.name, cfg.scheduler.name, t.epochs,
                      t.batch_size, cfg.freeze.policy, cfg.dataset.augment), run_dir, loggers)


def new_run(cfg: Root, run_dir: Path, data: Data, device: torch.device) -> Run:
    """The state of one member of a stack of seeds (training/stack.py): a sweep job's, on data
    the stack loaded once, in float32, its trackers started."""
    run = _new(cfg, Path(run_dir), Loggers())
    run.device, run.data, run.sweep_job = device, data, True
    run.precision_reason = "the stack of seeds trains in float32"
    run.loggers.start(cfg.logger, dataclasses.asdict(cfg), run.dir)
    run.about = checkpoint.describe(run.fingerprint, data)
    return run


def _prepare(cfg: Root, run_dir: Path, loggers: Loggers) -> Run:
    t = cfg.trainer
    run = _new(cfg, run_dir, loggers)
    # a foreign or corrupt last.pt fails before any work
    run.resumed = resume_state(t.resume, run.fingerprint, run_dir)
    run.device = distributed.device_for(resolve_device(t.device))
    if run.device.type == "cuda":
        torch.empty(0, device=run.device)  # CUDA's context, made here so `device` times it
    run.phases.lap("device")
    run.amp_dtype = autocast_dtype(t.precision, run.device)
    configure_determinism(t.deterministic, run.device)
    torch.manual_seed(t.seed)  # weight init; batch order has its own generator (_epochs)
    run.data = load_data(cfg.dataset, run.device)
    if distributed.is_main():  # after the data: a refused dataset leaves no tracker run behind
        # a logger whose package is missing fails here
        loggers.start(cfg.logger, dataclasses.asdict(cfg), run_dir)
    run.phases.lap("data")
    run.about = checkpoint.describe(run.fingerprint, run.data)
    run.world_size = distributed.world_size()
    return run


def _fit_baseline(cfg: Root, run: Run) -> Outcome | None:
    """A scikit-learn baseline: one fit (rank 0's alone), no epochs, best = final."""
    if not distributed.is_main():
        return None
    run.amp_dtype, run.precision_reason = None, "scikit-learn: the estimator's own (numpy)"
    mode = compile_mode(cfg.trainer.compile)
    if mode is not None:  # said, as precision_reason says why precision does not apply
        run.compile = not_compiled(mode, "does not apply: a scikit-learn baseline has no "
                                         "torch training step")
        console.print(f"trainer.compile={mode} does not apply to {cfg.model.name} (a "
                      "scikit-learn baseline): fitted as it is", highlight=False)
    start = time.perf_counter()
    model = fit_baseline(cfg.model, run.trainer, run.data)
    train_time = time.perf_counter() - start
    run.phases.lap("training")
    result = evaluate(model, run.data, run.trainer.eval_batch_size, None)
    checkpoint.save_fitted(run.dir, model.checkpoint_state(), run.about)
    return Outcome(model, result, result, COMPLETED, epochs_run=1, best_epoch=1, monitor=None,
                   train_time_s=train_time,
                   analysis=lambda: ({}, _confusion_only(cfg, run, result)))


def _confusion_only(cfg: Root, run: Run, result: Evaluation) -> Figures:
    figures, data = Figures(run.dir), run.data
    if result.test_logits is not None:
        figures.add("plot_confusion", data.test.y.cpu().numpy(),
                    result.test_logits.argmax(1).cpu().numpy(), data.classes,
                    f"{cfg.model.name}, test split", run.dir / PLOTS_DIR / "confusion.png")
    return figures


def _fit_network(cfg: Root, run: Run) -> Outcome | None:
    """Build the network, train it over epochs, and (rank 0) evaluate its best and final
    weights; None on the other ranks of a torchrun job."""
    data = run.data
    # before training, so a shape mismatch fails now
    extra = load_extra(cfg.eval.extra, cfg.dataset, data, run.device)
    model = build_model(cfg.model, InputSpec.of(data)).to(run.device)
    initial = keep_initial(cfg.eval.plots, model)  # the untrained weights, for t-SNE, weights
    if cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    apply_freeze(model, cfg.freeze)
    if cfg.trainer.precision == "auto":
        run.amp_dtype, run.precision_reason = auto_precision(run.device,
                                                             count_params(model)["total"])
    training = _training(cfg, run, model)
    title = (f"{cfg.model.name} on {cfg.dataset.name}: {len(data.train)} train / {len(data.val)} "
             f"val images, {run.device}, up to {cfg.trainer.epochs} epochs")
    batches = training.data.train.num_batches(cfg.trainer.batch_size, drop_single=True,
                                              world=run.world_size)
    with epoch_progress(cfg.trainer.epochs, title, batches, cfg.trainer.monitor) as report:
        history, status, stopper = _epochs(run, training, report)
    train_time = training.cache_s + sum(row["epoch_s"] for row in history)  # resumed ones too
    run.phases.lap("training")
    if not distributed.is_main():
        return None
    best, final = _best_and_final(run, model, stopper.best_epoch, len(history))
    ema = _ema_best_and_final(run, training.recipe.ema, stopper.best_epoch, len(history))
    trained = Trained(model, history, stopper.best_epoch,
                      best.test_logits if best is not None else None, initial, extra)
    return Outcome(model, best, final, status, len(history), stopper.best_epoch,
                   cfg.trainer.monitor, train_time, ema=ema,
                   analysis=lambda: analyze(cfg.eval, cfg.trainer, run.dir, data, trained,
                                            run.amp_dtype))


@dataclass
class Training:
    """The network in training and how each of its steps is taken."""

    model: nn.Module  # what the loop calls: the model, inside DDP / torch.compile, or its head
    data: Data  # what it trains on: the images, or a frozen backbone's cached features
    recipe: StepRecipe
    scheduler: object | None  # stepped per epoch unless the recipe steps it per batch
    cache_s: float  # seconds the feature cache took (training time)


def _training(cfg: Root, run: Run, model: nn.Module) -> Training:
    t = cfg.trainer
    optimizer = build_optimizer(cfg.optimizer, model)
    steps = optimizer_steps(run.data.train, t.batch_size, t.accumulate, run.world_size)
    scheduler, per_step = build_scheduler(cfg.scheduler, optimizer, t.epochs, steps)
    run.phases.lap("setup")  # the model, and torch._dynamo, which the first optimizer imports
    # A frozen backbone without augmentation runs once; only its head trains (features.py).
    start = time.perf_counter()
    trainee, fit_data = model, run.data
    if uses_feature_cache(cfg.freeze, cfg.dataset, t):
        trainee, fit_data = cache_features(model, run.data, t.eval_batch_size, run.amp_dtype)
    cache_s = time.perf_counter() - start
    scaler = torch.amp.GradScaler(run.device.type, enabled=run.amp_dtype == torch.float16)
    # The EMA averages what the loop trains (the head alone on cached features), before DDP
    # and torch.compile wrap it.
    ema = WeightsEma(trainee, t.ema, t.ema_warmup) if t.ema is not None else None
    recipe = StepRecipe(optimizer, scaler, scheduler if per_step else None, run.amp_dtype,
                        t.label_smoothing, t.grad_clip,
                        t.channels_last and fit_data.train.x.ndim == 4, run.data.augment,
                        t.accumulate, distributed.shard(), build_mix(t, run.data.num_classes),
                        ema)
    trained = distributed.wrap(trainee, run.device)  # DDP under torchrun
    mode = compile_mode(t.compile)
    if mode is not None:
        trained, run.compile = compile_if_faster(
            trained, mode, fit_data.train, t.batch_size, run.amp_dtype, recipe.channels_last,
            earlier=(run.resumed or {}).get("compile"), deterministic=t.deterministic)
        run.about["compile"] = run.compile  # in every checkpoint: a resumed run keeps it
        run.phases.lap("compile")  # compiling and measuring it against eager
    return Training(trained, fit_data, recipe, scheduler, cache_s)


def _epochs(run: Run, training: Training, report):
    """The epoch loop: train, validate, keep the best checkpoint, stop early or on divergence.
    An interrupted run's last.pt (run.resumed) puts every piece of state back first; each
    epoch's row goes to the console (`report`) and the experiment trackers."""
    t, main = run.trainer, distributed.is_main()
    generator = torch.Generator(device=training.data.train.x.device).manual_seed(t.seed)
    stopper = EarlyStopping(MONITORS[t.monitor], t.patience, t.min_delta)
    history, status, first_epoch = [], COMPLETED, 1
    live = {"model": training.model, "optimizer": training.recipe.optimizer,
            "scheduler": training.scheduler, "stopper": stopper, "history": history,
            "generator": generator, "ema": training.recipe.ema}  # what last.pt holds
    columns = epoch_columns(training.recipe.ema is not None)  # history.csv's
    if run.resumed is not None:
        restored, first_epoch = checkpoint.restore_last(run.resumed, live)
        history.extend(restored)
        _write_history(history, run.dir / HISTORY_FILE, columns)  # a kill may have cut it
        if stopper.should_stop:
            status = EARLY_STOPPED
    report.restored(len(history), checkpoint.path_of(run.dir, "final"))
    for row in history:
        run.loggers.log_epoch(row)
        if run.epoch_report is not None and main:  # a trial run again: its restored epochs
            run.epoch_report(row["epoch"], row[t.monitor])
    for epoch in range(first_epoch, t.epochs + 1):
        if status != COMPLETED:
            break
        row = _epoch(run, training, epoch, generator, report)
        history.append(row)
        report(row)
        run.loggers.log_epoch(row)
        if main:
            _write_history(history, run.dir / HISTORY_FILE, columns)
        if not math.isfinite(row[TRAIN_LOSS]):
            console.print(f"diverged: the training loss is {row[TRAIN_LOSS]} at epoch {epoch}",
                          highlight=False)
            status = DIVERGED
            break
        if stopper.update(row[t.monitor], epoch) and main:
            checkpoint.save_best(run.dir, training.model, epoch, t.monitor, stopper.best,
                                 run.about, training.recipe.ema)
        if main:
            checkpoint.save_last(run.dir, epoch, live, run.about)
        pause_at(f"epoch:{epoch}")
        if stopper.should_stop:
            console.print(f"early stopping: {t.monitor} has not improved for {t.patience} epochs; "
                          f"best epoch {stopper.best_epoch}", highlight=False, soft_wrap=True)
            status = EARLY_STOPPED
            break
        if run.epoch_report is not None and distributed.broadcast(
                run.epoch_report(epoch, row[t.monitor]) if main else None):
            console.print(f"pruned: the search's pruner stopped this trial after epoch {epoch} "
                          f"({t.monitor} {row[t.monitor]:.4f})", highlight=False, soft_wrap=True)
            status = PRUNED
            break
    return history, status, stopper


def _epoch(run: Run, training: Training, epoch: int, generator, report) -> dict:
    """One epoch: a training pass, then the whole val split (rank 0's, shared with every rank,
    so early stopping and the best epoch are one decision); its history.csv row."""
    t, recipe = run.trainer, training.recipe
    start = time.perf_counter()
    lr = recipe.optimizer.param_groups[0]["lr"]
    train_loss, train_acc = distributed.mean_over_ranks(*train_one_epoch(
        training.model, training.data.train, t.batch_size, recipe, generator, report.batch))
    if training.scheduler is not None and recipe.per_step_scheduler is None:
        training.scheduler.step()
    val = ema_val = None
    if distributed.is_main():
        val_split = training.data.val
        val = classification_metrics(predict(distributed.unwrap(training.model), val_split,
                                             t.eval_batch_size, run.amp_dtype), val_split.y)
        if recipe.ema is not None:
            ema_val = classification_metrics(predict(recipe.ema.module, val_split,
                                                     t.eval_batch_size, run.amp_dtype),
                                             val_split.y)
    val = distributed.broadcast(val)
    values = (epoch, train_loss, train_acc, val[LOSS], val[ACCURACY], lr,
              time.perf_counter() - start)
    row = dict(zip(EPOCH_COLUMNS, values, strict=True))
    if recipe.ema is None:
        return row
    ema_val = distributed.broadcast(ema_val)
    row |= {EMA_VAL_LOSS: ema_val[LOSS], EMA_VAL_ACC: ema_val[ACCURACY]}
    return {column: row[column] for column in epoch_columns(True)}


def _best_and_final(run: Run, model: nn.Module, best_epoch: int, epochs_run: int):
    """Final = the weights after the last epoch; best = the epoch the val metric chose (the
    same weights, evaluated once, when the last epoch was the best; None when none was)."""
    batch_size = run.trainer.eval_batch_size
    final = evaluate(model, run.data, batch_size, run.amp_dtype)
    if best_epoch == epochs_run:
        return final, final
    if not best_epoch:
        return None, final
    model.load_state_dict(files.load_torch(checkpoint.path_of(run.dir, "best"))["model"])
    return evaluate(model, run.data, batch_size, run.amp_dtype), final


def _ema_best_and_final(run: Run, ema: WeightsEma | None, best_epoch: int,
                        epochs_run: int) -> dict | None:
    """metrics.json `ema`: the EMA weights evaluated as `best` and `final` are (the EMA at the
    best epoch is best.pt's `model_ema`); None without trainer.ema."""
    if ema is None:
        return None
    batch_size, model = run.trainer.eval_batch_size, full_model(ema.module)
    final = evaluate(model, run.data, batch_size, run.amp_dtype)
    best = final if best_epoch == epochs_run else None
    if best_epoch and best is None:
        model.load_state_dict(files.load_torch(checkpoint.path_of(run.dir, "best"))["model_ema"])
        best = evaluate(model, run.data, batch_size, run.amp_dtype)
    return {"decay": run.trainer.ema, "best": best.metrics() if best is not None else None,
            "final": final.metrics()}


def _write_history(history: list[dict], path: Path, columns=EPOCH_COLUMNS) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    files.write_text(path, buffer.getvalue())
