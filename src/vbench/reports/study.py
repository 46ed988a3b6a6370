"""An Optuna study's trials in the sweep's summary.md and report.html: what hydra/sweeper=optuna
wrote into optimization_results.yaml (commands/optuna_sweeper.py), read as plain YAML (nothing
in it is executed), rendered as a section listing every trial with its state and the best
completed trial's config."""

import html
from pathlib import Path

import yaml

from ..core.rundir import OPTIMIZATION_RESULTS


def read_study(folder: Path) -> dict | None:
    """The study recorded in `folder` (a sweep directory), or None: none there, or a file that
    is not one (the summary goes on without it)."""
    path = Path(folder) / OPTIMIZATION_RESULTS
    try:
        study = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not (isinstance(study, dict) and isinstance(study.get("trials"), list)):
        return None
    return study


def _value(v) -> str:
    return "" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def _params(params) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in (params or {}).items())


def _heading(study: dict) -> str:
    states = ", ".join(f"{n} {s}" for s, n in (study.get("states") or {}).items())
    return (f"study {study.get('study_name')!s} in {study.get('storage')!s}: "
            f"{len(study['trials'])} trials ({states}), {study.get('direction')!s}, pruner "
            f"{study.get('pruner')!s}")


def study_markdown(study: dict) -> list[str]:
    lines = ["", "## Optuna study", "", _heading(study), ""]
    best = study.get("best_trial")
    if best:
        lines += [(f"Best trial (among the completed ones): {best['number']}, value "
                   f"{_value(best['value'])}, run `{best.get('run_dir')}`"), "",
                  f"    {best.get('command')}", ""]
    else:
        lines += ["No trial completed.", ""]
    lines += ["| trial | state | value | epochs | params | run |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {t['number']} | {t['state']} | {_value(t.get('value'))} | "
              f"{t.get('epochs_reported', '')} | `{_params(t.get('params'))}` | "
              f"{t.get('run_dir') or ''} |" for t in study["trials"]]
    return lines


def study_html(study: dict) -> str:
    e = html.escape
    best = study.get("best_trial")
    head = (f"<p>Best trial (among the completed ones): {best['number']}, value "
            f"{_value(best['value'])}<br><code>{e(str(best.get('command')))}</code></p>"
            if best else "<p>No trial completed.</p>")
    rows = "".join(
        f"<tr><td>{t['number']}</td><td><span class='status {e(t['state'])}'>{e(t['state'])}"
        f"</span></td><td class=num>{_value(t.get('value'))}</td>"
        f"<td class=num>{t.get('epochs_reported', '')}</td>"
        f"<td><code>{e(_params(t.get('params')))}</code></td>"
        f"<td>{e(str(t.get('run_dir') or ''))}</td></tr>" for t in study["trials"])
    return (f"<h2>Optuna study</h2><p class=meta>{e(_heading(study))}</p>{head}"
            "<table class=study><thead><tr><th>trial</th><th>state</th><th>value</th>"
            f"<th>epochs</th><th>params</th><th>run</th></tr></thead><tbody>{rows}</tbody>"
            "</table>")
