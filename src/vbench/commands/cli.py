"""The `vbench` command: a Hydra app. torch is imported only once a run starts, so
`vbench --help` and `vbench --cfg job` answer at once."""

import contextlib
import math
import os
import signal
import sys
import threading
from pathlib import Path

import hydra
from omegaconf import DictConfig, open_dict

from ..core.process import console_command

# Imported for the OmegaConf resolvers config.yaml and hydra/launcher=fill use.
from . import hydra_private, interrupt, names, parallel  # noqa: F401  (the resolvers config.yaml and fill use)


def _is_joblib(launcher) -> bool:
    return (launcher.get("_target_") or "").endswith("JoblibLauncher")


def _threads_per_job(launcher) -> int | None:
    """Torch's intra-op threads for one job of a parallel launcher, so that jobs running side
    by side share the cores instead of each starting one thread per core; None: torch's own."""
    if _is_joblib(launcher):
        from joblib import cpu_count  # joblib's own count: honours CPU affinity and cgroups

        cpus, n_jobs = cpu_count(), launcher.get("n_jobs") or 1
        workers = n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs)  # joblib: -1 = all cores
        return max(1, cpus // workers)
    return launcher.get("cpus_per_task")  # submitit: the CPUs each job was given


def _job(cfg: DictConfig) -> float:
    """One job, as Hydra starts it; a worker of a parallel sweep labels every line it prints
    with its job number, since the workers' lines land in one log interleaved."""
    from hydra.core.hydra_config import HydraConfig

    from ..core.console import labelled

    hydra_cfg = HydraConfig.get()
    if not interrupt.in_worker():
        return _run_job(cfg, hydra_cfg)
    with labelled(f"[job {hydra_cfg.job.num}] "):
        return _run_job(cfg, hydra_cfg)


def _run_job(cfg: DictConfig, hydra_cfg) -> float:
    from hydra.types import RunMode

    from ..core.console import err_console
    from ..core.errors import VBenchError

    run_dir = hydra_cfg.runtime.output_dir
    # In a sweep a failing job returns NaN instead of raising: Hydra's sweeper would abort
    # the whole sweep at the first failed job and skip the summary callback. run() has already
    # written metrics.json with status "failed"; main() exits non-zero after the summary.
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    threads = _threads_per_job(hydra_cfg.launcher) if multirun else None
    # signal.signal works only in a process's main thread; a launcher running jobs in threads
    # keeps the default handlers. Installed before torch is imported, so that a SIGTERM at any
    # point of the job prints how to continue.
    main_thread = threading.current_thread() is threading.main_thread()
    # SIGTERM (SLURM preemption, `kill`) stops the run the way Ctrl-C does: run() marks it
    # interrupted, and checkpoints/last.pt of the last finished epoch lets it resume.
    previous = ({name: signal.signal(name, interrupt.stop_job)
                 for name in (signal.SIGTERM, signal.SIGINT)} if main_thread else {})
    try:
        from ..training.run import run

        if threads:
            import torch

            torch.set_num_threads(threads)
        if multirun and _is_joblib(hydra_cfg.launcher):
            parallel.pin_job(hydra_cfg.job.num)
        metrics = run(cfg, run_dir, sweep_job=multirun, epoch_report=_trial_report(hydra_cfg))
    except VBenchError as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if not multirun:
            _refuse(e)
        err_console.print(f"vbench: error: {e}", markup=False, highlight=False, soft_wrap=True)
        return math.nan  # a failed trial to a sweeper (optuna records NaN as failed)
    except KeyboardInterrupt as e:
        if interrupt.in_worker():  # the sweep's main process prints how to continue, once
            err_console.print(f"vbench: job {hydra_cfg.job.num} interrupted", markup=False,
                              highlight=False)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)  # a worker that returned would take the sweep's next job
        command = _continue_command(hydra_cfg, multirun)
        err_console.print(f"vbench: interrupted ({str(e) or 'SIGINT'}); continue with: {command}",
                          markup=False, highlight=False, soft_wrap=True)
        _log_line(run_dir, f"vbench: continue with: {command}")  # the log says it too
        sys.exit(130)
    except Exception:
        if not multirun or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        err_console.print_exception()
        return math.nan
    finally:
        for name, handler in previous.items():
            signal.signal(name, handler)
    return objective(metrics)


def objective(metrics: dict) -> float:
    """The value a Hydra sweeper (hydra/sweeper=optuna) optimizes: the best epoch's monitored
    val metric (trainer.monitor: val_acc's accuracy, val_loss's loss; the EMA weights' for
    ema_val_*), the value each epoch reported to the trial; a scikit-learn baseline, which
    monitors nothing, its val accuracy. NaN without a best epoch: a failed trial."""
    from ..core.columns import ACCURACY, EMA_VAL_ACC, EMA_VAL_LOSS, MONITORED

    monitor = metrics["monitor"]
    best = (metrics.get("ema") or {}).get("best") if monitor in (EMA_VAL_LOSS, EMA_VAL_ACC) \
        else metrics["best"]
    return best["val"][MONITORED[monitor] if monitor else ACCURACY] if best else math.nan


def _trial_report(hydra_cfg):
    """A job of hydra/sweeper=optuna reports each epoch to its trial (study.TrialReport);
    None for any other job."""
    from ..core.schema import SWEEPER_TARGET

    sweeper = hydra_cfg.sweeper
    if sweeper.get("_target_") != SWEEPER_TARGET or sweeper.trial is None:
        return None
    from .study import TrialReport

    return TrialReport(sweeper)


# Hydra's own path: sweeps, --cfg, --info, ... (it composes the config again).
_app = hydra.main(version_base="1.3", config_path="pkg://vbench.conf", config_name="config")(_job)


def _run_composed(cfg: DictConfig, config_name: str) -> None:
    """One run of the config check_command_line composed and checked, which Hydra's path would
    compose a second time (about 0.1 s): Hydra.run's steps after its composition, through
    run_job, the function Hydra's launchers start jobs with."""
    from hydra.core.utils import configure_log, run_job
    from hydra.types import HydraContext, RunMode
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.hydra.mode = RunMode.RUN
        cfg.hydra.overrides.hydra.append("hydra.mode=RUN")  # as Hydra records it
    configure_log(cfg.hydra.hydra_logging, cfg.hydra.verbose)
    callbacks = hydra_private.callbacks(cfg)
    callbacks.on_run_start(config=cfg, config_name=config_name)
    run_dir = Path(str(cfg.hydra.run.dir)).absolute()
    made = [p for p in run_dir.parents if not p.exists()]  # Hydra makes them; deepest first
    try:
        ret = run_job(hydra_context=HydraContext(config_loader=None, callbacks=callbacks),
                      task_function=_job, config=cfg, job_dir_key="hydra.run.dir",
                      job_subdir_key=None)
    finally:
        if not run_dir.exists():  # refused before it produced anything (run() removed it):
            for folder in made:  # nor the empty folders made for it (outputs/runs/)
                with contextlib.suppress(OSError):
                    folder.rmdir()
    callbacks.on_run_end(config=cfg, config_name=config_name, job_return=ret)
    # The job's exception as Hydra's path reports it (HYDRA_FULL_ERROR=1: the whole trace).
    hydra_private.run_and_report(lambda: ret.return_value)


def _log_line(run_dir, line: str) -> None:
    """A line at the end of the run's vbench.log, if the run has one (rank 0 writes it)."""
    from ..core.rundir import LOG_FILE

    log = Path(run_dir) / LOG_FILE
    if log.is_file():
        with contextlib.suppress(OSError), open(log, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def _continue_command(hydra_cfg, multirun: bool) -> str:
    if multirun:
        return interrupt.continue_command("hydra.sweep.dir", hydra_cfg.sweep.dir)
    return interrupt.continue_command("hydra.run.dir", hydra_cfg.runtime.output_dir)


def _pinned_run_dir(argv: list[str], cfg) -> list[str]:
    """A hydra.run.dir=... that interpolates (`${now:...}`) resolved once, here: Hydra would
    resolve it again later, to another time, and the run would not be in the directory whose
    lock was taken."""
    key = "hydra.run.dir="
    if not any(a.startswith(key) and "${" in a for a in argv[1:]):
        return argv
    value = str(cfg.hydra.run.dir).replace("\\", "\\\\").replace("'", "\\'")
    return [f"{key}'{value}'" if a.startswith(key) else a for a in argv]


def _claim_output_dir(cfg, multirun: bool):
    """Before Hydra writes .hydra/ into it: the lock of an explicitly named run directory (one
    with a timestamp is new anyway), or at least a check that the output folder can be made."""
    from ..core.errors import VBenchError

    target = cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir
    named = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    chosen = any(a.startswith(f"{named}=") for a in sys.argv[1:])
    if chosen and not multirun:
        return _claimed(Path(target), cfg)
    folder = Path(target).parent
    # Checked, not made: a run refused later (its data missing) must leave no empty folder.
    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise VBenchError(f"cannot make the output folder {folder}: {existing} is not a folder; "
                          f"choose another with {named}=...")
    if not os.access(existing, os.W_OK):
        raise VBenchError(f"cannot write the output folder {folder}: permission denied; choose "
                          f"another with {named}=...")
    return contextlib.nullcontext()


@contextlib.contextmanager
def _claimed(run_dir, cfg):
    """The run directory's lock, and the check that a finished run there is of this config:
    both before Hydra overwrites the directory's .hydra/config.yaml."""
    from ..core.rundir import exclusive
    from ..core.schema import typed
    from ..training.checkpoint import config_fingerprint
    from ..training.resume import finished_metrics

    with exclusive(run_dir):
        root = typed(cfg)
        finished_metrics(root.trainer.resume, config_fingerprint(root), run_dir)
        yield


def main() -> None:
    from ..core.errors import VBenchError
    from ..core.schema import typed
    from ..training import distributed
    from .preconditions import check_jobs, check_torchvision
    from .preflight import compose_command_line, expand_home, full_errors

    if "--version" in sys.argv[1:]:  # Hydra's own --version would print Hydra's version
        from .help import version_text

        print(version_text())
        try:  # the versions are no use if the two do not work together
            from ..core.install import check_torchvision as torchvision_loads

            torchvision_loads()
        except VBenchError as e:
            _refuse(e)
        return
    if distributed.launched():  # torchrun: one run directory for all ranks (distributed.py)
        sys.argv = distributed.agree_on_run_dir(sys.argv)
    sys.argv[1:] = expand_home(sys.argv[1:])  # dataset.root=~/photos: Hydra refuses the ~
    _optuna_sweeper_is_vbenchs()
    args = hydra_private.get_args_parser().parse_args()
    cfg = None
    with contextlib.ExitStack() as held:
        if not (args.hydra_help or args.info or args.shell_completion or args.experimental_rerun):
            try:
                cfg, jobs = compose_command_line(args)
                if args.help:
                    from .help import help_text

                    print(help_text(cfg, dict(cfg.hydra.runtime.choices)), end="")
                    return
                if not args.cfg:  # before any directory is made: what the jobs need is there
                    checked = [typed(job) for job in jobs]
                    check_jobs(checked) if args.multirun else check_torchvision(checked)
                if not args.cfg and not args.multirun:
                    sys.argv = _pinned_run_dir(sys.argv, cfg)
                    with open_dict(cfg):  # ${now:...} resolved once: the lock's directory
                        cfg.hydra.run.dir = str(cfg.hydra.run.dir)
                if not args.cfg and distributed.is_main():
                    held.enter_context(_claim_output_dir(cfg, args.multirun))
            except VBenchError as e:
                if full_errors():
                    raise
                _refuse(e)
        # A single run goes on with the config composed above; the rest takes Hydra's path
        # (--config-path: the checked config came from the package's, not that folder).
        if cfg is not None and not (args.cfg or args.multirun or args.config_path):
            _run_composed(cfg, args.config_name or "config")
        else:
            _app()
    from .report import SweepSummary

    if SweepSummary.failed_jobs:
        from ..core.console import err_console

        err_console.print(f"vbench: {len(SweepSummary.failed_jobs)} job(s) of the sweep did not "
                          f"finish: {', '.join(SweepSummary.failed_jobs)}", highlight=False,
                          soft_wrap=True)
        sys.exit(1)


command = console_command(main)  # the `vbench` script and `python -m vbench`


def _optuna_sweeper_is_vbenchs() -> None:
    """hydra-optuna-sweeper (Optuna < 3) stores hydra/sweeper/optuna too, and Hydra's plugin
    scan runs the plugins' registrations in the order of their folders on sys.path: with both
    installed, the scan is done here, once per process, and vbench's entries stored after it.
    Hydra hands this process's ConfigStore to the launchers' worker processes."""
    import importlib.util

    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None or \
            importlib.util.find_spec("hydra_plugins.vbench_optuna") is None:
        return
    from hydra.core.plugins import Plugins

    Plugins.instance()  # the scan
    from hydra_plugins.vbench_optuna import optuna_sweeper

    optuna_sweeper.store()


def _refuse(error: Exception) -> None:
    """A user's mistake: one line, exit 2 (Hydra itself would print several and exit 1)."""
    from ..core.console import err_console

    err_console.print(f"vbench: error: {error}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(2)


if __name__ == "__main__":
    command()
