"""`vbench --help` and `vbench --version`, read from the schema and the shipped options.

Hydra's own help lists every group the ConfigStore holds (the schema's too) and no key docs;
this one lists the groups a user picks from, with their options, and every key of the chosen
options with its default and its doc (`vbench model=cnn --help` shows the cnn's keys).
"""

import shutil
import textwrap
from dataclasses import fields
from importlib import metadata

from omegaconf import DictConfig, OmegaConf

from ..core.schema import GROUPS, SECTIONS, config_groups, option_names

# `variant` holds the arms of the experiment presets (chosen by the presets' sweeps, not by
# hand), so it is only counted.
_COUNTED = "variant"

_USAGE = """\
vbench: one image-classification study per command line (a Hydra app).

  vbench [GROUP=OPTION] [KEY=VALUE] ...        one run, e.g. vbench model=cnn trainer.epochs=5
  vbench -m KEY=V1,V2 [GROUP=A,B] ...          a sweep: one job per combination
  vbench -m experiment=fmnist_depth            a seed study as a sweep
  vbench model=cnn --help                      the keys of the chosen options

Results: outputs/runs/<time>_<names>/ (metrics.json, history.csv, checkpoints/, plots/).
Also: vbench-report, --cfg job (print the config), --version, --hydra-help (Hydra's flags).
"""


def help_text(cfg: DictConfig, choices: dict[str, str]) -> str:
    width = min(shutil.get_terminal_size((100, 24)).columns, 120)
    out = [_USAGE, "Config groups (GROUP=OPTION; the chosen one in brackets):"]
    for group in (g for g in config_groups() if g != _COUNTED):
        options = [f"[{o}]" if choices.get(group) == o else o for o in option_names(group)]
        out += _wrapped(f"  {group}: ", ", ".join(options), width)
    out.append(f"  {_COUNTED}: {len(option_names(_COUNTED))} arms of the experiment presets "
               "(chosen by their sweeps)")
    out.append("")
    out.append("Keys (KEY=VALUE; defaults of the chosen options):")
    for section in (*SECTIONS, *GROUPS):
        node = cfg[section]
        schema = OmegaConf.get_type(node)
        title = f"{section} ({section}={choices[section]})" if section in choices else section
        out.append(f"  {title}")
        out += _keys(schema, OmegaConf.to_container(node, resolve=False), section, width)
    return "\n".join(out) + "\n"


def _keys(schema, values: dict, prefix: str, width: int) -> list[str]:
    lines = []
    for f in fields(schema):
        value = values[f.name]
        if isinstance(value, dict):  # a chosen logger: its own keys
            lines += _keys(f.type.__args__[0], value,  # X | None -> X
                           f"{prefix}.{f.name}", width)
            continue
        lines += _wrapped(f"    {prefix}.{f.name}={_show(value)}  ", f.metadata.get("doc", ""),
                          width)
    return lines


def version_text() -> str:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    others = ", ".join(f"{p} {version(p)}" for p in ("torch", "torchvision", "timm",
                                                        "hydra-core"))
    return f"vbench {version('vbench')} ({others})"


def _wrapped(head: str, text: str, width: int) -> list[str]:
    indent = " " * min(len(head), 40)
    return textwrap.wrap(text, width=width, initial_indent=head, subsequent_indent=indent,
                         break_on_hyphens=False) or [head.rstrip()]


def _show(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value)
