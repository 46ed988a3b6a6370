"""hydra/sweeper=optuna: an Optuna study run as a Hydra sweep, on Hydra's Sweeper API (the
plugin class Hydra instantiates is the shim src/hydra_plugins/vbench_optuna/; the keys are
core/schema.py's OptunaSweeper; Optuna's side is study.py).

Each worker (`vbench -m ...`; the same command on N shells or machines with the same storage
and study name makes N workers) repeats: claim up to n_jobs trials, launch them as one batch
through the configured launcher (basic, joblib, fill, submitit), tell the study how each
ended. A trial is a run in <sweep dir>/<trial number>_<overrides>/ that reports its monitored
val metric every epoch and ends `pruned` when the pruner says so. When the study has its
n_trials the worker waits for the trials other workers still run (and takes over those whose
worker is gone), then writes optimization_results.yaml: every trial, its state, and the best
completed trial's config. The sweep summary (summary.md, report.html) lists them too.
"""

import logging
import math
import time
from pathlib import Path

from omegaconf import OmegaConf

from ..core import files
from ..core.console import console
from ..core.rundir import METRICS_FILE, OPTIMIZATION_RESULTS
from ..core.status import PRUNED
from . import study as studies

log = logging.getLogger(__name__)
POLL_S = 2.0  # how often a worker with nothing left to claim looks at the others' trials


def which_sweeper_line() -> str:
    """One line naming the sweeper hydra/sweeper=optuna resolves to (the old plugin registers
    the same name; vbench's replaces it)."""
    import importlib.metadata
    import importlib.util

    import optuna

    line = f"hydra/sweeper=optuna: vbench's Optuna sweeper (optuna {optuna.__version__})"
    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None:
        try:
            old = importlib.metadata.version("hydra-optuna-sweeper")
        except importlib.metadata.PackageNotFoundError:
            old = "?"
        line += f"; hydra-optuna-sweeper {old} is installed too and not used"
    return line


class Search:
    """One worker of the study: what the shim's setup() and sweep() do."""

    def __init__(self, hydra_context, task_function, config):
        from hydra.core.plugins import Plugins

        self.config = config
        self.node = config.hydra.sweeper
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    def sweep(self, arguments: list[str]) -> None:
        node = self.node
        space, fixed = studies.search_space(node.params, arguments)
        spec = studies.storage_spec(node.storage, self.sweep_dir)
        name = node.study_name or studies.DEFAULT_STUDY
        n_trials = node.n_trials
        if str(node.sampler._target_).endswith("GridSampler"):  # each combination once
            n_trials = min(n_trials, studies.grid_size(space))
        self.sweep_dir.mkdir(parents=True, exist_ok=True)  # the default journal lives there
        storage = studies.open_storage(spec)
        study = studies.open_study(storage, spec, name, node.direction,
                                   studies.build_sampler(node.sampler, space),
                                   studies.build_pruner(node.pruner), space)
        done = len(study.get_trials(deepcopy=False))
        console.print(f"{which_sweeper_line()}; study {name!r} in {spec}: {done} of {n_trials} "
                      f"trials started before; pruner {_pruner_name(node.pruner)}",
                      highlight=False, soft_wrap=True)
        job_overrides = [f"hydra.sweeper.storage={studies.quoted(spec)}",
                         f"hydra.sweeper.study_name={studies.quoted(name)}"]
        with studies.Heartbeat(storage, max(1.0, node.stale_after_s / 4)) as beat:
            while True:
                batch = []
                for _ in range(node.n_jobs):
                    claimed = studies.claim(
                        study, storage, spec, n_trials, node.stale_after_s, space,
                        lambda number: studies.build_sampler(node.sampler, space, number))
                    if claimed is None:
                        break
                    batch.append(claimed)
                if not batch:
                    if studies.running_elsewhere(study):  # others' trials: wait for them, and
                        time.sleep(POLL_S)                # take over any whose worker is gone
                        continue
                    break
                self._run(study, storage, batch, fixed, job_overrides, beat)
        write_results(study, spec, node, self.sweep_dir)

    def _run(self, study, storage, batch, fixed, job_overrides, beat) -> None:
        trials = [trial for trial, _ in batch]
        overrides = []
        for trial, again in batch:
            lines = [studies.override(k, v) for k, v in trial.params.items()] + fixed
            trial.set_user_attr(studies.OVERRIDES, lines)
            overrides.append([*lines, *job_overrides, f"hydra.sweeper.trial={trial.number}"])
            beat.trials.add(studies._trial_id(storage, study, trial.number))
            if again:
                console.print(f"trial {trial.number}: its worker is gone; running it again",
                              highlight=False)
        returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
        for trial, ret in zip(trials, returns, strict=True):
            self._tell(study, trial, ret)
            beat.trials.discard(studies._trial_id(storage, study, trial.number))

    def _tell(self, study, trial, ret) -> None:
        """How the trial ended, from its run's metrics.json (status) and the job's return
        value (the best epoch's monitored metric): complete, pruned, or failed."""
        from hydra.core.utils import JobStatus
        from optuna.trial import TrialState

        run_dir = Path(str(ret.hydra_cfg.hydra.runtime.output_dir)) if ret.hydra_cfg else None
        value = ret.return_value if ret.status == JobStatus.COMPLETED else math.nan
        status = _status(run_dir)
        if run_dir is not None:
            trial.set_user_attr(studies.RUN_DIR, _relative(run_dir, self.sweep_dir))
        try:
            if status == PRUNED:
                study.tell(trial, state=TrialState.PRUNED)
            elif isinstance(value, (int, float)) and math.isfinite(value):
                study.tell(trial, float(value))
            else:
                study.tell(trial, state=TrialState.FAIL)
        except (RuntimeError, ValueError) as e:
            # GridSampler calls study.stop() once the grid is done, which Optuna refuses
            # outside study.optimize, after recording the trial's state; anything else: a
            # trial told already (its worker was taken for gone)
            if "Study.stop" not in str(e):
                log.warning(f"trial {trial.number}: {e}")


def _status(run_dir: Path | None) -> str | None:
    import json

    try:
        return json.loads((run_dir / METRICS_FILE).read_text()).get("status")
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


def _pruner_name(pruner) -> str:
    return pruner if isinstance(pruner, str) else str(pruner.name)


def write_results(study, spec: str, node, sweep_dir: Path) -> dict:
    """optimization_results.yaml: the study (name, storage, direction, sampler, pruner), every
    trial with its state, value, parameters and run directory, and the best completed trial
    with the overrides that reproduce it (best_params and best_value as hydra-optuna-sweeper
    wrote them)."""
    import yaml
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    records = [{"number": t.number, "state": t.state.name.lower(),
                "value": t.value if t.state == TrialState.COMPLETE else (
                    t.intermediate_values[t.last_step] if t.last_step is not None else None),
                "epochs_reported": len(t.intermediate_values),
                "params": dict(t.params), "run_dir": t.user_attrs.get(studies.RUN_DIR)}
               for t in trials]
    states = {}
    for r in records:
        states[r["state"]] = states.get(r["state"], 0) + 1
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    results = {"name": "optuna", "study_name": study.study_name, "storage": spec,
               "direction": str(node.direction), "sampler": str(node.sampler._target_),
               "pruner": OmegaConf.to_container(node.pruner) if OmegaConf.is_config(node.pruner)
               else node.pruner, "n_trials": int(node.n_trials), "states": states}
    if complete:
        best = study.best_trial  # Optuna's best is among completed trials only
        overrides = best.user_attrs.get(studies.OVERRIDES) or []
        results |= {"best_params": dict(best.params), "best_value": best.value,
                    "best_trial": {"number": best.number, "value": best.value,
                                   "params": dict(best.params),
                                   "run_dir": best.user_attrs.get(studies.RUN_DIR),
                                   "overrides": list(overrides),
                                   "command": "vbench " + " ".join(overrides)}}
    results["trials"] = records
    files.write_text(sweep_dir / OPTIMIZATION_RESULTS,
                     yaml.safe_dump(results, sort_keys=False, default_flow_style=None))
    summary = ", ".join(f"{n} {s}" for s, n in states.items())
    console.print(f"study {study.study_name!r}: {len(trials)} trials ({summary})"
                  + (f"; best: trial {results['best_trial']['number']}, value "
                     f"{results['best_value']:.4f}" if complete else "; none completed")
                  + f"; {OPTIMIZATION_RESULTS} in {sweep_dir}", highlight=False, soft_wrap=True)
    return results
