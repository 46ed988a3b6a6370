"""Run directory names that say what ran: the dataset and model, then every config group
option the user chose that differs from the defaults of conf/config.yaml, e.g.
`digits_mlp_sgd_step` or `cifar10_timm-resnet10t`; `run.name`, when set, replaces them.

Registered as the OmegaConf resolver `vbench_run_name` (cli.py imports this module before
hydra.main) and used by `hydra.run.dir` in config.yaml. Sweep job directories keep Hydra's
override-based names (hydra.sweep.subdir), cut by the resolver `vbench_job_dir`: a directory
name holds at most 255 bytes, and a sweep with a dozen overrides went past it.
"""

import hashlib
import re

from omegaconf import OmegaConf

from ..core.schema import config_groups

MAX_LENGTH = 60  # characters of the name part (the timestamp comes before it)
JOB_DIR_LENGTH = 150  # characters of a sweep job's override_dirname (its number comes before)
# The order in which a name lists the chosen options after the dataset and model (the study's
# parts before the experiment that holds them); loggers change no result, so never.
NAME_ORDER = ("optimizer", "scheduler", "freeze", "regularization", "variant", "experiment",
              "hparams_search", "debug")
NAMED_BY_KEY = ("timm", "torchvision")  # model options whose model.name says which network


def run_name(choices, model_name: str | None = None, label: str | None = None) -> str:
    """`label` (run.name) when given, else dataset_model[_option...] for the non-default
    options; made safe for a path and cut to MAX_LENGTH."""
    if label:
        return _cut(_safe(str(label)))
    choices = dict(choices)
    model = choices.get("model") or "model"
    if model in NAMED_BY_KEY and model_name:
        model = f"{model}-{model_name}"
    defaults = config_groups()
    parts = [choices.get("dataset") or "data", model]
    parts += [str(choices[g]) for g in NAME_ORDER
              if choices.get(g) is not None and choices.get(g) != defaults.get(g)]
    return _cut(_safe("_".join(parts)))


def job_dir(override_dirname: str) -> str:
    """A sweep job's directory name after its number: Hydra's override_dirname with each `/`
    written %2F, so that a value such as run.name=../../x stays one folder inside the sweep
    directory, cut to JOB_DIR_LENGTH characters (the report labels jobs by
    .hydra/overrides.yaml, not by this)."""
    name = str(override_dirname).replace("/", "%2F") or "defaults"  # every override excluded
    return _cut(name, JOB_DIR_LENGTH)


def _cut(name: str, limit: int = MAX_LENGTH) -> str:
    """At most `limit` characters, a long name ending in a short hash of the whole, so two
    long names stay apart (and a 300-character run.name is no "File name too long")."""
    if len(name.encode()) <= limit:
        return name
    cut = name.encode()[:limit - 7].decode(errors="ignore")
    return f"{cut}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-") or "run"


OmegaConf.register_new_resolver("vbench_run_name", run_name, replace=True)
OmegaConf.register_new_resolver("vbench_job_dir", job_dir, replace=True)
