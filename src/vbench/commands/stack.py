"""hydra/launcher=stack on Hydra's launcher API: the sweep's jobs are grouped by their
overrides less trainer.seed; a group of several seeds that can be stacked trains as one
stacked model (training/stack.py), each member in its own job directory, which Hydra's
run_job prepares as for any job (.hydra/, the job's logging); every other job runs as the
basic launcher runs it. A group that cannot be stacked says why in one line."""

import math
import signal
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, configure_log, run_job, setup_globals
from omegaconf import open_dict

from ..core.console import console, err_console
from . import interrupt

SEED = "trainer.seed="


def launch(launcher, job_overrides, initial_job_idx: int) -> list[JobReturn]:
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    groups: dict[tuple, list] = {}
    for i, overrides in enumerate(job_overrides):
        key = tuple(o for o in overrides if not o.startswith(SEED))
        groups.setdefault(key, []).append((initial_job_idx + i, list(overrides)))
    returns = {}
    for key, members in groups.items():
        returns |= _launch_group(launcher, key, members)
    return [returns[initial_job_idx + i] for i in range(len(job_overrides))]


def _launch_group(launcher, key: tuple, members: list) -> dict[int, JobReturn]:
    from ..core.schema import typed
    from ..training.stack import NotStackable, why_not_stacked

    cfgs = {idx: _sweep_config(launcher, idx, overrides) for idx, overrides in members}
    reason = "one seed" if len(cfgs) == 1 else next(
        (why for why in map(why_not_stacked, map(typed, cfgs.values())) if why), None)
    if reason is None:
        try:
            return _stacked(launcher, cfgs)
        except NotStackable as e:
            reason = str(e)
    if len(cfgs) > 1:
        console.print(f"not stacked: the {len(cfgs)} seeds of {' '.join(key) or '(defaults)'} "
                      f"run one after another ({reason})", highlight=False, soft_wrap=True)
    return {idx: _run(launcher, cfg, launcher.task_function) for idx, cfg in cfgs.items()}


def _sweep_config(launcher, idx: int, overrides: list[str]):
    cfg = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, overrides)
    with open_dict(cfg):
        cfg.hydra.job.id = f"{cfg.hydra.job.name}_{idx}"
        cfg.hydra.job.num = idx
    return cfg


def _run(launcher, cfg, task) -> JobReturn:
    HydraConfig.instance().set_config(cfg)
    return run_job(hydra_context=launcher.hydra_context, task_function=task, config=cfg,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


def _stacked(launcher, cfgs: dict) -> dict[int, JobReturn]:
    """The group's job directories made by run_job (its task only notes them), then the
    stack trained over them; each job returns what a job of it returns to a sweeper."""
    from ..core.schema import typed
    from ..training.stack import run_stack
    from .cli import objective

    prepared = []

    def note(task_cfg):
        prepared.append((typed(task_cfg), HydraConfig.get().runtime.output_dir))

    returns = {idx: _run(launcher, cfg, note) for idx, cfg in cfgs.items()}
    previous = {name: signal.signal(name, interrupt.stop_job)
                for name in (signal.SIGTERM, signal.SIGINT)}
    try:
        results = run_stack([c for c, _ in prepared], [Path(d) for _, d in prepared])
    except KeyboardInterrupt as e:
        command = interrupt.continue_command("hydra.sweep.dir", launcher.config.hydra.sweep.dir)
        err_console.print(f"vbench: interrupted ({str(e) or 'SIGINT'}); continue with: "
                          f"{command}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - each member's metrics.json already says failed
        err_console.print(f"vbench: error: the stack of seeds failed: {type(e).__name__}: {e}",
                          markup=False, highlight=False, soft_wrap=True)
        results = [None] * len(prepared)
    finally:
        for name, handler in previous.items():
            signal.signal(name, handler)
    for ret, metrics in zip(returns.values(), results, strict=True):
        ret.return_value = objective(metrics) if metrics is not None else math.nan
    return returns
