"""vbench-eval's work: a run's checkpoint evaluated on its own val and test splits, or on the
test split of another dataset of the same shape, written into the run's eval/ and appended to
its model card. The command (commands/use.py) checks the overrides and holds the run
directory's lock around this."""

import dataclasses
import json
from pathlib import Path

from ..core.errors import VBenchError
from ..core.rundir import EVAL_DIR, METRICS_FILE
from ..core.schema import Root


def evaluate_run_dir(run_dir: Path, composed: Root | None, overrides: list[str],
                     which: str) -> dict:
    """{split name: metrics} of the run's `which` checkpoint ("best"/"final"), with the dataset
    and evaluation keys of `overrides` taken from `composed` (the package's config composed with
    them, typed); writes eval/ and prints the table."""
    from ..core.device import autocast_dtype, resolve_device
    from ..data import load_data
    from ..evaluation.evaluate import timed_predict
    from ..evaluation.metrics import classification_metrics
    from ..training.checkpoint import load_run_model

    run = load_run_model(run_dir, which)
    cfg = _with_overrides(run.cfg, composed, overrides)
    device = resolve_device(cfg.trainer.device)
    amp_dtype = autocast_dtype(cfg.trainer.precision, device)
    # The run's normalization, not the other dataset's: the model only knows the run's.
    data = load_data(cfg.dataset, device, stats=(run.mean, run.std))
    _check_shape(data, run, cfg.dataset.name)
    own = cfg.dataset == run.cfg.dataset
    splits = {"val": data.val, "test": data.test} if own else {"test": data.test or data.val}
    model = run.model.to(device)
    epoch = _checkpoint_epoch(run.path)
    results, ms = {}, None
    for split_name, split in splits.items():
        if split is None:
            continue
        logits, ms = timed_predict(model, split, cfg.trainer.eval_batch_size, amp_dtype)
        results[split_name] = classification_metrics(logits, split.y)
        _write_eval(run_dir / EVAL_DIR / eval_folder(cfg.dataset.name, split_name, which),
                    {**results[split_name], "checkpoint": which, "epoch": epoch}, split.y,
                    logits, data.classes,
                    f"{cfg.model.name} ({which}, epoch {epoch}), {cfg.dataset.name} {split_name}")
    _report(run_dir, cfg, model, results, ms, device, which, epoch,
            None if own else run.cfg.dataset.name, overrides)
    return results


def eval_folder(dataset: str, split: str, which: str) -> str:
    """eval/'s folder of one evaluation: <dataset>_<split> for the best checkpoint,
    <dataset>_<split>_final for the final one, so neither overwrites the other."""
    return f"{dataset}_{split}" + ("" if which == "best" else f"_{which}")


def _check_shape(data, run, dataset: str) -> None:
    shape = (data.in_channels, tuple(data.train.x.shape[-2:]), data.num_classes)
    expected = (run.channels, tuple(run.size), len(run.classes))
    if shape != expected:
        raise VBenchError(f"dataset {dataset} has (channels, size, classes) {shape}; "
                          f"the run's model takes {expected}: choose a dataset of that shape")


def _checkpoint_epoch(path: Path) -> int | None:
    """The epoch a checkpoint file was saved at, read from the file (memory-mapped: the
    weights are not read a second time)."""
    import torch

    epoch = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("epoch")
    return None if epoch is None else int(epoch)


def _write_eval(out: Path, record: dict, labels, logits, classes: list[str],
                title: str) -> None:
    """One evaluation's folder: metrics.json (`record`) and confusion.png."""
    from ..core import files
    from ..reports import plots

    files.write_json(out / METRICS_FILE, record)
    plots.plot_confusion(labels.cpu().numpy(), logits.argmax(1).cpu().numpy(), classes, title,
                         out / "confusion.png")


def _report(run_dir: Path, cfg: Root, model, results: dict, ms, device, which: str,
            epoch: int | None, trained_on: str | None, overrides: list[str]) -> None:
    """The run's table with these results, and their section in model_card.md (`trained_on`:
    the run's own dataset, when these results are of another one)."""
    from ..core.console import print_summary
    from ..models import count_params
    from ..reports import model_card

    known = _run_metrics(run_dir)
    print_summary({
        **known, "model": cfg.model.name, "dataset": cfg.dataset.name,
        "status": f"{which} checkpoint (epoch {epoch}) evaluated",
        "monitor": known.get("monitor"),
        "best": results if which == "best" else None,
        "final": results if which == "final" else None,
        "params": known.get("params") or count_params(model),
        "train_time_s": known.get("train_time_s") or 0.0, "inference_ms_per_image": ms,
        "device": str(device)}, run_dir)
    model_card.append_eval(run_dir, which, epoch, cfg.dataset.name, results, trained_on,
                           [o for o in overrides if o.lstrip("+~").startswith("dataset")])


def _with_overrides(cfg: Root, composed: Root | None, overrides: list[str]) -> Root:
    """The run's config with the dataset and evaluation keys of `overrides` taken from
    `composed`, so a dataset option resolves exactly as it does in a run."""
    if composed is None:
        return cfg
    keys = {item.split("=", 1)[0].lstrip("+~") for item in overrides}
    if any(k == "dataset" or k.startswith("dataset.") for k in keys):
        cfg = dataclasses.replace(cfg, dataset=composed.dataset)
    trainer = {key: getattr(composed.trainer, key) for key in
               ("device", "eval_batch_size", "precision") if f"trainer.{key}" in keys}
    return dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, **trainer))


def _run_metrics(run_dir: Path) -> dict:
    try:
        return json.loads((Path(run_dir) / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return {}
