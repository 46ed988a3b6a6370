"""What the user sees: a live epoch bar on a terminal, one line per epoch in a log, and the
final table. Never carriage-return spam in CI logs."""

import contextlib
import multiprocessing
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def epoch_line(row: dict) -> str:
    return (f"epoch {row['epoch']:>3}  train_loss {row['train_loss']:.4f}  "
            f"train_acc {row['train_acc']:.4f}  val_loss {row['val_loss']:.4f}  "
            f"val_acc {row['val_acc']:.4f}  lr {row['lr']:.2e}  {row['epoch_s']:.2f}s")


@contextlib.contextmanager
def epoch_progress(total: int, title: str):
    """Yields `report(row)`, called after each epoch."""
    # Jobs of a parallel launcher (joblib's worker processes) share one terminal: their live
    # bars would overwrite each other, so they print one line per epoch.
    if not console.is_terminal or multiprocessing.parent_process() is not None:
        console.print(title, highlight=False, soft_wrap=True)
        yield lambda row: console.print(epoch_line(row), highlight=False, soft_wrap=True)
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(title, total=total, status="")
        yield lambda row: progress.update(
            task, advance=1,
            status=f"val_loss {row['val_loss']:.4f}  val_acc {row['val_acc']:.4f}")


def print_summary(metrics: dict, run_dir: Path) -> None:
    """The best-vs-final, val-vs-test table, a line of facts, and the run directory last."""
    monitor = metrics.get("monitor")
    caption = (f"best = epoch {metrics['best_epoch']} (by {monitor}), "
               f"final = epoch {metrics['epochs_run']}" if monitor else "one fit: best = final")
    table = Table(title=f"{metrics['model']} on {metrics['dataset']}: {metrics['status']}",
                  caption=caption)
    table.add_column("metric")
    columns = [(ckpt, split) for ckpt in ("best", "final") for split in ("val", "test")]
    for ckpt, split in columns:
        table.add_column(f"{ckpt} {split}", justify="right")
    for name in ("loss", "accuracy", "macro_f1", "weighted_f1"):
        cells = []
        for ckpt, split in columns:
            values = (metrics.get(ckpt) or {}).get(split)
            cells.append("—" if values is None else f"{values[name]:.4f}")
        table.add_row(name, *cells)
    console.print(table)
    if (metrics.get("best") or {}).get("test") is None and metrics.get("best"):
        console.print("[yellow]no test split: test columns are empty[/yellow]")
    params = metrics["params"]
    console.print(f"params {params['total']:,} ({params['trainable']:,} trainable)  "
                  f"train {metrics['train_time_s']:.1f}s  "
                  f"inference {metrics['inference_ms_per_image']:.4f} ms/image  "
                  f"device {metrics['device']}", highlight=False, soft_wrap=True)
    _print_probes(metrics)
    console.print(f"run directory: {run_dir}", highlight=False, soft_wrap=True)


def _print_probes(metrics: dict) -> None:
    """The cross-domain and translation-shift results, when the run asked for them."""
    if metrics.get("extra"):
        table = Table(title="cross-domain: best checkpoint on other test splits")
        names = ("loss", "accuracy", "macro_f1", "weighted_f1")
        for column in ("dataset", *names):
            table.add_column(column, justify="left" if column == "dataset" else "right")
        own = (metrics.get("best") or {}).get("test")
        if own:
            table.add_row(f"{metrics['dataset']} (trained on)", *(f"{own[n]:.4f}" for n in names))
        for name, values in metrics["extra"].items():
            table.add_row(name, *(f"{values[n]:.4f}" for n in names))
        console.print(table)
    if metrics.get("shift"):
        cells = [f"{k}px {v['accuracy']:.3f}/{v['confidence']:.3f}"
                 for k, v in metrics["shift"].items()]
        console.print("shift probe (test accuracy/confidence): " + "  ".join(cells),
                      highlight=False, soft_wrap=True)
