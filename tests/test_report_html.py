"""report.html: its content from hand-made run directories (see test_report.py), and the page
itself in a real headless Chromium."""

import re
import shutil
from pathlib import Path

import pytest

from test_report import sweep  # noqa: F401 - the fixture: 4 finished, 1 failed, 1 missing job
from vbench.reports.html import write_html_report
from vbench.reports.leaderboard import main


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
def runs(sweep):  # noqa: F811
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


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="no chromium on PATH (apt-get install chromium)")
def test_report_renders_and_sorts_in_headless_chromium(runs, tmp_path):
    assert main([str(runs), "--html"]) == 0  # the command line writes it beside summary.md
    report = runs / "report.html"
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    user_data = tmp_path / "chromium-profile"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(user_data), executable_path=chromium(), args=flags, headless=True,
            viewport={"width": 1280, "height": 900}, offline=True)
        page = browser.new_page()
        page.goto(report.as_uri())

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
        assert column("#") == ["1", "2", "3", "4", "5", "6"]
        assert column("status")[-2:] == ["failed", "missing"]

        page.click("details >> nth=0 >> summary")  # a run's plots are one click away
        page.eval_on_selector_all("details", "ds => ds.forEach(d => d.open = true)")
        page.wait_for_function("Array.from(document.images).every(i => i.complete)")
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
        assert len(widths) == 14 and all(w > 0 for w in widths)
        page.eval_on_selector_all("details", "ds => ds.forEach((d, i) => d.open = i == 0)")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert (tmp_path / "report.png").stat().st_size > 10_000
