"""report.html: one self-contained page over any set of runs (`vbench-report PATH... --html`,
and next to summary.md after every multirun).

Self-contained means it opens anywhere without a network: the plots are inlined as data URIs
(the runs' own PNGs, re-encoded with a 256-colour palette, which a figure of flat colours
keeps legible at about a quarter of the bytes; the overlaid curves as SVG, drawn by plots.py),
the CSS and the few lines of JavaScript that sort the tables are inline. The runs, their
labels, ranking and seed groups come from runs.py and the leaderboard's columns from
columns.py, as for summary.md; no torch import.
"""

import base64
import datetime
import html
import io
import shlex
from collections.abc import Callable
from pathlib import Path

from ..core import files
from ..core.columns import VAL_ACC, VAL_LOSS
from ..core.flat import flatten
from ..core.rundir import HYDRA_DIR, wait_for_figures
from ..core.status import MISSING
from . import plots
from .runs import (
    BAD_STATUSES,
    DEFAULT_SORT,
    collect_runs,
    configurations,
    ensemble_notes,
    ranked,
    read_history,
)
from .study import read_study, study_html
from .table import HTML, METRICS, RUN_COLUMNS, Column, group_columns, shown
from .verdicts import TIED, VS_LEADER, method_line, ranking_notes

CURVES = [(VAL_ACC, "validation accuracy"), (VAL_LOSS, "validation loss")]
RUN_PLOTS = ("curves", "confusion")  # each run's own plots shown in its <details>


def write_html_report(paths: list[Path], out: Path, metric: str = DEFAULT_SORT,
                      ensemble: Callable[[list[dict]], object] | None = None) -> Path:
    """Write report.html for the runs under `paths` to `out` (a file), ranked by `metric`
    (the validation split's accuracy unless told: the test split never picks); returns it.
    `ensemble`: as for leaderboard.summarize."""
    rows, root = collect_runs(paths)
    if ensemble is not None:
        ensemble(rows)
    files.write_text(out, render(rows, root, metric))
    return out


def render(rows: list[dict], root: Path, metric: str) -> str:
    rows = ranked(rows, metric)
    configs = configurations(rows, metric)
    notes = ranking_notes(rows, configs, metric)
    sections = [
        f"<h1>vbench report: {len(rows)} runs</h1>",
        # The script rewrites the sort's words when a column title is clicked.
        (f"<p class=meta>{_e(str(root))} · sorted by <span id=sorted-by>"
         f"{_e(_sort_words(metric))}</span> · {datetime.datetime.now():%Y-%m-%d %H:%M} · "
         "click a column title to sort</p>"),
        "<h2>Leaderboard</h2>", _leaderboard(rows),
        "".join(f"<p class=meta>{_e(n[0].upper() + n[1:])}.</p>" for n in notes),
        _groups(configs, metric) if any(g["runs"] > 1 for g in configs) else "",
        _failures(rows),
        study_html(study) if (study := read_study(root)) else "",
        _config_differences(rows),
        _curves(rows, configs, metric),
        "<h2>Runs</h2>", *(_run_details(r) for r in rows),
    ]
    return PAGE.format(title=_e(f"vbench report: {len(rows)} runs"), style=STYLE, script=SCRIPT,
                       body="\n".join(s for s in sections if s))


def _leaderboard(rows: list[dict]) -> str:
    columns = shown(RUN_COLUMNS, HTML, rows)
    head = "".join(_th(c.title, c.key, bool(c.spec)) for c in columns)
    body = [f"<tr{_bad(r)} data-run='{_anchor(r)}'>{''.join(_run_cell(c, r) for c in columns)}"
            "</tr>" for r in rows]
    return _table("leaderboard", head, body)


def _run_cell(column: Column, r: dict) -> str:
    if column.key == "label":  # a link to the run's details; its directory on hover
        return (f"<td class=label title='{_e(r['run'])}'><a href='#{_anchor(r)}'>"
                f"{_e(r['label'])}</a></td>")
    if column.key == "status":
        return f"<td data-v='{_e(r['status'])}'>{_status(r['status'])}</td>"
    return _cell(column, r)


def _groups(groups: list[dict], metric: str) -> str:
    columns = group_columns(HTML, metric, groups)
    head = "".join(_th(c.title, c.key, bool(c.spec or c.show)) for c in columns)
    body = [f"<tr{' class=tied' if g[VS_LEADER] == TIED else ''}>"
            f"{''.join(_group_cell(c, g) for c in columns)}</tr>" for g in groups]
    return ("<h2>Seed groups</h2><p class=meta>The runs of a configuration that differ only in "
            f"trainer.seed. Ranked by {_e(metric)}: {_e(method_line())}. Other metrics: mean ± "
            "sample standard deviation (ddof=1).</p>" + _table("groups", head, body)
            + "".join(f"<p class=meta>{_e(n[0].upper() + n[1:])}.</p>"
                      for n in ensemble_notes(groups)))


def _group_cell(column: Column, g: dict) -> str:
    if not column.groups:
        return _cell(column, g)
    mean = g[column.key]  # sorts by the mean; shows the spread too
    return f"<td class=num data-v='{'' if mean is None else mean!r}'>{column.group_text(g)}</td>"


def _cell(column: Column, row: dict) -> str:
    if column.show:  # a number shown as words (a p-value): sorts by the number
        value = row[column.key]
        return (f"<td class=num data-v='{'' if value is None else repr(value)}'>"
                f"{_e(column.text(row))}</td>")
    if column.spec:
        return _number(row[column.key], column.spec)
    css = " class=label" if column.key == "label" else ""
    return f"<td{css}>{_e(column.text(row))}</td>"


def _failures(rows: list[dict]) -> str:
    bad = [r for r in rows if r["status"] in BAD_STATUSES]
    if not bad:
        return ""
    items = "".join(f"<li><a href='#{_anchor(r)}'>{_e(r['run'])}</a>: {_status(r['status'])}"
                    + (f" — <code>{_e(r['error'])}</code>" if r["error"] else
                       " — no metrics.json: the job never finished" if r["status"] == MISSING
                       else "") + "</li>" for r in bad)
    return f"<h2>Runs without a result</h2><ul class=bad-list>{items}</ul>"


def _config_differences(rows: list[dict]) -> str:
    """The config keys whose values are not the same in every run (from .hydra/config.yaml)."""
    configs = [_flat_config(r["dir"]) for r in rows]
    known = [c for c in configs if c]
    if len(known) < 2:
        return ""
    keys = sorted({k for c in known for k in c})
    differing = [k for k in keys if len({repr(c.get(k, "—")) for c in known}) > 1]
    if not differing:
        return "<h2>Config differences</h2><p>All runs share one config.</p>"
    head = _th("run", "run") + "".join(_th(k, k) for k in differing)
    body = [f"<tr data-run='{_anchor(r)}'><td class=label>{_e(r['label'])}</td>"
            + "".join(f"<td>{_e(_value(c.get(k, '—')))}</td>" for k in differing) + "</tr>"
            for r, c in zip(rows, configs) if c]
    return ("<h2>Config differences</h2><p class=meta>only the keys that differ between the "
            "runs, in the leaderboard's order (sorting either table sorts both); scroll "
            "sideways for more keys</p>" + _table("config", head, body))


def _sort_words(metric: str) -> str:
    """How the subtitle names the leaderboard's order; the script says the same of a click."""
    column = next(c for c in RUN_COLUMNS if c.key == metric)
    return f"{column.title}, {'highest' if column.higher_is_better else 'lowest'} first"


def _curves(rows: list[dict], configs: list[dict], metric: str) -> str:
    """Validation accuracy and loss of every run overlaid (SVG), coloured as the sweep's PNG
    figures colour them, with the legend as an HTML list under them: it wraps, so no label is
    cut, and the curves keep the whole width."""
    legend = plots.sweep_legend(configs, metric)
    config = {g["group"]: g["label"] for g in configs}
    curves = [(config[r["group"]], read_history(r["dir"]), r["best_epoch"]) for r in rows]
    curves = [c for c in curves if c[1]]
    if not curves:
        return ""
    figures = []
    for key, title in CURVES:
        if all(key in history[0] for _, history, _ in curves):
            svg, caption = plots.curves_svg(curves, legend, key, title)
            figures.append(f"<figure><img alt='{_e(title)}' src='{_svg_uri(svg)}'>"
                           f"<figcaption>{_e(caption)}</figcaption></figure>")
    shown = legend.ranked(label for label, _, _ in curves)
    items = "".join(f"<li {_list_number(legend.ranks[label])}><span class=swatch "
                    f"style='background:{_css_color(legend.colors[label])}'></span>"
                    f"{_e(label)}</li>" for label in shown)
    return (f"<h2>Validation curves</h2><div class=figures>{''.join(figures)}</div>"
            f"<p class=meta>Runs by configuration, in the leaderboard's order "
            f"({_e(_sort_words(metric))}); repeats of a configuration over seeds share its "
            f"colour.</p><ol class=legend>{items}</ol>")


def _list_number(rank: int | None) -> str:
    """An <ol> item's number: the configuration's rank (shared by ties, as in the tables), or
    none for a configuration without a result."""
    return "class=unranked" if rank is None else f"value={rank}"


def _css_color(rgba) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgba[:3])


def _run_details(r: dict) -> str:
    command = "vbench " + " ".join(shlex.quote(o) for o in r["overrides"].split()) \
        if r["overrides"] or (r["dir"] / HYDRA_DIR).is_dir() else "(not started by vbench: no .hydra/)"
    images = []
    wait_for_figures(r["dir"])  # a run that just ended may still be drawing them
    for name in RUN_PLOTS:
        path = r["dir"] / "plots" / f"{name}.png"
        if path.is_file():
            images.append(f"<figure><img alt='{name}' src='{_png_uri(path)}'>"
                          f"<figcaption>{name}</figcaption></figure>")
    more = sorted(p.name for p in (r["dir"] / "plots").glob("*.png")
                  if p.stem not in RUN_PLOTS) if (r["dir"] / "plots").is_dir() else []
    body = [f"<p><b>command</b> <code>{_e(command)}</code></p>",
            f"<p><b>directory</b> <code>{_e(str(r['dir']))}</code></p>"]
    if r["error"]:
        body.append(f"<p class=bad><b>error</b> <code>{_e(r['error'])}</code></p>")
    body.append(f"<div class='figures run'>{''.join(images)}</div>" if images
                else "<p class=meta>no plots</p>")
    if more:
        body.append(f"<p class=meta>more plots in the run directory: {_e(', '.join(more))}</p>")
    accuracy = "" if r["best_test_acc"] is None else f" · best test acc {r['best_test_acc']:.4f}"
    return (f"<details id='{_anchor(r)}'><summary>{_e(r['label'])} · {_status(r['status'])}"
            f"{accuracy}</summary>{''.join(body)}</details>")


# ----------------------------------------------------------------------------------------------
# Pieces


def _png_uri(path: Path) -> str:
    """A run's PNG for the page at its own pixel size, re-encoded with a palette of 256 colours
    (without dithering: a matplotlib figure is flat colours and their anti-aliased edges) at
    zlib's best compression: about a quarter of the bytes of the run's file, which is written
    for speed. A file PIL cannot read goes in as it is."""
    from PIL import Image

    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            palette = image.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE,
                                                    dither=Image.Dither.NONE)
        buffer = io.BytesIO()
        palette.save(buffer, "PNG", optimize=True)
        if len(buffer.getvalue()) < len(data):
            data = buffer.getvalue()
    except (OSError, ValueError):
        pass
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _svg_uri(svg: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode()


def _flat_config(run_dir: Path) -> dict:
    path = run_dir / ".hydra/config.yaml"
    if not path.is_file():
        return {}
    from omegaconf import OmegaConf

    config = flatten(OmegaConf.to_container(OmegaConf.load(path), resolve=False))
    return {k: v for k, v in config.items() if not k.startswith("logger.")}


def _th(title: str, key: str, numeric: bool = False) -> str:
    first = "desc" if METRICS.get(key, False) else "asc"  # a click shows the best first
    return (f"<th data-first={first}{' data-num' if numeric else ''} "
            f"title='sort by {_e(title)}'>{_e(title)}</th>")


def _table(name: str, head: str, body: list[str]) -> str:
    return (f"<div class=scroll><table class='sortable {name}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _number(value, spec: str) -> str:
    if value is None:
        return "<td class=num data-v=''>—</td>"
    return f"<td class=num data-v='{value!r}'>{format(value, spec)}</td>"


def _status(status: str) -> str:
    return f"<span class='status {_e(status)}'>{_e(status)}</span>"


def _bad(row: dict) -> str:
    return " class=bad" if row["status"] in BAD_STATUSES else ""


def _anchor(row: dict) -> str:
    return "run-" + "".join(c if c.isalnum() else "-" for c in row["run"])


def _value(v) -> str:
    return "null" if v is None else str(v)


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


PAGE = """<!DOCTYPE html>
<html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style></head>
<body>
{body}
<script>{script}</script>
</body></html>
"""

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330;
       margin: 2rem auto; max-width: 1200px; padding: 0 1.5rem; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #dde1e8; padding-bottom: .2rem; }
.meta { color: #5d6675; margin-top: 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid #e6e9ef; text-align: left; vertical-align: top; }
th { background: #f3f5f8; cursor: pointer; user-select: none; white-space: nowrap; position: sticky; top: 0; }
th:hover { background: #e4e9f1; }
th[aria-sort=ascending]::after { content: " \\25B2"; font-size: .7em; }
th[aria-sort=descending]::after { content: " \\25BC"; font-size: .7em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.label { max-width: 32rem; overflow-wrap: anywhere; }
/* Many differing keys: the config table scrolls sideways in its box, the run column stays put
   at the left, at least 16rem wide, its label broken between words, never letter by letter. */
table.config td.label { min-width: 16rem; overflow-wrap: break-word; }
table.config td:first-child, table.config th:first-child { position: sticky; left: 0; z-index: 1; }
table.config td:first-child { background: inherit; box-shadow: inset -1px 0 #dde1e8; }
table.config th:first-child { z-index: 2; }
tbody tr { background: #fff; }
tbody tr:nth-child(even) { background: #fafbfc; }
tbody tr:hover { background: #eef3fb; }
tr.bad td { color: #8a1c1c; background: #fdf1f1; }
tr.tied td { background: #eef6ee; }
.status { font-size: 12px; padding: 0 .4rem; border-radius: .6rem; background: #e3f4e7; color: #1e6b33; white-space: nowrap; }
.status.failed, .status.interrupted, .status.missing { background: #fadada; color: #8a1c1c; }
.status.diverged, .status.early_stopped { background: #fdf0d5; color: #7a5200; }
.status.pruned { background: #e4e9f2; color: #34495e; }
.status.complete { background: #e3f4e7; color: #1e6b33; }
.status.fail, .status.running { background: #fadada; color: #8a1c1c; }
ul.bad-list li { margin: .2rem 0; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; background: #f3f5f8;
       padding: .1rem .3rem; border-radius: 3px; overflow-wrap: anywhere; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; }
ol.legend { columns: 2 24rem; font-size: 13px; padding-left: 2.2rem; margin-top: .3rem; }
ol.legend li { break-inside: avoid; overflow-wrap: anywhere; }
ol.legend li.unranked { list-style-type: none; }
.swatch { display: inline-block; width: 1.6em; height: .35em; margin: 0 .5em .2em 0;
          vertical-align: middle; border-radius: 2px; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e6e9ef; }
.figures figure { flex: 1 1 30rem; max-width: 44rem; }
.figures.run figure { flex: 0 1 auto; max-width: 100%; }
figcaption { color: #5d6675; font-size: 12px; text-align: center; }
details { border: 1px solid #e6e9ef; border-radius: 4px; margin: .4rem 0; padding: .3rem .8rem; }
details[open] { padding-bottom: .8rem; }
summary { cursor: pointer; font-weight: 600; overflow-wrap: anywhere; }
p.bad { color: #8a1c1c; }
a { color: #2456a6; text-decoration: none; }
a:hover { text-decoration: underline; }
"""

# Sort a table by a clicked column: numbers by value (data-v), text naturally; empty cells
# (failed or missing runs) stay last either way. The rank is the ranking's (by the sort metric,
# shared by equal values) and sorts like any column. The tables whose rows name their run
# (data-run: the leaderboard, the config differences) keep one order: sorting either puts the
# other's rows in its order, and the subtitle says which.
SCRIPT = """
function ofRuns(table) {
  var row = table.tBodies[0].rows[0];
  return row !== undefined && row.dataset.run !== undefined;
}
function follow(table, order) {
  var place = {};
  order.forEach(function (run, i) { place[run] = i; });
  var at = function (row) {  // a run the sorted table lacks keeps its place among the last
    var i = place[row.dataset.run];
    return i === undefined ? order.length : i;
  };
  var body = table.tBodies[0];
  Array.from(body.rows).sort(function (a, b) { return at(a) - at(b); })
    .forEach(function (row) { body.appendChild(row); });
  Array.from(table.tHead.rows[0].cells).forEach(function (h) { h.removeAttribute("aria-sort"); });
}
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = Array.from(table.tHead.rows[0].cells);
  heads.forEach(function (th, col) {
    th.addEventListener("click", function () {
      var current = th.getAttribute("aria-sort");
      var first = th.dataset.first === "desc" ? "descending" : "ascending";
      var order = current ? (current === "ascending" ? "descending" : "ascending") : first;
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", order);
      var sign = order === "ascending" ? 1 : -1;
      var body = table.tBodies[0];
      var value = function (row) {
        var cell = row.cells[col];
        return cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent.trim();
      };
      var rows = Array.from(body.rows);
      rows.sort(function (a, b) {
        var x = value(a), y = value(b);
        if (x === "" || y === "") return (x === "") - (y === "");
        var nx = Number(x), ny = Number(y);
        var c = isNaN(nx) || isNaN(ny) ? x.localeCompare(y, undefined, {numeric: true}) : nx - ny;
        return sign * c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
      if (!ofRuns(table)) return;
      var runs = rows.map(function (row) { return row.dataset.run; });
      document.querySelectorAll("table.sortable").forEach(function (other) {
        if (other !== table && ofRuns(other)) follow(other, runs);
      });
      var subtitle = document.getElementById("sorted-by");
      if (subtitle) {
        var numeric = th.hasAttribute("data-num");
        subtitle.textContent = th.textContent.trim() + ", " + (order === "ascending"
          ? (numeric ? "lowest first" : "A to Z") : (numeric ? "highest first" : "Z to A"));
      }
    });
  });
});
"""
