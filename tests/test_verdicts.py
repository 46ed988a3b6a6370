"""Verdicts: shared ranks, what one val image is worth, mean ± 95 % CI over seeds and Welch's
t-test against the leader, in every table. Hand-made run directories (test_report.fake_run)
test the arithmetic against scipy and a hand computation; one real sweep through the CLI tests
that the summary files and report.html carry it."""

import csv
import json
import math
import re
import statistics
import sys
from pathlib import Path

import pytest
from scipy import stats

from helpers import fake_run, vbench
from vbench.commands.report import main
from vbench.reports import verdicts
from vbench.reports.html import write_html_report
from vbench.reports.leaderboard import summarize
from vbench.reports.table import GROUPS_CSV

VAL_SIZE = 144  # the digits' val split: one image is 1/144 = 0.69 %


def run_with(run_dir: Path, overrides: list[str], val: float, val_size: int = VAL_SIZE,
             status: str = "completed") -> None:
    """A finished run whose best val accuracy is `val` and whose val split has `val_size`
    images."""
    fake_run(run_dir, overrides, round(val - 0.01, 6), status=status)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["best"]["val"]["accuracy"] = val
    metrics["sizes"] = {"train": 1000, "val": val_size, "test": 360}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def md_table(md: str, head: str) -> list[dict]:
    """The first markdown table whose header row starts with `head`, as dicts."""
    lines = md.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"| {head}"))

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    rows = []
    for line in lines[at + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(cells(lines[at]), cells(line))))
    return rows


def test_competition_ranking_shares_ranks_of_equal_values():
    assert verdicts.competition_ranks([0.9, 0.95, 0.9, None, 0.95, 0.8], True) == \
        [3, 1, 3, None, 1, 5]
    assert verdicts.competition_ranks([3, 1, 1, 2], False) == [4, 1, 1, 3]  # params: fewest


def test_equal_val_accuracies_share_a_rank_and_one_image_is_named(tmp_path, capsys):
    """The README's sweep: 8 of 10 runs at 141/144. Their order is arbitrary and every table
    says so: they share rank 1, and one val image is 0.69 %."""
    sweep = tmp_path / "sweep"
    accs = [141 / 144] * 8 + [140 / 144, 139 / 144]
    for i, acc in enumerate(accs):
        run_with(sweep / f"{i}_job", [f"model.depth={i}"], acc)
    fake_run(sweep / "10_bad", ["model.depth=99"], status="failed")
    assert main([str(sweep)]) == 0
    printed = capsys.readouterr().out
    by_run = {r["run"]: r for r in read_csv(sweep / "summary.csv")}
    assert [by_run[f"{i}_job"]["rank"] for i in range(10)] == ["1"] * 8 + ["9", "10"]
    assert by_run["10_bad"]["rank"] == ""  # a failed run ranks nothing
    md = (sweep / "summary.md").read_text()
    assert [r["rank"] for r in md_table(md, "rank")] == ["1"] * 8 + ["9", "10", "—"]
    line = "one val image moves val accuracy by 1/144 = 0.69 %"
    page = write_html_report([sweep], tmp_path / "r.html").read_text()
    # report.html's leaderboard and its curves' legend number the runs by the same ranks.
    assert re.findall(r"<tr[^>]*><td class=num data-v='(\d+)'>", page) == ["1"] * 8 + ["9", "10"]
    assert re.findall(r"<li value=(\d+)>", page) == ["1"] * 8 + ["9", "10"]
    for text in (md, printed, page):
        assert "8 runs share rank 1" in text and "order within a rank is arbitrary" in text
        assert line in " ".join(text.lower().split())
    assert not (sweep / GROUPS_CSV).exists()  # no configuration ran twice
    assert "Seed groups" not in md


def test_the_one_image_line_gives_the_range_when_val_splits_differ(tmp_path):
    run_with(tmp_path / "a", ["model.depth=1"], 0.9, val_size=144)
    run_with(tmp_path / "b", ["model.depth=2"], 0.8, val_size=417)
    summarize([tmp_path])
    md = (tmp_path / "summary.md").read_text()
    assert ("One val image moves val accuracy by 1/417 to 1/144 = 0.24 to 0.69 % (val splits "
            "of 144 to 417 images)") in md


SEEDS = {"model.depth=3": [0.90, 0.92, 0.94],   # the leader: mean 0.92
         "model.depth=2": [0.88, 0.89, 0.93],   # close: not distinguishable -> tied
         "model.depth=1": [0.70, 0.71, 0.73],   # far below: worse
         "model.depth=5": [0.85]}               # one seed: no test


@pytest.fixture
def seeded(tmp_path) -> Path:
    sweep = tmp_path / "sweep"
    i = 0
    for config, values in SEEDS.items():
        for seed, value in enumerate(values):
            run_with(sweep / f"{i}_job", [config, f"trainer.seed={seed}"], value)
            i += 1
    fake_run(sweep / f"{i}_bad", ["model.depth=3", "trainer.seed=9"], status="failed")
    return sweep


def welch_by_hand(a: list[float], b: list[float]) -> float:
    """Welch's t and Welch-Satterthwaite's degrees of freedom, written out."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return 2 * stats.t.sf(abs(t), df)


def test_seed_groups_get_a_t_interval_and_welchs_test_against_the_leader(seeded, capsys):
    assert main([str(seeded)]) == 0
    printed = capsys.readouterr().out
    groups = {g["group"]: g for g in read_csv(seeded / GROUPS_CSV)}
    leader = SEEDS["model.depth=3"]
    for config, values in SEEDS.items():
        g = groups[config]
        assert float(g["ranked_mean"]) == pytest.approx(statistics.fmean(values))
        assert g["ranked_by"] == "best_val_acc" and int(g["ranked_n"]) == len(values)
        if len(values) > 1:
            low, high = stats.t.interval(0.95, len(values) - 1, loc=statistics.fmean(values),
                                         scale=stats.sem(values))
            assert float(g["ranked_mean_ci95"]) == pytest.approx((high - low) / 2)
        else:
            assert g["ranked_mean_ci95"] == ""
    # 0.90, 0.92, 0.94: t(0.975, 2) = 4.303, s = 0.02, so ± 0.0497.
    assert float(groups["model.depth=3"]["ranked_mean_ci95"]) == pytest.approx(
        4.302653 * 0.02 / math.sqrt(3), rel=1e-6)
    # The failed run of the leader's configuration counts nowhere.
    assert groups["model.depth=3"]["statuses"] == "3 completed, 1 failed"
    p_close = welch_by_hand(SEEDS["model.depth=2"], leader)
    p_far = welch_by_hand(SEEDS["model.depth=1"], leader)
    assert float(groups["model.depth=2"]["p_value"]) == pytest.approx(p_close, rel=1e-9)
    assert float(groups["model.depth=1"]["p_value"]) == pytest.approx(p_far, rel=1e-9)
    assert p_close > verdicts.ALPHA and p_far < 0.001
    assert {c: g["vs_leader"] for c, g in groups.items()} == {
        "model.depth=3": "leader", "model.depth=2": "tied", "model.depth=1": "worse",
        "model.depth=5": "no test: 1 seed"}
    assert [g["rank"] for g in read_csv(seeded / GROUPS_CSV)] == ["1", "2", "3", "4"]

    md = (seeded / "summary.md").read_text()
    table = {r["group (overrides without trainer.seed)"].strip("`"): r
             for r in md_table(md, "rank | group")}
    ci = 4.302653 * 0.02 / math.sqrt(3)
    assert table["model.depth=3"]["best val acc: mean ± 95 % CI"] == f"0.9200 ± {ci:.4f}"
    assert table["model.depth=2"]["p vs leader (Welch)"] == f"{p_close:.3f}"
    assert table["model.depth=1"]["p vs leader (Welch)"] == "<0.001"
    assert table["model.depth=2"]["vs leader"] == "tied"
    assert "Welch's t-test" in md and "Student's t, n − 1 degrees of freedom" in md
    # One configuration ran with one seed: the one-image line says what its rank is worth.
    assert "1/144 = 0.69 %" in md
    assert f"0.9200 ± {ci:.4f}" in printed and "tied" in printed and f"{p_close:.3f}" in printed

    page = write_html_report([seeded], seeded / "report.html").read_text()
    groups_table = re.search(r"<table class='sortable groups'>.*?</table>", page).group()
    assert groups_table.count("<tr class=tied>") == 1
    assert f"0.9200 ± {ci:.4f}" in groups_table and "Welch" in page
    assert f"data-v='{float(groups['model.depth=2']['p_value'])!r}'>{p_close:.3f}<" in \
        groups_table


def test_degenerate_groups(tmp_path):
    """Two seeds each; identical values on both sides are tied (p = 1), constant but
    different values differ (p = 0, the t-test's limit); a leader of one seed tests nothing."""
    sweep = tmp_path / "sweep"
    for config, values in {"a=1": [0.98, 0.98], "a=2": [0.98, 0.98], "a=3": [0.97, 0.97],
                           "a=4": [0.96, 0.975]}.items():
        for seed, value in enumerate(values):
            run_with(sweep / f"{config}_{seed}", [config, f"trainer.seed={seed}"], value)
    summarize([sweep])
    groups = {g["group"]: g for g in read_csv(sweep / GROUPS_CSV)}
    assert [groups[c]["rank"] for c in ("a=1", "a=2", "a=3", "a=4")] == ["1", "1", "3", "4"]
    assert (groups["a=1"]["vs_leader"], groups["a=2"]["vs_leader"]) == ("leader", "tied")
    assert float(groups["a=2"]["p_value"]) == 1.0
    assert (groups["a=3"]["vs_leader"], float(groups["a=3"]["p_value"])) == ("worse", 0.0)
    # One side constant: Welch's test still holds (the other side's variance alone).
    assert float(groups["a=4"]["p_value"]) == pytest.approx(
        stats.ttest_ind([0.96, 0.975], [0.98, 0.98], equal_var=False).pvalue)
    # n = 2: the interval is t(0.975, 1) = 12.71 standard errors wide.
    assert float(groups["a=4"]["ranked_mean_ci95"]) == pytest.approx(
        12.7062 * statistics.stdev([0.96, 0.975]) / math.sqrt(2), rel=1e-4)

    lone = tmp_path / "lone"
    run_with(lone / "x", ["a=1"], 0.99)
    for seed, value in enumerate([0.9, 0.91]):
        run_with(lone / f"y{seed}", ["a=2", f"trainer.seed={seed}"], value)
    summarize([lone])
    groups = {g["group"]: g for g in read_csv(lone / GROUPS_CSV)}
    assert groups["a=1"]["vs_leader"] == "leader"
    assert groups["a=2"]["vs_leader"] == "no test: leader has 1 seed"
    assert groups["a=2"]["p_value"] == ""


def test_ranking_by_another_metric_ranks_and_judges_by_it(seeded):
    summarize([seeded], metric="params")  # every run has 1000 params: one shared rank
    assert {r["rank"] for r in read_csv(seeded / "summary.csv") if r["status"] == "completed"} \
        == {"1"}
    groups = read_csv(seeded / GROUPS_CSV)
    assert {g["vs_leader"] for g in groups if g["rank"]} == {"leader", "tied", "no test: 1 seed"}


def test_the_summary_of_fake_seed_groups_imports_no_torch(seeded):
    code = ("import sys; from pathlib import Path; from vbench.reports.leaderboard import "
            f"summarize; summarize([Path({str(seeded)!r})]); sys.exit('torch' in sys.modules)")
    result = vbench("-c", code, program=sys.executable, cwd=seeded, src_first=True)
    assert result.returncode == 0, result.stderr


def test_report_of_fake_seed_groups_imports_no_torch(seeded):
    """Seed groups without checkpoints (fake runs) get no ensemble, so vbench-report never
    imports torch for them; each such group says why it has none."""
    code = ("import sys; from vbench.commands.report import main; main([sys.argv[1]]); "
            "sys.exit('torch' in sys.modules)")
    result = vbench("-c", code, str(seeded), program=sys.executable, cwd=seeded,
                    src_first=True)
    assert result.returncode == 0, result.stderr
    assert "no ensemble for model.depth=3: no best checkpoint" in result.stdout


def by_hand_ensemble(run_dirs: list[Path]) -> dict:
    """Each run's best checkpoint on its val and test images, softmax averaged by hand."""
    import torch

    from vbench.data import load_data
    from vbench.evaluation.metrics import classification_metrics
    from vbench.training.checkpoint import load_run_model

    probs, scores = {"val": 0, "test": 0}, {}
    for run_dir in run_dirs:
        run = load_run_model(run_dir)
        data = load_data(run.cfg.dataset, torch.device("cpu"), stats=(run.mean, run.std))
        own = json.loads((run_dir / "metrics.json").read_text())
        with torch.no_grad():
            for name, split in (("val", data.val), ("test", data.test)):
                x = (split.x.float() / 255 - split.mean[:, None, None]) / split.std[:, None, None]
                logits = run.model(x)
                # The forward pass reproduces the run's own numbers: same images, same model.
                assert (logits.argmax(1) == split.y).float().mean().item() == \
                    pytest.approx(own["best"][name]["accuracy"])
                probs[name] = probs[name] + logits.softmax(1) / len(run_dirs)
    for name, split in (("val", data.val), ("test", data.test)):
        scores[name] = classification_metrics(probs[name].log(), split.y)
    return scores


def test_a_real_sweep_over_seeds_carries_verdicts_and_ensembles(tmp_path):
    """`vbench -m debug=smoke trainer.seed=0,1,2 model.depth=1,2`: summary.md/csv,
    summary_groups.csv and report.html rank, judge and ensemble the two configurations."""
    result = vbench("-m", "debug=smoke",
                    "trainer.seed=0,1,2", "model.depth=1,2", "eval.plots=[]",
                    "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "sweep"
    runs = read_csv(sweep / "summary.csv")
    values = {r["run"]: float(r["best_val_acc"]) for r in runs}
    ranks = verdicts.competition_ranks(list(values.values()), True)
    assert [int(r["rank"]) for r in runs] == ranks  # shared where equal
    groups = {g["group"].split("model.depth=")[1].split()[0]: g
              for g in read_csv(sweep / GROUPS_CSV)}
    assert set(groups) == {"1", "2"}
    members = {depth: [r for r in runs if f"model.depth={depth}" in r["overrides"]]
               for depth in groups}
    sizes = {json.loads((sweep / r["run"] / "metrics.json").read_text())["sizes"]["val"]
             for r in runs}
    assert len(sizes) == 1
    for depth, g in groups.items():
        accs = [float(r["best_val_acc"]) for r in members[depth]]
        assert float(g["ranked_mean"]) == pytest.approx(statistics.fmean(accs))
        if len(set(accs)) > 1:
            low, _ = stats.t.interval(0.95, 2, loc=statistics.fmean(accs), scale=stats.sem(accs))
            assert float(g["ranked_mean_ci95"]) == pytest.approx(statistics.fmean(accs) - low)
        # The ensemble: the mean of the three runs' softmax, as computed by hand.
        scores = by_hand_ensemble([sweep / r["run"] for r in members[depth]])
        assert int(g["ensemble_runs"]) == 3 and g["ensemble_error"] == ""
        assert float(g["ensemble_val_acc"]) == pytest.approx(scores["val"]["accuracy"])
        assert float(g["ensemble_test_acc"]) == pytest.approx(scores["test"]["accuracy"])
        assert float(g["ensemble_macro_f1"]) == pytest.approx(scores["test"]["macro_f1"])
    leader, other = sorted(groups.values(), key=lambda g: int(g["rank"]))
    assert leader["vs_leader"] == "leader" and other["vs_leader"] in ("tied", "worse")
    a, b = ([float(r["best_val_acc"]) for r in members[d]] for d in
            (other["group"].split("model.depth=")[1].split()[0],
             leader["group"].split("model.depth=")[1].split()[0]))
    assert float(other["p_value"]) == pytest.approx(
        verdicts.welch_p(a, b) if len(set(a)) == 1 == len(set(b)) else welch_by_hand(a, b))

    md = (sweep / "summary.md").read_text()
    table = md_table(md, "rank | group")
    assert [r["vs leader"] for r in table] == ["leader", other["vs_leader"]]
    assert table[0]["ensemble val acc"] == f"{float(leader['ensemble_val_acc']):.4f}"
    assert "Welch's t-test" in md and "Ensemble: the mean of the softmax" in md
    page = (sweep / "report.html").read_text()
    groups_table = re.search(r"<table class='sortable groups'>.*?</table>", page).group()
    assert "ensemble val acc" in groups_table and "vs leader" in groups_table
    assert f">{float(leader['ensemble_test_acc']):.4f}<" in groups_table
    assert "ens. val" in result.stdout and "leader" in result.stdout

    # vbench-report writes the same files again; --no-ensembles leaves the ensembles out.
    assert main([str(sweep), "--no-ensembles", "--out", str(tmp_path / "plain")]) == 0
    assert {g["ensemble_val_acc"] for g in read_csv(tmp_path / "plain" / GROUPS_CSV)} == {""}


@pytest.mark.parametrize("width", [80, 100, 160])
def test_the_verdict_columns_show_at_any_width(seeded, width):
    """At 80 columns the seed-group table keeps its rank, mean ± 95 % CI, p and verdict (the
    metrics' mean ± std go first), and no line is wider than the terminal."""
    import io

    from rich.console import Console

    from vbench.reports.leaderboard import leaderboard_tables

    rows, _ = summarize([seeded])
    console = Console(width=width, record=True, file=io.StringIO())
    for item in leaderboard_tables(rows, "best_val_acc", "sweep", width):
        console.print(item)
    text = console.export_text()
    assert all(len(line) <= width for line in text.splitlines())
    ci = 4.302653 * 0.02 / math.sqrt(3)
    for cell in (f"0.9200 ± {ci:.4f}", "leader", "tied", "worse", "no test: 1 seed", "<0.001"):
        assert cell in text, (width, cell)
