"""Optuna's side of hydra/sweeper=optuna, shared by the sweeper (optuna_sweeper.py), the check
before any trial (preflight.py) and the job that reports its epochs (cli._job): the storage,
the study, its search space, sampler and pruner, and the trial a job reports to.

Written here rather than taken from hydra-optuna-sweeper: its last release (1.3.0) requires
Optuna < 3 and SQLAlchemy < 2, and it neither prunes (a Hydra job is another process, or another
machine, that must reach the study itself) nor shares one study between several sweeps.
The search-space syntax is Hydra's override grammar, read with Hydra's public parser, with
the meaning hydra-optuna-sweeper gave it.

The study lives in storage several processes share: a journal file (Optuna's JournalStorage
over JournalFileBackend, which locks the file for each append) or a database URL. A trial
belongs to the worker that asked for it: the worker writes its id and a heartbeat into the
trial's user attributes, and a trial left RUNNING by a worker that is gone is run again, as
the same trial, by the next worker that looks (claim()).
"""

import contextlib
import json
import math
import os
import socket
import time
from pathlib import Path

from ..core.errors import VBenchError
from ..core.rundir import OPTUNA_JOURNAL
from ..core.schema import PRUNERS

DEFAULT_STUDY = "vbench"
# Trial user attributes vbench writes (optuna-dashboard shows them with each trial).
OWNER, HEARTBEAT = "vbench:worker", "vbench:heartbeat"
RUN_DIR, OVERRIDES = "vbench:run_dir", "vbench:overrides"
SEARCH_SPACE = "vbench:search_space"  # the study's: what a later worker must search too
_PRUNER_CLASSES = {"none": "NopPruner", "median": "MedianPruner",
                   "percentile": "PercentilePruner",
                   "successive_halving": "SuccessiveHalvingPruner",
                   "hyperband": "HyperbandPruner", "threshold": "ThresholdPruner"}
assert set(_PRUNER_CLASSES) == set(PRUNERS)


def _first_line(e: BaseException) -> str:
    return next((line.strip() for line in str(e).splitlines() if line.strip()),
                type(e).__name__)


def _quiet() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # vbench prints its own lines


# ----------------------------------------------------------------------------------------------
# Storage


def storage_spec(storage: str | None, sweep_dir) -> str:
    """The storage as given (a database URL or a journal file), or the default journal file in
    the sweep directory; a relative journal path is made absolute, for jobs run elsewhere."""
    if storage is None:
        return str(Path(str(sweep_dir)).absolute() / OPTUNA_JOURNAL)
    return storage if "://" in storage else str(Path(storage).expanduser().absolute())


def is_journal(spec: str) -> bool:
    return "://" not in spec


def open_storage(spec: str):
    """Optuna's storage for `spec`, or one line saying why it cannot be opened."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    _quiet()
    try:
        if not is_journal(spec):
            return _database(spec)
        path = Path(spec)
        if path.is_dir():
            raise VBenchError("it is a folder")
        if not path.parent.is_dir():
            raise VBenchError(f"no folder {path.parent}")
        return JournalStorage(JournalFileBackend(spec))
    except Exception as e:  # noqa: BLE001  SQLAlchemy's, the journal's, the OS's: one line
        driver = _missing_module(e)  # Optuna's ImportError, caused by the URL's driver's
        if driver:
            raise VBenchError(f"hydra.sweeper.storage={spec} cannot be opened: its driver "
                              f"{driver} is not installed; pip install {driver} (PostgreSQL: "
                              "pip install 'vbench[postgresql]' and a postgresql+psycopg:// URL)"
                              ) from None
        raise VBenchError(f"hydra.sweeper.storage={spec} cannot be opened: {_first_line(e)}; "
                          "give a journal file in an existing folder, or a database URL such "
                          "as sqlite:///optuna.db") from None


def _missing_module(error: BaseException | None) -> str | None:
    while error is not None:
        if isinstance(error, ModuleNotFoundError) and error.name:
            return error.name
        error = error.__cause__ or error.__context__
    return None


# Workers started together on a new database race to create its tables: the loser's insert
# of Optuna's schema version fails (a UNIQUE error), SQLite says the database is locked, or
# PostgreSQL that a type or table already exists. A moment later the tables are there, and
# opening again succeeds. A server that cannot be reached is not tried again (each try could
# wait for the network's timeout).
DATABASE_OPEN_TRIES = 5


def _database(spec: str):
    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    races = (IntegrityError, OperationalError) if spec.startswith("sqlite:") else \
        (IntegrityError, ProgrammingError)
    for attempt in range(1, DATABASE_OPEN_TRIES + 1):
        try:
            return optuna.storages.RDBStorage(spec)
        except races:
            if attempt == DATABASE_OPEN_TRIES:
                raise
            time.sleep(0.2 * attempt)


@contextlib.contextmanager
def claim_lock(spec: str, storage):
    """Held while a worker counts the study's trials and claims one, so that workers never
    claim more than n_trials together. A journal or SQLite file: Optuna's lock for files that
    several machines share (O_EXCL, NFS-safe; a lock older than 30 s is broken), beside it.
    PostgreSQL: an advisory lock of the server, held by this worker's connection (the server
    lets go of it if the worker dies). Any other database has neither: there, two workers that
    count at the same instant may claim more than n_trials (README)."""
    path = spec if is_journal(spec) else spec.removeprefix("sqlite:///") \
        if spec.startswith("sqlite:///") else None
    if path is not None:
        from optuna.storages.journal import JournalFileOpenLock

        lock = JournalFileOpenLock(f"{path}.claim")
        lock.acquire()
        try:
            yield
        finally:
            lock.release()
    elif storage.engine.dialect.name == "postgresql":
        with _advisory_lock(storage.engine):
            yield
    else:
        yield


# The advisory lock's key: any 64-bit number that other applications of the database are
# unlikely to use; one for every study of the database (claims are short).
_CLAIM_KEY = int.from_bytes(b"vbench:c", "big")


@contextlib.contextmanager
def _advisory_lock(engine):
    from sqlalchemy import text

    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _CLAIM_KEY})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _CLAIM_KEY})


# ----------------------------------------------------------------------------------------------
# Search space, sampler, pruner


def search_space(params, arguments: list[str]) -> tuple[dict, list[str]]:
    """hydra.sweeper.params and the command line's overrides (which win) as Optuna's
    distributions, and the fixed overrides every trial gets: interval(lo, hi) is a float (or,
    with two integers, an int) range, tag(log, interval(...)) the same on a log scale,
    choice(...) and a comma list a categorical, range(a, b[, step]) the integers Hydra's
    range lists (b excluded)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except OverrideParseException as e:
        raise VBenchError(f"hydra.sweeper.params: cannot parse: {_first_line(e)}") from None
    space, fixed = {}, {}
    for o in parsed:
        key = o.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if o.is_sweep_override():
            space[key] = _distribution(o)
        else:
            fixed[key] = o.input_line
    return space, list(fixed.values())


def _distribution(o):
    from hydra.core.override_parser.types import Glob, Transformer
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    value = o.value()
    if isinstance(value, Glob):
        value = None  # names of a group's options: not a distribution
    try:
        if value is None:
            pass
        elif o.is_choice_sweep() or (o.is_range_sweep() and value.shuffle):
            return CategoricalDistribution(list(o.sweep_iterator(transformer=Transformer.encode)))
        elif o.is_range_sweep():
            values = list(o.sweep_iterator())
            if not values:
                raise ValueError("it lists no value")
            if all(isinstance(v, int) for v in values):
                return IntDistribution(values[0], values[-1], step=int(value.step))
            return FloatDistribution(values[0], values[-1], step=float(value.step))
        elif o.is_interval_sweep():
            log = "log" in value.tags
            if isinstance(value.start, int) and isinstance(value.end, int):
                return IntDistribution(value.start, value.end, log=log)
            return FloatDistribution(float(value.start), float(value.end), log=log)
    except ValueError as e:
        raise VBenchError(f"{o.input_line} is not a valid search space: {_first_line(e)}") \
            from None
    raise VBenchError(f"{o.input_line}: Optuna "
                      "searches interval(lo, hi), tag(log, interval(lo, hi)), choice(...) and "
                      "range(a, b)")


def probe_values(distribution) -> list:
    """The values of a distribution to check against the schema before any trial: every
    choice, and the bounds of a range."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    return [distribution.low, distribution.high]


def override(key: str, value) -> str:
    """`key=value` as Hydra's override grammar reads it back to `value`."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)  # a choice's string, already in the grammar's form (Transformer.encode)
    return f"{key}={text}"


def quoted(text: str) -> str:
    """A string as one quoted value of Hydra's override grammar."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def build_pruner(spec):
    """hydra.sweeper.pruner (a name, or {name: ..., <Optuna's parameters>}) as Optuna's pruner;
    a name or parameter Optuna does not take is one line."""
    import inspect

    import optuna
    from omegaconf import DictConfig, OmegaConf

    if isinstance(spec, DictConfig):
        spec = OmegaConf.to_container(spec, resolve=True)
    kwargs = dict(spec) if isinstance(spec, dict) else {"name": spec}
    name = kwargs.pop("name", None)
    if name not in _PRUNER_CLASSES:
        raise VBenchError(f"hydra.sweeper.pruner={name!r} is not a pruner; choose one of: "
                          f"{', '.join(PRUNERS)}")
    cls = getattr(optuna.pruners, _PRUNER_CLASSES[name])
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise VBenchError(f"hydra.sweeper.pruner: {name} has no parameter {unknown[0]}; its "
                          f"parameters: {', '.join(accepted) or 'none'}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        shown = ",".join(f"{k}:{v}" for k, v in kwargs.items())
        raise VBenchError(f"hydra.sweeper.pruner={{name:{name}{',' if shown else ''}{shown}}} "
                          f"is not valid: {_first_line(e)}") from None


def build_sampler(node, space: dict, number: int = 0):
    """hydra.sweeper.sampler as Optuna's sampler for trial `number` (GridSampler gets the
    search space's every value); parameters Optuna refuses are one line. A seeded sampler is
    seeded with seed + number: workers that each started from the same seed would otherwise
    draw the same parameters, and one worker still draws the same trials on every search."""
    from hydra.utils import get_class
    from omegaconf import DictConfig, OmegaConf

    kwargs = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else \
        dict(node)
    target = kwargs.pop("_target_")
    if kwargs.get("seed") is not None:
        kwargs["seed"] += number
    cls = get_class(target)
    if cls.__name__ == "GridSampler":
        kwargs["search_space"] = _grid(space)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, ImportError) as e:
        raise VBenchError(f"hydra.sweeper.sampler ({cls.__name__}) is not valid: "
                          f"{_first_line(e)}") from None


def _grid(space: dict) -> dict:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    grid = {}
    for key, d in space.items():
        if isinstance(d, CategoricalDistribution):
            grid[key] = list(d.choices)
        elif isinstance(d, IntDistribution) and not d.log:
            grid[key] = list(range(d.low, d.high + 1, d.step))
        else:
            raise VBenchError(f"hydra/sweeper/sampler=grid takes choice() and range() only; "
                              f"{key} is an interval: make it a choice or a range")
    return grid


def grid_size(space: dict) -> int:
    return math.prod(len(v) for v in _grid(space).values())


# ----------------------------------------------------------------------------------------------
# The study


def _space_record(space: dict) -> dict:
    from optuna.distributions import distribution_to_json

    return {k: json.loads(distribution_to_json(d)) for k, d in sorted(space.items())}


def check_stored(storage, name: str, direction: str, space: dict, spec: str) -> bool:
    """The study `name` in `storage`, if there is one, must search what this command searches:
    one line naming the difference otherwise. Returns whether the study exists."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return False
    stored = [d.name.lower() for d in storage.get_study_directions(study_id)]
    if stored != [direction]:
        raise VBenchError(f"hydra.sweeper.direction={direction}, but the study {name!r} in "
                          f"{spec} was started to {', '.join(stored)}; use its direction, or "
                          "another hydra.sweeper.study_name")
    recorded = storage.get_study_user_attrs(study_id).get(SEARCH_SPACE)
    if recorded is not None and recorded != _space_record(space):
        here = _space_record(space)
        differ = sorted(k for k in set(recorded) | set(here) if recorded.get(k) != here.get(k))
        raise VBenchError(f"hydra.sweeper.params: the search space differs from the one of the "
                          f"study {name!r} in {spec} at {', '.join(differ)}; search the same "
                          "space, or use another hydra.sweeper.study_name")
    return True


def open_study(storage, spec: str, name: str, direction: str, sampler, pruner, space: dict):
    """The study, created (with its search space recorded) or continued."""
    import optuna

    check_stored(storage, name, direction, space, spec)
    study = optuna.create_study(storage=storage, study_name=name, direction=direction,
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    if SEARCH_SPACE not in study.user_attrs:
        study.set_user_attr(SEARCH_SPACE, _space_record(space))
    return study


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _gone(trial, stale_after_s: float, now: float) -> bool:
    """Whether a RUNNING trial's worker is gone: a process of this host that no longer exists,
    or no heartbeat for stale_after_s (another host, or a worker that hangs)."""
    owner = trial.user_attrs.get(OWNER)
    if owner == worker_id():
        return False
    host, _, pid = (owner or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # someone else's live process
    beat = trial.user_attrs.get(HEARTBEAT)
    if beat is None:
        beat = trial.datetime_start.timestamp() if trial.datetime_start else now
    return now - beat > stale_after_s


def claim(study, storage, spec: str, n_trials: int, stale_after_s: float, space: dict,
          sampler_for):
    """The next trial this worker runs, as (trial, whether it was left by a gone worker), or
    None when the study has its n_trials (`sampler_for(number)`: the sampler of a new trial):
    first a RUNNING trial whose worker is gone (it runs
    again with its own parameters, in its own job directory, so the run resumes from last.pt),
    else a new trial while the study holds fewer than n_trials."""
    import optuna
    from optuna.trial import TrialState

    with claim_lock(spec, storage):
        trials = study.get_trials(deepcopy=False)
        now = time.time()
        for t in trials:
            if t.state == TrialState.RUNNING and _gone(t, stale_after_s, now):
                # Optuna's Trial over an existing trial: the object study.ask() returns.
                trial = optuna.trial.Trial(study, _trial_id(storage, study, t.number))
                _own(trial)
                return trial, True
        if len(trials) >= n_trials:
            return None
        study.sampler = sampler_for(len(trials))  # the number the new trial gets
        trial = study.ask(fixed_distributions=space)
        _own(trial)
        return trial, False


def _trial_id(storage, study, number: int) -> int:
    return storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(study.study_name), number)


def _own(trial) -> None:
    trial.set_user_attr(OWNER, worker_id())
    trial.set_user_attr(HEARTBEAT, time.time())


def running_elsewhere(study) -> int:
    """Trials another worker still runs."""
    from optuna.trial import TrialState

    return sum(t.state == TrialState.RUNNING and t.user_attrs.get(OWNER) != worker_id()
               for t in study.get_trials(deepcopy=False))


class Heartbeat:
    """A thread that writes the time into each of this worker's running trials every few
    seconds, so that other workers know it is alive (claim())."""

    def __init__(self, storage, every_s: float):
        import threading

        self.storage, self.every_s, self.trials = storage, every_s, set()  # trial ids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="vbench-heartbeat", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _beat(self):
        while not self._stop.wait(self.every_s):
            for trial_id in list(self.trials):
                with contextlib.suppress(Exception):  # a trial told meanwhile: nothing to do
                    self.storage.set_trial_user_attr(trial_id, HEARTBEAT, time.time())


# ----------------------------------------------------------------------------------------------
# The job's side


class TrialReport:
    """What a trial's run calls after each epoch (training/run.py's EpochReport): the epoch's
    monitored value goes to the trial in the shared storage, and the study's pruner answers
    whether to stop. The job may run in another process or on another machine: it reaches the
    study through the storage the sweeper named in its overrides."""

    def __init__(self, sweeper):
        import optuna

        spec = sweeper.storage
        storage = open_storage(spec)
        name = sweeper.study_name or DEFAULT_STUDY
        study = optuna.load_study(study_name=name, storage=storage,
                                  pruner=build_pruner(sweeper.pruner),
                                  sampler=optuna.samplers.RandomSampler())
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(name), sweeper.trial)
        self.trial = optuna.trial.Trial(study, trial_id)

    def __call__(self, epoch: int, value: float) -> bool:
        import warnings

        with warnings.catch_warnings():  # a resumed run reports its restored epochs again
            warnings.simplefilter("ignore")
            self.trial.report(float(value), epoch)
        return self.trial.should_prune()
