"""The `vbench-report` command and the Hydra callback that writes a sweep's summary when the
sweep ends: both read the runs and write the leaderboard through reports/leaderboard.py."""

import argparse
import os
import sys
from pathlib import Path
from typing import ClassVar

from hydra.experimental.callback import Callback

from ..core.status import BAD
from ..reports.runs import DEFAULT_SORT
from ..reports.table import METRICS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vbench-report",
        description="Leaderboard of vbench runs: finds run directories (metrics.json or .hydra/) "
                    "under each PATH, prints them sorted, and writes summary.csv, summary.md "
                    "and comparison plots.")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="a sweep directory, a run directory, or any folder holding runs")
    parser.add_argument("--sort", default=DEFAULT_SORT, choices=list(METRICS),
                        help=f"metric to rank by (default: {DEFAULT_SORT}, the best checkpoint's "
                             "validation accuracy: the test split never picks)")
    parser.add_argument("--hide-failed", action="store_true",
                        help="leave out runs without a result (failed, interrupted, missing)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the summary (default: the common parent of the "
                             "run directories: the sweep directory for one sweep)")
    parser.add_argument("--html", action="store_true",
                        help="also write report.html: one self-contained page (sortable "
                             "leaderboard, config differences, curves, each run's plots)")
    parser.add_argument("--no-ensembles", action="store_true",
                        help="do not score seed groups' ensembles (the mean of their runs' "
                             "softmax), which costs one forward pass per run over val and "
                             "test and imports torch")
    args = parser.parse_args(argv)
    ensemble = None if args.no_ensembles else _ensembles
    from ..core.errors import VBenchError
    from ..reports.leaderboard import print_leaderboard, summarize, writable_folder

    skipped: list[tuple[Path, str]] = []
    try:
        if args.out is not None:  # refused before the runs are read: nothing is left behind
            writable_folder(args.out)
        rows, out = summarize(args.paths, args.out, args.sort, skipped, ensemble)
    except (FileNotFoundError, VBenchError) as e:
        _warn_skipped(skipped)
        print(f"vbench-report: error: {e}", file=sys.stderr)
        return 2
    # Skipping is a warning: the rest is ranked and the exit code stays 0.
    _warn_skipped(skipped)
    print_leaderboard(rows, args.sort, f"vbench: {len(rows)} runs", args.hide_failed)
    from ..core.console import console

    console.print(f"summary written to {out}/summary.csv, summary.md", highlight=False,
                  soft_wrap=True)
    if args.html:
        from ..reports.html import write_html_report

        page = write_html_report(args.paths, out / "report.html", args.sort, ensemble)
        console.print(f"report written to {page}", highlight=False, soft_wrap=True)
    return 0


def _ensembles(rows: list[dict]) -> None:
    """Score the seed groups' ensembles (inference/ensemble.py), saying what it cost when it
    cost anything: torch is imported only where a group has checkpoints to ensemble."""
    from ..inference.ensemble import add_ensembles

    seconds = add_ensembles(rows)
    if seconds >= 0.5:
        print(f"vbench: seed-group ensembles scored in {seconds:.1f} s", file=sys.stderr)


def _warn_skipped(skipped: list[tuple[Path, str]]) -> None:
    for _, why in skipped:
        print(f"vbench-report: warning: skipped {why}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# The Hydra callback


class SweepSummary(Callback):
    """Writes the summary into the sweep directory when a multirun ends, and remembers
    whether a job failed so that `vbench -m` exits non-zero (see cli.main)."""

    failed_jobs: ClassVar[list[str]] = []

    def on_multirun_end(self, config, **kwargs) -> None:
        from ..core.errors import VBenchError
        from ..reports.leaderboard import print_leaderboard, summarize

        sweep_dir = Path(config.hydra.sweep.dir)
        skipped: list[tuple[Path, str]] = []
        try:
            rows, _ = summarize([sweep_dir], sweep_dir, skipped=skipped, ensemble=_ensembles)
        except FileNotFoundError:
            return  # no job started: nothing to summarize
        except VBenchError as e:
            print(f"vbench: warning: no sweep summary: {e}", file=sys.stderr)
            return
        for _, why in skipped:
            print(f"vbench: warning: the summary skips {why}", file=sys.stderr)
        print_leaderboard(rows, DEFAULT_SORT, f"sweep {sweep_dir}: {len(rows)} jobs")
        SweepSummary.failed_jobs = [r["run"] for r in rows if r["status"] in BAD] + [
            os.path.relpath(run, sweep_dir.resolve()) for run, _ in skipped]
        from ..reports.html import write_html_report

        write_html_report([sweep_dir], sweep_dir / "report.html", DEFAULT_SORT, _ensembles)




if __name__ == "__main__":
    sys.exit(main())
