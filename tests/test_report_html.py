"""report.html: its content from hand-made run directories (helpers.fake_run, conftest's sweep
fixture), and the page itself in a real headless Chromium."""

import contextlib
import dataclasses
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from rich.console import Console

from helpers import fake_run
from vbench.commands.report import SweepSummary, main
from vbench.reports import table as columns
from vbench.reports.html import write_html_report
from vbench.reports.leaderboard import leaderboard_tables, summarize


def add_plots_and_config(run_dir: Path, depth: int) -> None:
    """Real PNGs in plots/ and a .hydra/config.yaml, as a training leaves them."""
    from matplotlib.figure import Figure

    (run_dir / "plots").mkdir()
    for name in ("curves", "confusion", "per_class"):
        figure = Figure(figsize=(3, 2))
        figure.add_subplot().plot([1, 2, 3], [depth, 2, 1])
        figure.savefig(run_dir / "plots" / f"{name}.png")
    (run_dir / ".hydra/config.yaml").write_text(
        f"model:\n  name: mlp\n  depth: {depth}\noptimizer:\n  lr: 0.001\n"
        "logger:\n  tensorboard:\n    dir: tb\n")


@pytest.fixture
def runs(sweep):
    for i, run_dir in enumerate(sorted(sweep.iterdir())):
        add_plots_and_config(run_dir, depth=i % 2 + 1)
    return sweep


def test_html_report_is_self_contained_and_complete(runs):
    page = write_html_report([runs], runs / "report.html").read_text()
    # Nothing to fetch: every src is a data URI, no stylesheet or script is linked.
    sources = re.findall(r"""src=['"]([^'"]+)""", page)
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert "<link" not in page and "http://" not in page and "https://" not in page
    assert page.count("data:image/svg+xml") == 2  # the overlaid val_acc and val_loss curves
    assert page.count("data:image/png") == 2 * 6  # curves and confusion of each run
    # Only the config keys that differ, never the loggers'.
    head = re.search(r"<table class='sortable config'>.*?</thead>", page).group()
    assert re.findall(r"<th[^>]*>([^<]+)</th>", head) == ["run", "model.depth"]
    # Failed and missing jobs are shown as such, with their error.
    assert "VBenchError: boom" in page and "the job never finished" in page
    assert "<code>vbench model=cnn model.depth=99 trainer.seed=0</code>" in page
    assert "0.8000 ± 0.1000" in page  # the seed group's mean ± std of best test acc


def ten_job_sweep(root: Path) -> Path:
    """A 10-job sweep whose runs hold the plots a training draws (curves and confusion at
    their real size) and 30 epochs of history."""
    import numpy as np

    from vbench.reports import plots

    rng = np.random.default_rng(0)
    history = [{"epoch": e, "train_loss": 1 / e, "train_acc": 1 - 0.5 / e, "val_loss": 1.1 / e,
                "val_acc": 1 - 0.6 / e, "lr": 1e-3 / e, "epoch_s": 0.1} for e in range(1, 31)]
    for i in range(10):
        run_dir = root / f"{i}_depth"
        activation = ("relu", "gelu")[i % 2]
        fake_run(run_dir, [f"model.depth={i % 5 + 1}", f"model.activation={activation}",
                           "optimizer.lr=0.009145320282946534"], 0.9 + i / 200)
        noisy = [{k: v * (1 + 0.01 * rng.standard_normal()) if k != "epoch" else v
                  for k, v in row.items()} for row in history]
        (run_dir / "history.csv").write_text(
            ",".join(history[0]) + "\n"
            + "".join(",".join(str(v) for v in row.values()) + "\n" for row in noisy))
        y = np.repeat(np.arange(10), 36)
        pred = np.where(rng.random(len(y)) < 0.95, y, rng.integers(0, 10, len(y)))
        plots.plot_curves(noisy, run_dir / "plots/curves.png", best_epoch=28)
        plots.plot_confusion(y, pred, [str(d) for d in range(10)], "test",
                             run_dir / "plots/confusion.png")
        add_config(run_dir, i % 5 + 1)
    return root


def add_config(run_dir: Path, depth: int) -> None:
    (run_dir / ".hydra/config.yaml").write_text(f"model:\n  name: mlp\n  depth: {depth}\n")


@pytest.mark.slow
def test_a_ten_job_page_is_under_a_megabyte_at_full_resolution(tmp_path):
    import base64
    import io

    from PIL import Image

    sweep_dir = ten_job_sweep(tmp_path / "sweep")
    page = write_html_report([sweep_dir], tmp_path / "report.html")
    assert page.stat().st_size < 1_000_000, page.stat().st_size
    text = page.read_text()
    sources = re.findall(r"src='data:image/png;base64,([^']+)'", text)
    assert len(sources) == 20
    originals = sorted(Image.open(p).size for p in sweep_dir.glob("*/plots/*.png"))
    # Every figure at its own pixel size (legible as the run's file), in a 256-colour palette.
    inlined = [Image.open(io.BytesIO(base64.b64decode(s))) for s in sources]
    assert sorted(i.size for i in inlined) == originals
    assert all(i.mode == "P" for i in inlined)
    # The curves' legend is HTML: every configuration in full, in the leaderboard's order,
    # with its colour; the SVGs hold none (a label there was cut to "opt").
    items = re.findall(r"<li value=(\d+)><span class=swatch style='background:(#[0-9a-f]{6})'>"
                       r"</span>([^<]+)</li>", text)
    assert [int(n) for n, _, _ in items] == list(range(1, 11))
    assert [label for _, _, label in items] == html_ranking(text)
    assert all("model.depth=" in label and "model.activation=" in label for _, _, label in items)
    for svg in re.findall(r"src='data:image/svg\+xml;base64,([^']+)'", text):
        assert b"legend" not in base64.b64decode(svg)


def edit_metrics(run_dir: Path, **changes) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, **changes}))


def html_ranking(page: str) -> list[str]:
    """The run labels of report.html's leaderboard, top to bottom."""
    table = re.search(r"<table class='sortable leaderboard'>.*?</table>", page).group()
    return re.findall(r"<a href='#[^']*'>([^<]*)</a>", table)


def html_headers(page: str, table: str) -> list[str]:
    head = re.search(rf"<table class='sortable {table}'>.*?</thead>", page).group()
    return re.findall(r"<th[^>]*>([^<]+)</th>", head)


def test_html_ranks_by_validation_like_every_leaderboard(tmp_path, monkeypatch):
    # cnn has the better test accuracy, mlp the better validation accuracy: the validation
    # split picks, so mlp ranks first, in report.html as in the terminal and summary.md.
    sweep_dir = tmp_path / "sweep"
    fake_run(sweep_dir / "0_cnn", ["model=cnn"], 0.90)
    fake_run(sweep_dir / "1_mlp", ["model=mlp"], 0.85)
    metrics = json.loads((sweep_dir / "1_mlp/metrics.json").read_text())
    edit_metrics(sweep_dir / "1_mlp", best={**metrics["best"], "val": {
        **metrics["best"]["val"], "accuracy": 0.99}})
    page = write_html_report([sweep_dir], tmp_path / "report.html").read_text()
    assert html_ranking(page) == ["model=mlp", "model=cnn"]
    assert "sorted by <span id=sorted-by>best val acc, highest first</span>" in page

    # And the page every `vbench -m` writes when the sweep ends.
    monkeypatch.setattr(SweepSummary, "failed_jobs", [])
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})
    SweepSummary().on_multirun_end(config)
    assert html_ranking((sweep_dir / "report.html").read_text()) == ["model=mlp", "model=cnn"]
    md = (sweep_dir / "summary.md").read_text()
    assert md.index("`model=mlp`") < md.index("`model=cnn`")


def test_html_names_runs_by_run_name(sweep):
    edit_metrics(sweep / "3_cnn", name="baseline")
    page = write_html_report([sweep], sweep / "report.html").read_text()
    assert html_ranking(page)[0] == "baseline"
    assert "<summary>baseline · " in page  # the run's details too
    rows, _ = summarize([sweep])
    assert rows[0]["label"] == "baseline"  # as the terminal leaderboard names it


def md_cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


@pytest.fixture
def renamed_macro_f1():
    """macro-F1's title, terminal title and format, changed in columns.RUN_COLUMNS alone."""
    original = list(columns.RUN_COLUMNS)
    at = next(i for i, c in enumerate(original) if c.key == "macro_f1")
    columns.RUN_COLUMNS[at] = dataclasses.replace(original[at], title="macro F1 score",
                                                  short="mF1", spec=".2f")
    yield
    columns.RUN_COLUMNS[:] = original


def test_one_list_of_columns_drives_every_table(sweep, renamed_macro_f1):
    # Two datasets and a tagged run: every table names the dataset and shows the tags.
    edit_metrics(sweep / "1_mlp", dataset="svhn", tags=["paper"])
    rows, _ = summarize([sweep])
    page = write_html_report([sweep], sweep / "report.html").read_text()
    md = (sweep / "summary.md").read_text().splitlines()
    console = Console(width=200, record=True, file=io.StringIO())
    for item in leaderboard_tables(rows, "best_val_acc", "runs", 200):
        console.print(item)
    terminal = console.export_text()

    for headers in (md_cells(md[2]), html_headers(page, "leaderboard")):
        assert {"dataset", "tags", "macro F1 score"} <= set(headers), headers
    cells = dict(zip(md_cells(md[2]), md_cells(md[4])))  # 3_cnn, the best
    assert cells["macro F1 score"] == "0.94" and cells["dataset"] == "digits"
    assert all(h in terminal for h in ("dataset", "tags", "mF1", "paper", "svhn"))
    # The seed groups: summary.md's and report.html's show the same metrics.
    groups_md = md_cells(next(line for line in md if line.startswith("| rank | group")))
    assert html_headers(page, "groups")[1:] == groups_md[1:]
    assert "macro F1 score" in groups_md and "params" in groups_md


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def chromium_page(report: Path, profile: Path):
    """`report` open in headless Chromium, offline, 1280 px wide; closed on the way out."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(profile), executable_path=chromium(), args=flags, headless=True,
            viewport={"width": 1280, "height": 900}, offline=True)
        try:
            page = browser.new_page()
            page.goto(report.as_uri())
            yield page
        finally:
            browser.close()


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="no chromium on PATH (apt-get install chromium)")
def test_report_renders_and_sorts_in_headless_chromium(runs, tmp_path):
    assert main([str(runs), "--html"]) == 0  # the command line writes it beside summary.md
    report = runs / "report.html"
    with chromium_page(report, tmp_path / "chromium-profile") as page:

        def column(title: str) -> list[str]:
            return page.eval_on_selector_all(
                "table.leaderboard tbody tr",
                f"""rows => rows.map(r => r.cells[Array.from(
                    r.closest('table').tHead.rows[0].cells).findIndex(
                    c => c.textContent.trim().startsWith({title!r}))].textContent.trim())""")

        # Best first as written; failed and missing last whichever way a column sorts.
        assert column("best test acc") == ["0.9500", "0.9000", "0.8000", "0.7000", "—", "—"]
        page.click("table.leaderboard th:text-is('params')")  # fewest first
        assert column("params")[:4] == ["1,000", "1,000", "1,000", "50,000"]
        page.click("table.leaderboard th:text-is('best test acc')")  # best first
        assert column("best test acc") == ["0.9500", "0.9000", "0.8000", "0.7000", "—", "—"]
        page.click("table.leaderboard th:text-is('best test acc')")  # and reversed
        assert column("best test acc") == ["0.7000", "0.8000", "0.9000", "0.9500", "—", "—"]
        assert column("rank") == ["4", "3", "2", "1", "—", "—"]  # the ranking's, not the rows'
        assert column("status")[-2:] == ["failed", "missing"]
        # The subtitle says the order the table shows now.
        assert page.inner_text("#sorted-by") == "best test acc, lowest first"
        page.click("table.leaderboard th:text-is('run')")
        assert page.inner_text("#sorted-by") == "run, A to Z"
        page.click("table.groups th:text-is('runs')")  # another table: the subtitle stays
        assert page.inner_text("#sorted-by") == "run, A to Z"

        page.click("details >> nth=0 >> summary")  # a run's plots are one click away
        page.eval_on_selector_all("details", "ds => ds.forEach(d => d.open = true)")
        page.wait_for_function("Array.from(document.images).every(i => i.complete)")
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
        assert len(widths) == 14 and all(w > 0 for w in widths)
        page.eval_on_selector_all("details", "ds => ds.forEach((d, i) => d.open = i == 0)")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000


# Twelve config keys that differ between the runs of a sweep, each with three values.
TWELVE_KEYS = {"model.depth": [2, 3, 4], "model.width": [128, 256, 512],
               "model.activation": ["relu", "gelu", "silu"], "model.dropout": [0.0, 0.1, 0.25],
               "optimizer.lr": [0.001, 0.0003, 0.009145320282946534],
               "optimizer.weight_decay": [0.0, 0.0001, 0.05],
               "optimizer.name": ["adamw", "sgd", "adam"],
               "scheduler.name": ["cosine", "step", "onecycle"],
               "trainer.batch_size": [64, 128, 256], "trainer.label_smoothing": [0.0, 0.1, 0.2],
               "dataset.augment": ["none", "flip", "flip_crop"], "trainer.seed": [0, 1, 2]}


def twelve_key_sweep(root: Path, jobs: int = 6) -> Path:
    """A sweep whose runs differ in TWELVE_KEYS (overrides and .hydra/config.yaml), ranked
    in another order than their directories'."""
    for i in range(jobs):
        values = {key: options[i % 3] for key, options in TWELVE_KEYS.items()}
        values["trainer.seed"] = i
        run_dir = root / f"{i}_job"
        fake_run(run_dir, [f"{k}={v}" for k, v in values.items()], 0.80 + 0.03 * (i * 5 % jobs),
                 params=1000 * (jobs - i))
        config: dict = {}
        for key, value in values.items():
            section, name = key.split(".")
            config.setdefault(section, {})[name] = value
        OmegaConf.save(OmegaConf.create(config), run_dir / ".hydra/config.yaml")
    return root


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="no chromium on PATH (apt-get install chromium)")
def test_config_differences_read_at_1280_px_and_sort_with_the_leaderboard(tmp_path):
    report = write_html_report([twelve_key_sweep(tmp_path / "sweep")], tmp_path / "report.html")
    assert html_headers(report.read_text(), "config")[1:] == sorted(TWELVE_KEYS)
    with chromium_page(report, tmp_path / "chromium-profile") as page:
        size = page.evaluate(r"""() => {
          const table = document.querySelector("table.config"), box = table.parentElement;
          const cells = Array.from(table.tBodies[0].rows, r => r.cells[0]);
          const lines = cells.map(c => { const s = getComputedStyle(c);
            return (c.clientHeight - parseFloat(s.paddingTop) - parseFloat(s.paddingBottom))
                   / parseFloat(s.lineHeight); });
          return {page: document.documentElement.scrollWidth, viewport: innerWidth,
                  boxRight: box.getBoundingClientRect().right, box: box.clientWidth,
                  scrolls: box.scrollWidth, table: table.getBoundingClientRect().width,
                  run: Math.min(...cells.map(c => c.getBoundingClientRect().width)),
                  lines: lines,
                  words: cells.map(c => c.textContent.trim().split(/\s+/).length)};
        }""")
        # The run column keeps its width (it was 44 px: labels wrapped letter by letter), each
        # label word whole on a line at most.
        assert size["run"] >= 200, size
        assert all(round(n) <= w for n, w in zip(size["lines"], size["words"])), size
        # The table scrolls sideways inside its own box; the page itself does not.
        assert size["page"] <= size["viewport"] and size["boxRight"] <= size["viewport"], size
        assert size["scrolls"] >= size["table"] - 1 and size["table"] > size["box"], size
        # Scrolled to its right end, the run column stays at the box's left edge.
        page.eval_on_selector("table.config", "t => t.parentElement.scrollLeft = 1e6")
        left = page.evaluate("""() => { const t = document.querySelector("table.config");
          return [t.parentElement.getBoundingClientRect().left,
                  t.tBodies[0].rows[0].cells[0].getBoundingClientRect().left]; }""")
        assert abs(left[0] - left[1]) < 2, left

        def runs(table: str) -> list[str]:
            return page.eval_on_selector_all(f"table.{table} tbody tr",
                                             "rows => rows.map(r => r.dataset.run)")

        # One order for both tables: as written, after a leaderboard sort, after a config sort.
        def ranks() -> dict[str, str]:
            return dict(page.eval_on_selector_all(
                "table.leaderboard tbody tr",
                "rows => rows.map(r => [r.dataset.run, r.cells[0].textContent])"))

        written, ranked = runs("leaderboard"), ranks()
        assert runs("config") == written and len(written) == 6
        page.click("table.leaderboard th:text-is('params')")  # fewest first
        assert runs("leaderboard") != written and runs("config") == runs("leaderboard")
        page.click("table.config th:text-is('trainer.seed')")
        assert runs("leaderboard") == runs("config") == sorted(written)  # seed i: dir i_job
        assert ranks() == ranked  # a run's rank is the ranking's, whatever the order shown
        assert page.inner_text("#sorted-by") == "trainer.seed, A to Z"
        page.screenshot(path=str(tmp_path / "config.png"), full_page=True)
