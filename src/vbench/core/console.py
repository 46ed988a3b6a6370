"""What the user sees: a live epoch bar on a terminal, one line per epoch in a log, and the
final table. Never carriage-return spam in CI logs. Everything printed during a run is also
written, without control codes, to `<run dir>/vbench.log` (run_log)."""

import contextlib
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, RenderHook
from rich.control import Control
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Column as TableColumn
from rich.table import Table
from rich.text import Text

from .columns import (
    EMA_VAL_ACC,
    EMA_VAL_LOSS,
    SPLIT_METRICS,
    TRAIN_ACC,
    TRAIN_LOSS,
    VAL_ACC,
    VAL_LOSS,
)
from .rundir import LOG_FILE

console = Console()
err_console = Console(stderr=True)
# The open vbench.log files of the runs in progress (run_log), by run directory; what
# console.print prints goes to those of `_logging` (all of them, or one: log_only)
_logs: dict[Path, Console] = {}
EVERY_LOG = "every log"
_logging: list = [EVERY_LOG]
# trainer.log_every_s of the run in progress; the live epoch Progress while one is shown
_settings: dict = {"log_every_s": 30.0, "live": None}


class _Labelled:
    """A text stream that starts each line with `label`: the output of one job among the
    parallel jobs of a sweep, whose lines land in one log or terminal interleaved."""

    def __init__(self, stream, label: str):
        self.stream, self.label, self.at_line_start = stream, label, True

    def write(self, text: str) -> int:
        pieces = []
        for piece in text.splitlines(keepends=True):
            pieces.append(self.label + piece if self.at_line_start else piece)
            self.at_line_start = piece.endswith(("\n", "\r"))
        self.stream.write("".join(pieces))
        return len(text)

    def __getattr__(self, name):  # flush, isatty, fileno, encoding: the stream's
        return getattr(self.stream, name)


@contextlib.contextmanager
def labelled(label: str):
    """Every line console and err_console print starts with `label` (e.g. `[job 3] `)."""
    saved = console.file, err_console.file
    console.file, err_console.file = _Labelled(saved[0], label), _Labelled(saved[1], label)
    try:
        yield
    finally:
        console.file, err_console.file = saved


class ScreenLine:
    """A line for the terminal alone, fitted to its width and never wrapped: the log gets its
    own, whole version (log()). Not a Text, which console.print would merge into a new one."""

    def __init__(self, text: str):
        self.text = Text(text, no_wrap=True, overflow="ellipsis")

    def __rich_console__(self, console, options):
        yield self.text


class _CopyToLog(RenderHook):
    """Sees everything console.print is given (before a live bar adds itself) and prints it
    into the log console too; control codes (cursor moves of the live bar) and ScreenLines
    are left out."""

    def process_renderables(self, renderables):
        for renderable in renderables:
            if not isinstance(renderable, (Control, ScreenLine)):
                log(renderable)
        return renderables


def log(renderable) -> None:
    """Into vbench.log only (the epoch lines a live bar shows instead of printing them)."""
    only = _logging[-1]
    for run_dir, log_console in list(_logs.items()):
        if only is EVERY_LOG or run_dir == only:
            log_console.print(renderable, highlight=False, soft_wrap=isinstance(renderable, str))


@contextlib.contextmanager
def log_only(run_dir: Path | None):
    """While several runs' logs are open at once (a stack of seeds, training/stack.py), what
    is printed goes into `run_dir`'s vbench.log alone (that member's own lines), or into none
    (None: a line about all of them that each log holds in its own version)."""
    _logging.append(None if run_dir is None else Path(run_dir))
    try:
        yield
    finally:
        _logging.pop()


@contextlib.contextmanager
def run_log(run_dir: Path, log_every_s: float | None = 30.0):
    """Copies what the console and err_console print to <run_dir>/vbench.log (appended: a
    resumed run continues it), plus the error that ends the run, if one does. Off a
    terminal, progress lines inside long passes come every `log_every_s` seconds."""
    _settings["log_every_s"] = log_every_s
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(run_dir) / LOG_FILE, "a", encoding="utf-8", buffering=1) as f:
        log_console = Console(file=f, width=160, color_system=None, force_terminal=False,
                              force_jupyter=False, soft_wrap=False)
        first = not _logs  # one hook copies into every open log (a stack opens several)
        _logs[Path(run_dir)] = log_console
        if first:
            hook = _CopyToLog()
            console.push_render_hook(hook)
            err_console.push_render_hook(hook)
        try:
            yield
        except BaseException as e:
            _log_error(log_console, e)
            raise
        finally:
            if first:
                err_console.pop_render_hook()
                console.pop_render_hook()
            del _logs[Path(run_dir)]


def _log_error(log_console: Console, error: BaseException) -> None:
    """The end of the run in the log, as the command line reports it (cli.py): one line for a
    user error or an interrupt, the traceback for anything else."""
    from .errors import VBenchError

    if isinstance(error, VBenchError):
        log_console.print(f"vbench: error: {error}", markup=False, highlight=False)
    elif isinstance(error, KeyboardInterrupt):
        log_console.print(f"vbench: interrupted ({str(error) or 'SIGINT'})", markup=False)
    else:
        import traceback

        log_console.print("".join(traceback.format_exception(error)), markup=False,
                          highlight=False)


def _epoch_fields(row: dict, monitor: str, total: int | None) -> list[tuple[str, int]]:
    """An epoch's row as (text, rank) in the order a line shows them. Rank 0 always shows
    (the epoch, the train loss, the monitored metric); a line too long for the terminal
    leaves out the highest rank first."""
    epoch = f"epoch {row['epoch']:>3}" + (f"/{total}" if total else "")
    fields = [(epoch, 0), (f"{TRAIN_LOSS} {row[TRAIN_LOSS]:.4f}", 0),
              (f"{TRAIN_ACC} {row[TRAIN_ACC]:.4f}", 4)]
    # EMA_VAL_LOSS shows when it is what the run monitors.
    for name, rank in ((VAL_LOSS, 2), (VAL_ACC, 2), (EMA_VAL_LOSS, None), (EMA_VAL_ACC, 3)):
        if name in row and (rank is not None or name == monitor):
            fields.append((f"{name} {row[name]:.4f}", 0 if name == monitor else rank))
    return fields + [(f"lr {row['lr']:.2e}", 5), (f"{row['epoch_s']:.2f}s", 1)]


def _fit(fields: list[tuple[str, int]], width: int | None) -> str:
    """The fields' texts joined by two spaces, leaving out the highest rank (never 0) first
    until the line is at most `width` characters (None: all of them)."""
    keep = list(fields)
    while width is not None and len("  ".join(t for t, _ in keep)) > width:
        ranked = [f for f in keep if f[1]]
        if not ranked:
            break
        keep.remove(max(ranked, key=lambda f: f[1]))
    return "  ".join(t for t, _ in keep)


def epoch_line(row: dict, monitor: str = VAL_LOSS, total: int | None = None,
               width: int | None = None) -> str:
    """The line a finished epoch leaves: every number of its row, or what fits in `width`."""
    return _fit(_epoch_fields(row, monitor, total), width)


def _clock(seconds: float) -> str:
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _pace(images: int, done: int, total: int, elapsed: float) -> str:
    rate = images / elapsed if elapsed > 0 else 0.0
    eta = elapsed / done * (total - done) if done else 0.0
    return f"{rate:,.0f} img/s  ETA {_clock(eta)}"


BAR_MIN = 10  # columns the bar keeps when the numbers beside it are fitted to the terminal


class EpochReport:
    """`report(row)` after each epoch, `report.batch(images)` after each training batch.

    On a terminal both move live bars, redrawn at most 5 times a second, that read at 80
    columns: the epochs' (epoch N/M, the last epoch's train loss and monitored val metric, the
    run's ETA) and the batches' within the epoch (images/s, the epoch's ETA); each finished
    epoch prints one line above them, fitted to the terminal's width, that stays in the
    scrollback (vbench.log gets the whole line). Elsewhere (CI, SLURM, a parallel launcher's
    jobs) each epoch prints one whole line, and a long epoch one progress line every
    `log_every_s` seconds (None: never): plain lines, never carriage returns."""

    def __init__(self, batches: int, log_every_s: float | None, progress=None, epoch_task=None,
                 total: int | None = None, monitor: str = VAL_LOSS):
        self.batches, self.log_every_s = batches, log_every_s
        self.total, self.monitor = total, monitor
        self.progress, self.epoch_task = progress, epoch_task
        self.batch_task = (progress.add_task(f"batch 0/{batches}", total=batches, status="")
                           if progress is not None else None)
        self.epoch = self.first = 1  # the epoch in training; the first this process trains
        self.metrics = ""  # the last epoch's numbers, on the epochs' bar
        self.run_start = time.perf_counter()
        self._start_epoch()

    def _start_epoch(self) -> None:
        self.done = self.images = 0
        self.start = self.shown = time.perf_counter()

    def batch(self, images: int) -> None:
        if self.done == 0 and self.progress is not None:  # the last epoch's bar stays full
            self.progress.reset(self.batch_task, total=self.batches,
                                description=f"batch 0/{self.batches}", status="")
        self.done += 1
        self.images += images
        now = time.perf_counter()
        if self.progress is not None:
            if now - self.shown >= 0.2 or self.done == self.batches:
                self.shown = now
                self.progress.update(self.batch_task, completed=self.done,
                                     description=f"batch {self.done}/{self.batches}",
                                     status=_pace(self.images, self.done, self.batches,
                                                  now - self.start))
                self.progress.update(self.epoch_task, status=self._epoch_status(now))
        elif self.log_every_s is not None and now - self.shown >= self.log_every_s:
            self.shown = now
            console.print(f"  epoch {self.epoch} batch {self.done}/{self.batches}  "
                          + _pace(self.images, self.done, self.batches, now - self.start),
                          highlight=False, soft_wrap=True)

    def restored(self, epochs: int, source: str) -> None:
        """A resumed run's earlier epochs: one line for the range, not one per epoch."""
        if epochs == 0:
            return
        line = f"epochs 1–{epochs} restored from {source}" if epochs > 1 else \
            f"epoch 1 restored from {source}"
        console.print(line, highlight=False, soft_wrap=True)  # above the live bars, if any
        self.epoch = self.first = epochs + 1
        self.run_start = time.perf_counter()  # the ETA counts this process's epochs
        if self.progress is not None:
            self.progress.update(self.epoch_task, advance=epochs,
                                 description=self._epoch_words())

    def __call__(self, row: dict) -> None:
        line = epoch_line(row, self.monitor, self.total)
        self.epoch = row["epoch"] + 1
        self._start_epoch()
        if self.progress is None:
            console.print(line, highlight=False, soft_wrap=True)
            return
        log(line)
        screen = self.progress.console
        screen.print(ScreenLine(epoch_line(row, self.monitor, self.total, screen.width)))
        self.metrics = self._metrics(row, screen.width)
        self.progress.update(self.epoch_task, advance=1, description=self._epoch_words(),
                             status=self._epoch_status(self.start))

    def _epoch_words(self) -> str:
        return f"epoch {min(self.epoch, self.total)}/{self.total}"

    def _metrics(self, row: dict, width: int) -> str:
        """The epochs' bar's numbers: the monitored metric always, the train loss and the
        other val metric while they fit beside the bar and the ETA."""
        fields = [(f"{TRAIN_LOSS} {row[TRAIN_LOSS]:.4f}", 1),
                  (f"{self.monitor} {row[self.monitor]:.4f}", 0)]
        fields += [(f"{name} {row[name]:.4f}", rank) for name, rank in ((VAL_ACC, 2), (VAL_LOSS, 3))
                   if name != self.monitor]
        described = max(len(task.description) for task in self.progress.tasks)
        return _fit(fields, width - described - BAR_MIN - len("  ETA 0:00:00") - 2)

    def _epoch_status(self, now: float) -> str:
        """The last epoch's numbers and the run's ETA: the time this process has trained
        for, per epoch it trained (the current one's batches in part), times what is left."""
        progressed = self.epoch - self.first + self.done / max(self.batches, 1)
        left = max(self.total - self.epoch + 1 - self.done / max(self.batches, 1), 0)
        eta = f"ETA {_clock((now - self.run_start) / progressed * left)}" if progressed else ""
        return "  ".join(p for p in (self.metrics, eta) if p)


def _live_terminal() -> bool:
    # Jobs of a parallel launcher (joblib's worker processes) share one terminal: their live
    # bars would overwrite each other, so they print lines.
    return console.is_terminal and multiprocessing.parent_process() is None


def _progress(transient: bool):
    """The live bars: what the bar counts, with its count (epoch 3/10); the bar, which gives
    the numbers beside it their room (BAR_MIN to 40 columns); the numbers."""
    columns = (TextColumn("[bold]{task.description}", table_column=TableColumn(no_wrap=True)),
               BarColumn(bar_width=None, table_column=TableColumn(max_width=40)),
               TextColumn("{task.fields[status]}", markup=False,
                          table_column=TableColumn(no_wrap=True)))
    return Progress(*columns, console=console, transient=transient)


@contextlib.contextmanager
def epoch_progress(total: int, title: str, batches: int = 0, monitor: str = VAL_LOSS):
    """Yields an EpochReport for `total` epochs of `batches` training batches whose bar shows
    `monitor` (trainer.monitor)."""
    if not _live_terminal():
        console.print(title, highlight=False, soft_wrap=True)
        yield EpochReport(batches, _settings["log_every_s"], total=total, monitor=monitor)
        return
    console.print(title, highlight=False)  # above the bars, wrapped at words; whole in the log
    with _progress(transient=False) as progress:
        _settings["live"] = progress
        try:
            yield EpochReport(batches, None, progress,
                              progress.add_task(f"epoch 1/{total}", total=total, status=""),
                              total, monitor)
        finally:
            _settings["live"] = None


def track(items, total: int, what: str):
    """Yields from `items` (e.g. evaluation batches); a pass that takes more than a second
    shows a transient bar (a task of the live epoch display when there is one), or a line
    every log_every_s seconds off a terminal. Costs one clock read per item otherwise."""
    start = time.perf_counter()
    progress = task = None
    shown, own = start, False
    try:
        for done, item in enumerate(items, 1):
            yield item
            now = time.perf_counter()
            if now - start < 1.0 or done == total:
                continue
            if not _live_terminal():
                every = _settings["log_every_s"]
                if every is not None and now - shown >= every:
                    shown = now
                    console.print(f"  {what} {done}/{total}", highlight=False, soft_wrap=True)
                continue
            if progress is None:
                progress = _settings["live"]
                if progress is None:
                    progress, own = _progress(transient=True), True
                    progress.start()
                task = progress.add_task(what, total=total, status="")
            progress.update(task, completed=done, description=f"{what} {done}/{total}")
    finally:
        if progress is not None:
            progress.remove_task(task)
            if own:
                progress.stop()


@dataclass
class Column:
    """A table column. `drop` orders what goes first when the terminal is too narrow: the
    highest number first; None never (the identifying column and the headline numbers)."""

    header: str
    justify: str = "right"
    drop: int | None = None


def fitted_table(columns: list[Column], rows: list[list[str]], width: int, label: int = 0,
                 **table_kwargs):
    """A rich Table that reads at `width` columns. Column `label` identifies the row: it
    wraps (never narrower than a quarter of the width, or its text) instead of collapsing.
    Every other cell is a number or a short word that is never cut nor wrapped (cells are
    plain text, not markup): columns are dropped, highest `drop` first, until the rest fits."""
    def natural(i):
        cells = [Text(row[i]).cell_len for row in rows]
        return max([len(columns[i].header), *cells])

    keep = list(range(len(columns)))
    identifying_min = min(natural(label), max(12, width // 4))

    def needed():  # the rest at full width, the label at its minimum, borders and padding
        others = sum(natural(i) for i in keep if i != label)
        return identifying_min + others + 3 * len(keep) + 1

    droppable = sorted((i for i, c in enumerate(columns) if c.drop is not None),
                       key=lambda i: -columns[i].drop)
    for i in droppable:
        if needed() <= width:
            break
        keep.remove(i)
    table = Table(**table_kwargs)
    for i in keep:
        column = columns[i]
        if i == label:
            table.add_column(column.header, justify=column.justify, overflow="fold",
                             min_width=identifying_min)
        else:
            table.add_column(column.header, justify=column.justify, no_wrap=True,
                             min_width=natural(i))
    for row in rows:  # plain text: "[relu]" in an override is not rich markup
        table.add_row(*(Text(row[i]) for i in keep))
    dropped = [columns[i].header for i in range(len(columns)) if i not in keep]
    if dropped:
        note = f"narrow terminal: not shown: {', '.join(dropped)}"
        caption = table.caption
        table.caption = f"{caption}\n{note}" if caption else note
    return table


def summary_table(metrics: dict, width: int) -> Table:
    """Best vs final checkpoint, val vs test: narrow terminals lose the final checkpoint's
    columns first, test before val."""
    monitor = metrics.get("monitor")
    caption = (f"best = epoch {metrics['best_epoch']} (by {monitor}), "
               f"final = epoch {metrics['epochs_run']}" if monitor else "one fit: best = final")
    columns = [(ckpt, split) for ckpt in ("best", "final") for split in ("val", "test")]
    headers = [Column("metric", "left"), Column("best val"), Column("best test"),
               Column("final val", drop=2), Column("final test", drop=1)]
    rows = []
    for name in SPLIT_METRICS:
        cells = []
        for ckpt, split in columns:
            values = (metrics.get(ckpt) or {}).get(split)
            cells.append("—" if values is None else f"{values[name]:.4f}")
        rows.append([name, *cells])
    return fitted_table(headers, rows, width, caption=caption,
                        title=f"{metrics['model']} on {metrics['dataset']}: {metrics['status']}")


def print_summary(metrics: dict, run_dir: Path) -> None:
    """The best-vs-final, val-vs-test table, a line of facts, and the run directory last."""
    console.print(summary_table(metrics, console.width))
    if (metrics.get("best") or {}).get("test") is None and metrics.get("best"):
        console.print("[yellow]no test split: test columns are empty[/yellow]")
    params = metrics["params"]
    console.print(f"params {params['total']:,} ({params['trainable']:,} trainable)  "
                  f"train {metrics['train_time_s']:.1f}s  "
                  f"inference {metrics['inference_ms_per_image']:.4f} ms/image  "
                  f"device {metrics['device']}", highlight=False, soft_wrap=True)
    _print_ema(metrics.get("ema"))
    _print_probes(metrics)
    console.print(f"run directory: {run_dir}", highlight=False, soft_wrap=True)


def _print_ema(ema: dict | None) -> None:
    """With trainer.ema, the EMA weights' accuracies beside the table of the trained ones."""
    if not ema:
        return

    def accuracy(when: str, split: str) -> str:
        values = (ema.get(when) or {}).get(split)
        return "—" if values is None else f"{values['accuracy']:.4f}"

    console.print(f"EMA weights (decay {ema['decay']}): accuracy best val "
                  f"{accuracy('best', 'val')} test {accuracy('best', 'test')}, final val "
                  f"{accuracy('final', 'val')} test {accuracy('final', 'test')}",
                  highlight=False, soft_wrap=True)


def _print_probes(metrics: dict) -> None:
    """The cross-domain and translation-shift results, when the run asked for them."""
    if metrics.get("extra"):
        rows = []
        own = (metrics.get("best") or {}).get("test")
        if own:
            rows.append([f"{metrics['dataset']} (trained on)",
                         *(f"{own[n]:.4f}" for n in SPLIT_METRICS)])
        for name, values in metrics["extra"].items():
            rows.append([name, *(f"{values[n]:.4f}" for n in SPLIT_METRICS)])
        # Accuracy, the headline, always shows; narrow terminals drop the others, the last first.
        columns = [Column("dataset", "left"),
                   *(Column(n, drop=None if n == "accuracy" else i)
                     for i, n in enumerate(SPLIT_METRICS, 1))]
        console.print(fitted_table(columns, rows, console.width,
                                   title="cross-domain: best checkpoint on other test splits"))
    if metrics.get("shift"):
        cells = [f"{k}px {v['accuracy']:.3f}/{v['confidence']:.3f}"
                 for k, v in metrics["shift"].items()]
        console.print("shift probe (test accuracy/confidence): " + "  ".join(cells),
                      highlight=False, soft_wrap=True)
