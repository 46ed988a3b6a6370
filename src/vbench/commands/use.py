"""vbench-eval, vbench-predict and vbench-export: use a trained run from its directory.

Each reads the run's checkpoint (checkpoint.py: config, classes, normalization, input spec), so
none needs the training dataset; each is a few lines over evaluate.py, predict.py, export.py.
A user error is one line on stderr and exit code 2.
"""

import argparse
import json
import sys
from pathlib import Path

EVAL_KEYS = ("dataset", "trainer.device", "trainer.eval_batch_size", "trainer.precision")


def _fail(prog: str, message: str) -> None:
    from ..core.console import err_console

    err_console.print(f"{prog}: error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(2)


def _guarded(prog: str, work) -> None:
    from ..core.errors import VBenchError

    try:
        work()
    except VBenchError as e:
        _fail(prog, str(e))


def _checkpoint_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", choices=("best", "final"), default="best",
                        help="best.pt (the epoch the val metric chose; default) or last.pt")


# ---------------------------------------------------------------------------- vbench-eval
def eval_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="vbench-eval", description="Evaluate a run's checkpoint on its own val and test "
        "splits, or on another dataset of the same shape given as Hydra overrides (e.g. "
        "dataset=fashion_mnist dataset.root=DIR); writes eval/<dataset>_<split>/metrics.json "
        "and confusion.png in the run directory.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("overrides", nargs="*", help="dataset=..., dataset.KEY=..., "
                        "trainer.device/eval_batch_size/precision=...")
    _checkpoint_arg(parser)
    args = parser.parse_args(argv)
    _guarded("vbench-eval", lambda: evaluate_run(args.run_dir, args.overrides, args.checkpoint))


def evaluate_run(run_dir: Path, overrides: list[str], which: str = "best") -> dict:
    """{split name: metrics} of the run's checkpoint; writes eval/ and prints the table."""
    from omegaconf import OmegaConf

    from ..core import files
    from ..core.console import print_summary
    from ..core.device import autocast_dtype, resolve_device
    from ..core.errors import VBenchError
    from ..data import load_data
    from ..evaluation.evaluate import timed_predict
    from ..evaluation.metrics import classification_metrics
    from ..reports import model_card, plots
    from ..training.checkpoint import load_run_model

    run = load_run_model(run_dir, which)
    cfg = _with_overrides(run.cfg, overrides)
    own = cfg.dataset == run.cfg.dataset
    t = cfg.trainer
    device = resolve_device(t.device)
    amp_dtype = autocast_dtype(t.precision, device)
    # The run's normalization, not the other dataset's: the model only knows the run's.
    data = load_data(cfg.dataset, device, stats=(run.mean, run.std))
    shape = (data.in_channels, tuple(data.train.x.shape[-2:]), data.num_classes)
    expected = (run.channels, tuple(run.size), len(run.classes))
    if shape != expected:
        raise VBenchError(f"dataset {cfg.dataset.name} has (channels, size, classes) {shape}; "
                          f"the run's model takes {expected}: choose a dataset of that shape")
    splits = {"val": data.val, "test": data.test} if own else {"test": data.test or data.val}
    model = run.model.to(device)
    results, ms = {}, None
    for split_name, split in splits.items():
        if split is None:
            continue
        logits, ms = timed_predict(model, split, t.eval_batch_size, amp_dtype)
        results[split_name] = classification_metrics(logits, split.y)
        out = Path(run_dir) / "eval" / f"{cfg.dataset.name}_{split_name}"
        files.write_json(out / "metrics.json", results[split_name])
        plots.plot_confusion(split.y.cpu().numpy(), logits.argmax(1).cpu().numpy(),
                             data.classes, f"{cfg.model.name} ({which}), {cfg.dataset.name} "
                             f"{split_name}", out / "confusion.png")
    known = _run_metrics(run_dir)
    print_summary({
        **known, "model": cfg.model.name, "dataset": cfg.dataset.name,
        "status": f"{which} checkpoint evaluated", "monitor": known.get("monitor"),
        "best": results if which == "best" else None,
        "final": results if which == "final" else None,
        "params": known.get("params") or {"total": sum(p.numel() for p in model.parameters()),
                                          "trainable": 0},
        "train_time_s": known.get("train_time_s") or 0.0, "inference_ms_per_image": ms,
        "device": str(device)}, run_dir)
    model_card.append_eval(Path(run_dir), which, cfg.dataset.name, results,
                           OmegaConf.to_container(cfg.dataset, resolve=True) if not own else None)
    return results


def _with_overrides(cfg, overrides: list[str]):
    """The run's config with the dataset and evaluation keys of `overrides` composed from the
    package's config by Hydra, so a dataset option resolves exactly as it does in a run."""
    from omegaconf import OmegaConf

    from ..core.errors import VBenchError

    if not overrides:
        return cfg
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if "=" not in item or not any(key == k or key.startswith(k + ".") for k in EVAL_KEYS):
            raise VBenchError(f"vbench-eval takes KEY=VALUE overrides of {', '.join(EVAL_KEYS)} "
                              f"only; {item!r} would change the trained model or run")
    from hydra import compose, initialize_config_module

    try:
        with initialize_config_module("vbench.conf", version_base="1.3"):
            composed = compose("config", overrides=list(overrides))
        composed = OmegaConf.create(OmegaConf.to_container(composed, resolve=True))
    except Exception as e:  # Hydra's and OmegaConf's errors: one line naming the override
        raise VBenchError(f"overrides {' '.join(overrides)}: {str(e).splitlines()[0]}") from e
    cfg = cfg.copy()
    keys = {item.split("=", 1)[0].lstrip("+~") for item in overrides}
    if any(k == "dataset" or k.startswith("dataset.") for k in keys):
        cfg.dataset = composed.dataset
    for key in ("device", "eval_batch_size", "precision"):
        if f"trainer.{key}" in keys:
            cfg.trainer[key] = composed.trainer[key]
    return cfg


def _run_metrics(run_dir: Path) -> dict:
    try:
        return json.loads((Path(run_dir) / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


# ------------------------------------------------------------------------- vbench-predict
def predict_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="vbench-predict", description="Classify image files (PNG/JPEG, any size, grey or "
        "colour) with a run's model and its preprocessing: one line per image with the top-k "
        "classes and probabilities.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    parser.add_argument("--top-k", type=int, default=3, help="classes per image (default 3)")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="also write the rows to FILE")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda")
    _checkpoint_arg(parser)
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1:
        _fail("vbench-predict", "--top-k and --batch-size must be at least 1")
    _guarded("vbench-predict", lambda: _predict(args))


def _predict(args) -> None:
    import csv
    import io

    from ..core import files
    from ..core.device import resolve_device
    from ..inference.predict import image_files, predict_files
    from ..training.checkpoint import load_run_model

    run = load_run_model(args.run_dir, args.checkpoint)
    paths = image_files(args.paths)
    rows = []
    for prediction in predict_files(run, paths, args.top_k, args.batch_size,
                                    resolve_device(args.device)):
        print(json.dumps(prediction.as_dict()) if args.json else prediction.line(), flush=False)
        rows.append(prediction)
    if args.csv:
        k = min(args.top_k, len(run.classes))
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["path", *(f"{c}_{i}" for i in range(1, k + 1)
                                   for c in ("class", "probability")), "error"])
        for p in rows:
            cells = [v for name, prob in p.top for v in (name, f"{prob:.6f}")]
            writer.writerow([p.path, *cells, *[""] * (2 * k - len(cells)), p.error or ""])
        files.write_text(args.csv, buffer.getvalue())


# -------------------------------------------------------------------------- vbench-export
def export_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="vbench-export", description="Export a run's model as a file that takes raw "
        "uint8 images (N, C, H, W) at the run's size and returns logits (normalization "
        "inside), checked against PyTorch on the run's test images.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--format", required=True, choices=("onnx", "torchscript",
                                                            "safetensors"))
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="default: RUN_DIR/export/model.{onnx,pt,safetensors}")
    _checkpoint_arg(parser)
    args = parser.parse_args(argv)
    _guarded("vbench-export", lambda: _export(args))


def _export(args) -> None:
    import torch

    from ..data import load_data
    from ..inference.export import FORMATS, TOLERANCE, export
    from ..training.checkpoint import load_run_model

    run = load_run_model(args.run_dir, args.checkpoint)
    out = args.out or args.run_dir / "export" / f"model{FORMATS[args.format]}"
    data = load_data(run.cfg.dataset, torch.device("cpu"), stats=(run.mean, run.std))
    split = data.test if data.test is not None else data.val
    diff = export(run, args.format, out, split.uint8())  # the images as read: raw uint8
    print(f"exported {out} ({args.format}); max |logit difference| to PyTorch on "
          f"{len(split)} test images: {diff:.3g} (tolerance {TOLERANCE})")
