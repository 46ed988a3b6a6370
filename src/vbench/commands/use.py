"""vbench-eval, vbench-predict and vbench-export: use a trained run from its directory.

Each reads the run's checkpoint (checkpoint.py: config, classes, normalization, input spec), so
none needs the training dataset; each is a few lines over evaluate.py, predict.py, export.py.
A user error is one line on stderr and exit code 2. Each checks its input before any work
(vbench-eval's overrides through core/schema.validate, as `vbench` does), holds the run
directory's lock (core/rundir.exclusive) while it writes inside it, so a training or
another tool there stops it at once, and never writes over the run's own records
(rundir.RECORDS: checkpoints/, metrics.json, ...).
"""

import argparse
import contextlib
import json
import sys
from pathlib import Path

from ..core.process import console_command

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


def _user_path(text: str) -> Path:
    """A path argument with `~` expanded: a quoted '~/runs/t1' reaches us unexpanded by the
    shell, as dataset.root=~/photos does (commands/preflight.expand_home)."""
    return Path(text).expanduser()


def _checkpoint_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", choices=("best", "final"), default="best",
                        help="best.pt (the epoch the val metric chose; default) or last.pt")


def _refuse_records(run_dir: Path, option: str, given: Path, paths: list[Path]) -> None:
    """One line when writing `paths` (what `option given` writes) would replace one of the
    run's own records; the paths are resolved, so `..` and symlinks do not slip past."""
    from ..core.errors import VBenchError
    from ..core.rundir import RECORDS, own_record

    for path in paths:
        record = own_record(run_dir, path)
        if record is not None:
            raise VBenchError(f"{option} {given} is the run's own {record}, and no tool writes "
                              f"over a run's records ({', '.join(RECORDS)}); give {option} a "
                              "path outside them")


def _lock_if_inside(run_dir: Path, which: str, prog: str, paths: list[Path]):
    """The run directory's lock when any of `paths` lies inside it (nothing otherwise): a
    training still running there, or another tool writing there, stops `prog` at once."""
    from ..core.rundir import exclusive, inside
    from ..training.checkpoint import checkpoint_path

    if not any(inside(run_dir, path) is not None for path in paths):
        return contextlib.nullcontext()
    checkpoint_path(run_dir, which)  # a run directory first: the lock would create its folder
    return exclusive(run_dir, f"wait for it to end, then run {prog} again")


# ---------------------------------------------------------------------------- vbench-eval
def eval_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="vbench-eval", description="Evaluate a run's checkpoint on its own val and test "
        "splits, or on another dataset of the same shape given as Hydra overrides (e.g. "
        "dataset=fashion_mnist dataset.root=DIR); writes eval/<dataset>_<split>/ (with "
        "--checkpoint final: eval/<dataset>_<split>_final/) metrics.json, with the checkpoint "
        "and its epoch, and confusion.png in the run directory.")
    parser.add_argument("run_dir", type=_user_path)
    parser.add_argument("overrides", nargs="*", help="dataset=..., dataset.KEY=..., "
                        "trainer.device/eval_batch_size/precision=...")
    _checkpoint_arg(parser)
    args = parser.parse_args(argv)
    from .preflight import expand_home

    overrides = expand_home(args.overrides)  # dataset.root=~/photos, as for vbench
    _guarded("vbench-eval", lambda: evaluate_run(args.run_dir, overrides, args.checkpoint))


def evaluate_run(run_dir: Path, overrides: list[str], which: str = "best") -> dict:
    """{split name: metrics} of the run's checkpoint; writes eval/ and prints the table. The
    overrides are checked by the schema before anything is read, and the run directory's lock
    is held while eval/ and model_card.md are written."""
    from ..core.rundir import EVAL_DIR
    from ..inference.evaluate_run import evaluate_run_dir

    composed = _composed(overrides)
    with _lock_if_inside(run_dir, which, "vbench-eval", [Path(run_dir) / EVAL_DIR]):  # always
        return evaluate_run_dir(Path(run_dir), composed, overrides, which)


def _composed(overrides: list[str]):
    """The package's config composed by Hydra with `overrides` (dataset and evaluation keys
    only), checked and typed by core/schema.typed as `vbench` checks its own; None without
    overrides. A bad override is one line naming it."""
    from hydra import compose, initialize_config_module

    from ..core.errors import VBenchError
    from ..core.schema import typed

    if not overrides:
        return None
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if "=" not in item or not any(key == k or key.startswith(k + ".") for k in EVAL_KEYS):
            raise VBenchError(f"vbench-eval takes KEY=VALUE overrides of {', '.join(EVAL_KEYS)} "
                              f"only; {item!r} would change the trained model or run")
    try:
        with initialize_config_module("vbench.conf", version_base="1.3"):
            composed = compose("config", overrides=list(overrides))
    except Exception as e:  # Hydra's and OmegaConf's errors: one line naming the override
        raise VBenchError(f"overrides {' '.join(overrides)}: {str(e).splitlines()[0]}") from e
    return typed(composed)


# ------------------------------------------------------------------------- vbench-predict
def predict_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="vbench-predict", description="Classify image files (PNG/JPEG, any size, grey or "
        "colour) with a run's model and its preprocessing: one line per image with the top-k "
        "classes and probabilities.")
    parser.add_argument("run_dir", type=_user_path)
    parser.add_argument("paths", nargs="+", type=_user_path, metavar="PATH",
                        help="image files or folders")
    parser.add_argument("--top-k", type=int, default=3, help="classes per image (default 3)")
    parser.add_argument("--csv", type=_user_path, metavar="FILE", help="also write the rows to FILE")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda")
    _checkpoint_arg(parser)
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1:
        _fail("vbench-predict", "--top-k and --batch-size must be at least 1")
    _guarded("vbench-predict", lambda: _predict(args))


def _predict(args) -> None:
    from ..core.errors import VBenchError
    from ..inference.predict import image_files, predict_files
    from ..training.checkpoint import load_run_model

    device = _predict_device(args.device)
    paths = image_files(args.paths)
    if not paths:
        raise VBenchError(f"no files to classify in {' '.join(map(str, args.paths))}: give image files, "
                          "or folders that hold some")
    outputs = [args.csv] if args.csv else []
    _refuse_records(args.run_dir, "--csv", args.csv, outputs)
    with _lock_if_inside(args.run_dir, args.checkpoint, "vbench-predict", outputs):
        run = load_run_model(args.run_dir, args.checkpoint)
        rows = _print_predictions(predict_files(run, paths, args.top_k, args.batch_size,
                                                device), args.json)
        if all(row.error for row in rows):
            raise VBenchError(f"classified nothing: none of the {len(rows)} file(s) is an image "
                              "PIL can read (see each line above); give PNG, JPEG or other "
                              "image files")
        if args.csv:
            _write_csv(args.csv, rows, min(args.top_k, len(run.classes)))


def _print_predictions(predictions, as_json: bool) -> list:
    """Print each prediction as it comes (a text or a JSON line); returns them all."""
    rows = []
    for prediction in predictions:
        print(json.dumps(prediction.as_dict()) if as_json else prediction.line(), flush=False)
        rows.append(prediction)
    return rows


def _predict_device(name: str):
    """core/device.resolve_device, its advice worded for --device (predict has no
    trainer.device)."""
    from ..core.device import resolve_device
    from ..core.errors import VBenchError

    try:
        return resolve_device(name)
    except VBenchError as e:
        raise VBenchError(str(e).replace("trainer.device=", "--device ")) from None


def _write_csv(path: Path, rows: list, k: int) -> None:
    """One row per file: path, the k (class, probability) pairs, error."""
    import csv
    import io

    from ..core import files

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", *(f"{c}_{i}" for i in range(1, k + 1)
                               for c in ("class", "probability")), "error"])
    for p in rows:
        cells = [v for name, prob in p.top for v in (name, f"{prob:.6f}")]
        writer.writerow([p.path, *cells, *[""] * (2 * k - len(cells)), p.error or ""])
    files.write_text(path, buffer.getvalue())


# -------------------------------------------------------------------------- vbench-export
def export_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="vbench-export", description="Export a run's model as a file that takes raw "
        "uint8 images (N, C, H, W) at the run's size and returns logits (normalization "
        "inside), checked against PyTorch on the run's test images.")
    parser.add_argument("run_dir", type=_user_path)
    parser.add_argument("--format", required=True, choices=("onnx", "torchscript",
                                                            "safetensors"))
    parser.add_argument("--out", type=_user_path, metavar="FILE",
                        help="default: RUN_DIR/export/model.{onnx,pt,safetensors}")
    _checkpoint_arg(parser)
    args = parser.parse_args(argv)
    _guarded("vbench-export", lambda: _export(args))


def _export(args) -> None:
    import torch

    from ..data import load_data
    from ..inference.export import FORMATS, TOLERANCE, export, written
    from ..training.checkpoint import load_run_model

    out = args.out or args.run_dir / "export" / f"model{FORMATS[args.format]}"
    outputs = written(args.format, out)
    _refuse_records(args.run_dir, "--out", out, outputs)
    with _lock_if_inside(args.run_dir, args.checkpoint, "vbench-export", outputs):
        run = load_run_model(args.run_dir, args.checkpoint)
        data = load_data(run.cfg.dataset, torch.device("cpu"), stats=(run.mean, run.std))
        split = data.test if data.test is not None else data.val
        diff = export(run, args.format, out, split.uint8())  # the images as read: raw uint8
    print(f"exported {out} ({args.format}); max |logit difference| to PyTorch on "
          f"{len(split)} test images: {diff:.3g} (tolerance {TOLERANCE})")


# The console scripts (pyproject.toml): each ends its process once its files are written.
eval_command = console_command(eval_main)
predict_command = console_command(predict_main)
export_command = console_command(export_main)
