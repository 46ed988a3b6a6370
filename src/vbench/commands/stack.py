"""hydra/launcher=stack on Hydra's launcher API: the sweep's jobs are grouped by their
overrides less trainer.seed; a group of several seeds that can be stacked trains as one
stacked model (training/stack.py), each member in its own job directory, which Hydra's
run_job prepares as for any job (.hydra/, the job's logging); every other job runs as the
basic launcher runs it. A group that cannot be stacked says why in one line.

With `run.jobs_per_device=K` (or several GPUs) the groups share the machine as the fill
launcher's jobs do (commands/parallel.py): K worker processes per GPU, group i on GPU i mod N,
or K sharing the CPU cores with cores // K torch threads each. The workers are joblib's, as
Hydra's joblib launcher starts them; a signal to the sweep reaches them through
interrupt.EndWorkersWithSweep."""

import math
import os
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
    workers = _workers(launcher.config.run.jobs_per_device, len(groups))
    returns = {}
    if workers > 1:
        for done in _in_workers(launcher, list(groups.items()), workers):
            returns |= done
    else:
        for key, members in groups.items():
            returns |= _launch_group(launcher, key, members)
    return [returns[initial_job_idx + i] for i in range(len(job_overrides))]


def _workers(per_device: int, groups: int) -> int:
    """Worker processes for the groups: K per GPU (K without one), never more than groups;
    1 runs them here, one after another."""
    from .parallel import visible_gpus

    return max(1, min(int(per_device) * max(1, visible_gpus()), groups))


def _in_workers(launcher, groups: list, workers: int) -> list[dict[int, JobReturn]]:
    from hydra.core.singleton import Singleton
    from joblib import Parallel, delayed

    state = Singleton.get_state()
    return Parallel(n_jobs=workers, backend="loky")(
        delayed(_group_in_worker)(state, launcher, key, members, index, workers)
        for index, (key, members) in enumerate(groups))


def _group_in_worker(state, launcher, key: tuple, members: list, index: int,
                     workers: int) -> dict[int, JobReturn]:
    """Group `index` in a worker process: Hydra's state as the main process has it, the
    worker's share of the cores, its GPU; its lines labelled with its group."""
    import torch
    from hydra.core.singleton import Singleton
    from joblib import cpu_count

    from ..core.console import labelled
    from . import parallel

    Singleton.set_state(state)
    setup_globals()
    torch.set_num_threads(max(1, cpu_count() // workers))
    parallel.pin_job(index)
    with labelled(f"[stack {index}] "):
        return _launch_group(launcher, key, members)


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
        if interrupt.in_worker():  # the sweep's main process prints how to continue, once
            err_console.print("vbench: stack interrupted", markup=False, highlight=False)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)  # a worker that returned would take the sweep's next group
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
