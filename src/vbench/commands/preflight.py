"""Check a command line before Hydra starts any job: compose its config(s) with Hydra's compose
API, check them against the schema, and turn every failure, Hydra's own included, into one line.

Hydra reports its composition errors (unknown option, unknown key, a value of the wrong type, a
YAML syntax error) over several lines with exit code 1, and `vbench --cfg job` would print a
config that cannot run. Composing here first (about 0.1 s per config) costs little and gives
every error the same shape: `vbench: error: <key or file>: <what is wrong>; <the fix>`, exit 2.
A sweep is checked value by value (every value of every swept key, the others at their first
value), so a bad value fails before the first job trains.
"""

import difflib
import itertools
import math
import os
import re
from dataclasses import fields
from pathlib import Path

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from ..core.errors import VBenchError
from ..core.schema import GROUPS, declared_keys, validate
from . import parallel

_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


# A sweep of up to this many jobs has each job composed and checked; a larger one has each
# value of each swept key tried once (a combination of two valid values can still fail then).
MAX_COMPOSED_JOBS = 256


def check_command_line(args) -> DictConfig:
    """Compose and check every job the parsed command line (Hydra's argparse namespace) would
    run; raise VBenchError with one line on the first problem. Returns the config of the
    command line's fixed overrides, with its `hydra` node."""
    return compose_command_line(args)[0]


def compose_command_line(args) -> tuple[DictConfig, list[DictConfig]]:
    """check_command_line's work; also returns the composed config of each job checked (every
    job of a sweep of up to MAX_COMPOSED_JOBS; the base config alone for one run)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if args.multirun and args.cfg:  # Hydra refuses the pair with a traceback
        raise VBenchError(f"-m and --cfg {args.cfg} do not go together: --cfg prints the config "
                          "and runs nothing; leave out -m (a sweep's values: give one of them)")
    search = _search_path(args.config_dir)
    try:
        parsed = OverridesParser.create().parse_overrides(args.overrides)
    except OverrideParseException as e:
        raise VBenchError(f"cannot parse the overrides: {_first_line(e)}") from None
    sweeps = [o for o in parsed if o.is_sweep_override()]
    if sweeps and not args.multirun:
        o = sweeps[0]
        values = ",".join(o.sweep_string_iterator())
        raise VBenchError(f"{o.input_line} lists several values: add -m to sweep them "
                          f"(vbench -m {o.input_line}), or write a list as "
                          f"{o.get_key_element()}=[{values}]")
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()] + search
    GlobalHydra.instance().clear()
    with initialize_config_module("vbench.conf", version_base="1.3"):
        # The sweep's first job, so that a fixed override of a swept group's option composes
        # (`-m model=resnet18,vgg16 model.pretrained=true`: mlp has no pretrained)
        first = {o.get_key_element(): _values(o)[0] for o in sweeps
                 if o.is_discrete_sweep() and _values(o)}  # not an interval (optuna's space)
        base = _compose(compose, args.config_name or "config", fixed + _line(first), hydra=True)
        _once_each(_swept(sweeps, base) or {})
        jobs = _every_job(sweeps, base)
        if jobs is None or len(jobs) > MAX_COMPOSED_JOBS:
            jobs = [first | job for job in _one_value_each(sweeps, base)]
        jobs = [_compose(compose, args.config_name or "config", fixed + _line(job))
                for job in jobs] or [base]
        space = None
        if args.multirun and not args.help and _is_optuna(base):
            space = _search_space(parsed, base)
            for line in _probe_lines(space):
                _compose(compose, args.config_name or "config", fixed + line)
    GlobalHydra.instance().clear()
    if args.multirun and not args.help:  # --help launches nothing
        _check_launcher(base.hydra.launcher)
        if space is not None:
            _check_search(base, space)
        if base.hydra.runtime.choices.get("hydra/launcher") in ("fill", "stack"):
            parallel.check_fits(base.run.jobs_per_device)
        parallel.sweep_jobs = _sweep_size(sweeps, base)
    return base, jobs


def _is_optuna(base: DictConfig) -> bool:
    from ..core.schema import SWEEPER_TARGET

    return base.hydra.sweeper.get("_target_") == SWEEPER_TARGET


def _search_space(parsed, base: DictConfig) -> dict:
    """hydra/sweeper=optuna's search space (hydra.sweeper.params and the command line's
    sweeps), as the sweeper will read it."""
    from ..core.schema import validate_sweeper

    validate_sweeper(base.hydra.sweeper)
    try:
        from . import study
    except ImportError:
        raise VBenchError("hydra/sweeper=optuna needs Optuna: pip install -e '.[optuna]'") \
            from None
    task = [o.input_line for o in parsed if not o.is_hydra_override()]
    return study.search_space(base.hydra.sweeper.params, task)[0]


def _probe_lines(space: dict) -> list[list[str]]:
    """One job per value to check of each searched key (every choice, a range's bounds), so a
    key the schema does not know or a bound its rule refuses fails before any trial."""
    from . import study

    return [[study.override(key, value)] for key, d in space.items()
            for value in study.probe_values(d)]


def _check_search(base: DictConfig, space: dict) -> None:
    """hydra/sweeper=optuna before any trial: its pruner and sampler as Optuna builds them, a
    direction that agrees with trainer.monitor, and the storage, opened, holding no study of
    that name that searches another direction or space."""
    from ..core.columns import MONITORS
    from . import study

    node = base.hydra.sweeper
    study.build_pruner(node.pruner)
    study.build_sampler(node.sampler, space)
    monitor = base.trainer.monitor
    wanted = "maximize" if MONITORS[monitor] == "max" else "minimize"
    if node.direction != wanted:
        raise VBenchError(f"hydra.sweeper.direction={node.direction}, but trainer.monitor="
                          f"{monitor} is better {'higher' if wanted == 'maximize' else 'lower'}: "
                          f"each trial reports {monitor}; set hydra.sweeper.direction={wanted} "
                          f"or another trainer.monitor")
    spec = study.storage_spec(node.storage, base.hydra.sweep.dir)
    if node.storage is not None or Path(spec).is_file():
        storage = study.open_storage(spec)
        study.check_stored(storage, node.study_name or study.DEFAULT_STUDY, node.direction,
                           space, spec)


def _check_launcher(launcher) -> None:
    """A SLURM launcher needs SLURM's commands: submitit submits with sbatch and checks srun.
    Without them it fails deep inside the launch, after Hydra wrote the sweep directory."""
    import shutil

    if not str(launcher.get("_target_") or "").endswith("SlurmLauncher"):
        return
    missing = [command for command in ("sbatch", "srun") if shutil.which(command) is None]
    if missing:
        raise VBenchError(f"hydra/launcher: SLURM was not found (no {' or '.join(missing)} on "
                          "PATH); run the sweep on a SLURM login node, or on this machine with "
                          "hydra/launcher=submitit_local (or joblib)")


def expand_home(args: list[str]) -> list[str]:
    """Command-line words with `~` and `~/...` (and `~user/...`) at the start of an override's
    value replaced by that home directory, as the shell would have done had it been a word of
    its own: bash leaves `dataset.root=~/photos` as it is, and Hydra's override parser refuses
    a value starting with `~`. Also each value of a sweep or list (`dataset.root=~/a,~/b`,
    `[~/a]`), and `--config-dir=~/...`. Other options and quoted values are left alone."""
    return [_expand_override(a) if "=" in a and (not a.startswith("-")
                                                 or a.startswith("--config-dir=")) else a
            for a in args]


_HOME = re.compile(r"(?:^|(?<=[,\[]))~([A-Za-z0-9._-]*)(?=/|,|]|$)")


def _expand_override(override: str) -> str:
    key, _, value = override.partition("=")

    def home(match: re.Match) -> str:
        expanded = os.path.expanduser(match.group(0))
        return match.group(0) if expanded.startswith("~") else expanded  # an unknown user

    return f"{key}={_HOME.sub(home, value)}"


def _search_path(config_dir) -> list[str]:
    if config_dir is None:
        return []
    path = Path(config_dir).expanduser().resolve()
    if not path.is_dir():
        raise VBenchError(f"--config-dir={config_dir}: no such directory; give a folder holding "
                          "your own options, e.g. my_conf/model/my_mlp.yaml")
    return [f"hydra.searchpath=[file://{path}]"]


def _swept(sweeps, base: DictConfig) -> dict | None:
    """{key: override} of every swept key, for Hydra's basic sweeper: the command line's sweeps
    and the preset's hydra.sweeper.params (the command line wins). None for other sweepers
    (optuna), which choose values themselves: those are not known here."""
    sweeper = base.hydra.sweeper
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = {o.get_key_element(): o for o in sweeps}
    preset = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items() if k not in lines]
    for o in OverridesParser.create().parse_overrides(preset):
        lines[o.get_key_element()] = o
    return lines


def _values(override) -> list[str]:
    if override.is_sweep_override():
        return list(override.sweep_string_iterator())
    return [override.get_value_element_as_str()]


def _once_each(lines: dict) -> None:
    """A value swept twice runs the same job twice (two seeds 0 of a stack would be one run
    counted twice in its verdicts): one line before any job."""
    for key, override in lines.items():
        values = _values(override)
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise VBenchError(f"{key}={','.join(values)} lists {', '.join(twice)} more than "
                              f"once; give each value once ({key}="
                              f"{','.join(dict.fromkeys(values))})")


def _one_value_each(sweeps, base: DictConfig) -> list[dict[str, str]]:
    """Jobs that together try every value of every swept key once."""
    lines = _swept(sweeps, base) or {}
    return [{key: v} for key, o in lines.items() for v in _values(o)]


def _every_job(sweeps, base: DictConfig) -> list[dict[str, str]] | None:
    """Each job's {key: value} of the swept keys (the product of their values), for the basic
    sweeper; None for a sweeper that chooses its own trials."""
    lines = _swept(sweeps, base)
    if lines is None:
        return None
    keys = list(lines)
    return [dict(zip(keys, values, strict=True))
            for values in itertools.product(*(_values(o) for o in lines.values()))]


def _line(job: dict[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in job.items()]


def _sweep_size(sweeps, base: DictConfig) -> int | None:
    """How many jobs the basic sweeper launches: the product of the swept keys' value counts
    (None: a sweeper that chooses its own trials)."""
    lines = _swept(sweeps, base)
    return None if lines is None else math.prod(len(_values(o)) for o in lines.values())


def _compose(compose, name: str, overrides: list[str], hydra: bool = False) -> DictConfig:
    try:
        cfg = compose(name, overrides=overrides, return_hydra_config=hydra)
    except MissingConfigException as e:
        raise VBenchError(_missing_option(e)) from None
    except ConfigCompositionException as e:
        raise VBenchError(_composition(e, lambda key: _keys_without(compose, name, overrides,
                                                                     key))) from None
    except OmegaConfBaseException as e:
        raise VBenchError(_first_line(e)) from None
    except Exception as e:  # a YAML syntax error in a --config-dir file, an unreadable file
        if type(e).__module__.startswith("yaml"):
            raise VBenchError(_yaml_error(e)) from None
        raise
    validate(cfg)
    return cfg


def _missing_option(e: MissingConfigException) -> str:
    missing = e.missing_cfg_file or ""
    group, _, option = missing.rpartition("/")
    if e.options and group:
        close = difflib.get_close_matches(option, e.options, n=1)
        hint = f"; did you mean {group}={close[0]}?" if close else ""
        return (f"{group}={option} is not an option{hint} (choose one of: "
                f"{', '.join(e.options)})")
    return _first_line(e)


def _composition(e: ConfigCompositionException, keys_here) -> str:
    text = str(e)
    if m := re.search(r"Could not override '([^']+)'", text):
        return _unknown_key(m.group(1), keys_here(m.group(1)))
    if m := re.search(r"Error merging override (\S+?)=(.*)", text):
        return _bad_type(m.group(1), m.group(2), keys_here(m.group(1)))
    if isinstance(e.__cause__, Exception) and type(e.__cause__).__module__.startswith("yaml"):
        return _yaml_error(e.__cause__)
    return _first_line(e)


def _unknown_key(key: str, here: list[str]) -> str:
    """`key` is declared nowhere in the composed config: name the closest key of the chosen
    option, the kinds of option that do declare it, or the key of another group it most
    likely means (trainer.lr: optimizer.lr), and the keys the option has."""
    section, _, leaf = key.partition(".")
    own = [k.partition(".")[2] for k in here if k.startswith(section + ".")]
    close = difflib.get_close_matches(leaf, own, n=2, cutoff=0.75)
    hint = f"; did you mean {' or '.join(f'{section}.{c}' for c in close)}?" if close else ""
    kinds = [kind for kind, node in GROUPS.get(section, {}).items()
             if leaf in {f.name for f in fields(node)}]
    elsewhere = f"; options of kind {', '.join(kinds)} have it" if kinds and not close else ""
    if not close and not kinds:
        hint = _other_group(section, leaf or section, here)
    keys = f" (keys of {section} here: {', '.join(own)})" if own else ""
    return f"{key} is not a key of this config{hint}{elsewhere}{keys}"


def _other_group(section: str, leaf: str, here: list[str]) -> str:
    """The hint for a key put in the wrong group: a key of another section of this config
    with that name (or a close one), else a kind of option of another group that has it."""
    others: dict[str, list[str]] = {}
    for k in here:
        other, _, name = k.partition(".")
        if other != section and name:
            others.setdefault(name, []).append(k)
    names = [leaf] if leaf in others else difflib.get_close_matches(leaf, others, n=1, cutoff=0.8)
    if names:
        return f"; did you mean {' or '.join(others[names[0]])}?"
    for group, kinds in GROUPS.items():
        having = [kind for kind, node in kinds.items() if leaf in {f.name for f in fields(node)}]
        if group != section and having:
            return (f"; did you mean {group}.{leaf}? (options of kind {', '.join(having)} have "
                    "it)")
    return ""


def _keys_without(compose, name: str, overrides: list[str], key: str) -> dict[str, type]:
    """The declared keys (and types) of the config composed without the overrides of `key`."""
    rest = [o for o in overrides if o.lstrip("+~").split("=")[0] != key]
    try:
        return declared_keys(compose(name, overrides=rest))
    except Exception:  # noqa: BLE001  another problem: it is reported once this key is fixed
        return {}


def _bad_type(key: str, value: str, keys_here) -> str:
    return f"{key}={value} is not valid; it must be {_type_word(key, keys_here)}"


def _type_word(key: str, keys_here: dict) -> str:
    """What a key's declared type asks for, in words."""
    import types
    from typing import Union, get_args, get_origin

    kind = keys_here.get(key)
    if get_origin(kind) in (Union, types.UnionType):  # Optional[X] -> X
        kind = next(a for a in get_args(kind) if a is not type(None))
    if get_origin(kind) is list:
        plural = {int: "integers", float: "numbers", str: "strings"}
        return f"a list of {plural.get(get_args(kind)[0], 'values')}, e.g. [1,2]"
    return _TYPE_WORDS.get(kind, "of the declared type")


def _yaml_error(e: Exception) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f"{mark.name}, line {mark.line + 1}" if mark else "a YAML file"
    problem = getattr(e, "problem", None) or _first_line(e)
    return f"{where}: YAML syntax error: {problem}; fix the file or leave it out of --config-dir"


def _first_line(e: Exception) -> str:
    return next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)


def full_errors() -> bool:
    """HYDRA_FULL_ERROR=1 asks for tracebacks, as in Hydra."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"

