"""run(cfg): seed -> data -> model -> freeze -> optimizer -> epochs -> evaluate best & final -> write.

The run directory gets history.csv (rewritten every epoch), checkpoints/best.pt and last.pt,
plots/, and metrics.json, written last: its presence with status "completed" (or
"early_stopped") means every other file is complete.
"""

import csv
import io
import math
import platform
import time
from importlib import metadata
from pathlib import Path

import torch
from omegaconf import DictConfig

from . import distributed, files
from .analysis import analyze, keep_initial, load_extra
from .baselines import is_sklearn, run_sklearn
from .console import console, epoch_progress, print_summary
from .data import load_data
from .device import autocast_dtype, configure_determinism, resolve_device
from .features import cache_features, uses_feature_cache
from .freeze import apply_freeze
from .metrics import classification_metrics, per_class_accuracy
from .models import InputSpec, build_model
from .optim import build_optimizer, build_scheduler
from .resume import config_fingerprint, finished_metrics, resume_state
from .train import EarlyStopping, StepRecipe, optimizer_steps, predict, train_one_epoch
from .validate import MONITORS, validate


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Train and evaluate one configuration; returns what metrics.json holds."""
    run_dir = Path(run_dir)
    done = finished_metrics(cfg, run_dir)
    if done is not None:
        console.print(f"already finished ({done['status']}): {run_dir}; trainer.resume=false "
                      "trains it again", highlight=False, soft_wrap=True)
        return done
    try:
        return _run(cfg, run_dir)
    except KeyboardInterrupt:
        if distributed.is_main():
            _write_unfinished(cfg, run_dir, "interrupted", "interrupted by the user")
        raise
    except Exception as e:
        if distributed.is_main():
            _write_unfinished(cfg, run_dir, "failed", f"{type(e).__name__}: {e}")
        raise
    finally:
        distributed.close()


def _run(cfg: DictConfig, run_dir: Path) -> dict:
    validate(cfg)
    resumed = resume_state(cfg, run_dir)  # a foreign or corrupt last.pt fails before any work
    t = cfg.trainer
    device = distributed.device_for(resolve_device(t.device))
    amp_dtype = autocast_dtype(t.precision, device)
    configure_determinism(t.deterministic, device)
    torch.manual_seed(t.seed)  # weight init; batch order has its own generator below

    data = load_data(cfg.dataset, device)
    if is_sklearn(cfg.model):  # scikit-learn baselines: one fit, no epochs (baselines.py)
        return distributed.broadcast(run_sklearn(cfg, data, run_dir)  # rank 0's alone
                                     if distributed.is_main() else None)
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
                                                          t.get("accumulate", 1),
                                                          distributed.world_size()))

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
                        data.augment, t.get("accumulate", 1), distributed.shard())
    trained = distributed.wrap(trainee, device)  # DDP under torchrun
    trained = torch.compile(trained) if t.compile else trained  # shares the parameters
    title = (f"{cfg.model.name} on {cfg.dataset.name}: {len(data.train)} train / {len(data.val)} "
             f"val images, {device}, up to {t.epochs} epochs")
    with epoch_progress(t.epochs, title) as report:
        history, status, stopper = _fit(cfg, trained, fit_data, recipe, scheduler, run_dir,
                                        report, resumed)
    train_time = cache_s + sum(row["epoch_s"] for row in history)  # resumed epochs count too
    if not distributed.is_main():  # evaluation and every file are rank 0's
        return distributed.broadcast(None)

    # Final = the weights after the last epoch; best = the epoch the val metric chose.
    final, _ = _evaluate(model, data, t.eval_batch_size, amp_dtype)
    best, best_test_logits = None, None
    if stopper.best_epoch:
        model.load_state_dict(files.load_torch(run_dir / "checkpoints/best.pt")["model"])
        best, best_test_logits = _evaluate(model, data, t.eval_batch_size, amp_dtype)
    metrics = summary(
        cfg, data, model, amp_dtype, best_test_logits, status=status,
        params={"total": sum(p.numel() for p in model.parameters()),
                "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)},
        epochs_run=len(history), best_epoch=stopper.best_epoch, monitor=t.monitor,
        train_time_s=train_time, best=best, final=final)
    metrics.update(analyze(cfg, run_dir, model, data, history, stopper.best_epoch,
                           best_test_logits, amp_dtype, initial, extra))
    files.write_json(run_dir / "metrics.json", metrics)
    print_summary(metrics, run_dir)
    return distributed.broadcast(metrics)


def _fit(cfg, model, data, recipe: StepRecipe, scheduler, run_dir, report, resumed):
    """The epoch loop: train, validate, keep the best checkpoint, stop early or on divergence.
    `resumed` (last.pt of an interrupted run, or None) puts every piece of state back first."""
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
        console.print(f"resuming after epoch {resumed['epoch']} from {run_dir}/checkpoints/last.pt",
                      highlight=False, soft_wrap=True)
        if stopper.should_stop:
            status = "early_stopped"
    for row in history:
        report(row)
    for epoch in range(first_epoch, t.epochs + 1):
        if status != "completed":
            break
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = distributed.mean_over_ranks(
            *train_one_epoch(model, data.train, t.batch_size, recipe, generator))
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
        if distributed.is_main():
            _write_history(history, run_dir / "history.csv")
        if not math.isfinite(train_loss):
            console.print(f"diverged: the training loss is {train_loss} at epoch {epoch}",
                          highlight=False)
            status = "diverged"
            break
        if stopper.update(row[t.monitor], epoch) and distributed.is_main():
            files.save_torch(run_dir / "checkpoints/best.pt",
                             {"model": _state(model), "epoch": epoch, t.monitor: stopper.best})
        if distributed.is_main():
            files.save_torch(run_dir / "checkpoints/last.pt", {
                "model": _state(model), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "epoch": epoch, "early_stopping": vars(stopper).copy(), "history": history,
                "rng": {"torch": torch.get_rng_state(), "batches": generator.get_state()},
                "config": config_fingerprint(cfg),
            })
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


def summary(cfg, data, model, amp_dtype, test_logits, **fields) -> dict:
    """metrics.json: the keys every kind of run shares around `fields`, which differ (status,
    params, epochs_run, best_epoch, monitor, train_time_s, best, final). `model` holds the
    best weights and `test_logits` are theirs."""
    timed_split = data.test if data.test is not None else data.val
    return {
        "status": fields.pop("status"),
        "dataset": cfg.dataset.name,
        "model": cfg.model.name,
        "device": str(data.train.x.device),
        "threads": torch.get_num_threads(),  # intra-op threads: parallel launchers lower it
        "world_size": distributed.world_size(),  # processes of a torchrun job
        "data": {"in_memory": data.in_memory, "normalization": data.normalization},
        "seed": cfg.trainer.seed,
        **fields,
        "per_class_accuracy": (per_class_accuracy(test_logits, data.test.y, data.classes)
                               if test_logits is not None else None),
        "inference_ms_per_image": _inference_ms(model, timed_split, cfg.trainer.eval_batch_size,
                                                amp_dtype),
        "precision": str(amp_dtype or torch.float32).removeprefix("torch."),
        "sizes": {"train": len(data.train), "val": len(data.val),
                  "test": len(data.test) if data.test is not None else 0},
        "classes": data.classes,
        "versions": _versions(),
    }


def _evaluate(model, data, batch_size, amp_dtype):
    """Metrics on val and test (None without a test split), and the test logits."""
    results = {"val": classification_metrics(predict(model, data.val, batch_size, amp_dtype),
                                             data.val.y), "test": None}
    test_logits = None
    if data.test is not None:
        test_logits = predict(model, data.test, batch_size, amp_dtype)
        results["test"] = classification_metrics(test_logits, data.test.y)
    return results, test_logits


def _inference_ms(model, split, batch_size, amp_dtype) -> float:
    """Batched inference time per image on the run's device, after one warm-up pass."""
    predict(model, split, batch_size, amp_dtype)
    sync = torch.cuda.synchronize if split.x.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    predict(model, split, batch_size, amp_dtype)
    sync()
    return (time.perf_counter() - start) * 1000 / len(split)


def _write_history(history: list[dict], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    files.write_text(path, buffer.getvalue())


def _write_unfinished(cfg, run_dir: Path, status: str, error: str) -> None:
    """A run that did not finish says so: metrics.json never claims completion."""
    files.write_json(run_dir / "metrics.json", {
        "status": status, "error": error,
        "dataset": cfg.dataset.get("name"), "model": cfg.model.get("name"),
        "seed": cfg.trainer.get("seed"), "versions": _versions(),
    })


def _versions() -> dict:
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    names = ("vbench", "torch", "torchvision", "timm", "scikit-learn", "hydra-core")
    return {**{name: version(name) for name in names}, "python": platform.python_version()}
