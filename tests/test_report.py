"""The sweep summary and vbench-report. Hand-made run directories test the report's reading and
arithmetic; one real multirun through the CLI tests that the summary writes itself."""

import csv
import json
import os
import sys
from pathlib import Path

import pytest

from helpers import SRC, fake_run, png_ok, vbench
from vbench.commands.report import main
from vbench.reports.leaderboard import summarize

PLOTS = ["summary_val_accuracy", "summary_test_accuracy", "summary_accuracy_vs_params"]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_summary_rows_match_the_runs(sweep):
    rows, out = summarize([sweep])
    assert out == sweep.resolve()
    by_run = {r["run"]: r for r in read_csv(sweep / "summary.csv")}
    assert set(by_run) == {"0_mlp", "1_mlp", "2_mlp", "3_cnn", "4_bad", "5_killed"}
    for name in ("0_mlp", "3_cnn"):
        metrics = json.loads((sweep / name / "metrics.json").read_text())
        row = by_run[name]
        assert float(row["best_test_acc"]) == metrics["best"]["test"]["accuracy"]
        assert float(row["best_val_acc"]) == metrics["best"]["val"]["accuracy"]
        assert float(row["final_test_acc"]) == metrics["final"]["test"]["accuracy"]
        assert float(row["macro_f1"]) == metrics["best"]["test"]["macro_f1"]
        assert int(row["params"]) == metrics["params"]["total"]
        assert int(row["trainable_params"]) == metrics["params"]["trainable"]
        assert float(row["inference_ms"]) == metrics["inference_ms_per_image"]
    assert by_run["0_mlp"]["overrides"] == "model=mlp trainer.seed=0"
    # Failed and never-finished jobs are listed, with their status, after every result.
    assert by_run["4_bad"]["status"] == "failed" and by_run["4_bad"]["error"]
    assert by_run["5_killed"]["status"] == "missing"
    assert [r["run"] for r in rows][:2] == ["3_cnn", "2_mlp"]
    assert {r["run"] for r in rows[-2:]} == {"4_bad", "5_killed"}
    md = (sweep / "summary.md").read_text()
    assert "4_bad: failed: VBenchError: boom" in md and "5_killed: missing" in md
    for name in PLOTS:
        assert png_ok(sweep / f"{name}.png"), name


def test_seed_repeats_are_grouped_with_sample_std(sweep):
    summarize([sweep])
    md = (sweep / "summary.md").read_text()
    # Test accuracies 0.70, 0.80, 0.90: mean 0.80, sample std (ddof=1) 0.10, not 0.0816.
    lines = md.splitlines()
    head = next(line for line in lines if line.startswith("| rank | group"))

    def cells(group: str) -> dict:
        line = next(line for line in lines if f"| `{group}` |" in line)
        return dict(zip(*([c.strip() for c in row.strip("|").split("|")]
                          for row in (head, line))))

    mlp = cells("model=mlp")
    assert [mlp[k] for k in ("runs", "statuses", "best val acc", "best test acc")] == \
        ["3", "3 completed", "0.8200 ± 0.1000", "0.8000 ± 0.1000"]
    cnn = cells("model=cnn")
    assert [cnn[k] for k in ("rank", "runs", "statuses", "best val acc")] == \
        ["1", "1", "1 completed", "0.9700"]


def test_report_cli_sorts_writes_where_asked_and_refuses_empty_paths(sweep, tmp_path, capsys):
    out = tmp_path / "elsewhere"
    assert main([str(sweep), "--sort", "params", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.index("model=mlp") < printed.index("model=cnn")  # fewer params first
    assert next(r["run"] for r in read_csv(out / "summary.csv")) == "0_mlp"
    assert not (sweep / "summary.csv").exists()

    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no run directories" in capsys.readouterr().err


def test_several_sweeps_and_single_runs(tmp_path):
    fake_run(tmp_path / "a/0_x", ["model=mlp"], 0.5)
    fake_run(tmp_path / "b/0_x", ["model=mlp", "trainer.seed=1"], 0.7)
    fake_run(tmp_path / "single", [], 0.6)
    rows, out = summarize([tmp_path / "a", tmp_path / "b", tmp_path / "single"])
    assert out == tmp_path.resolve()
    assert [r["run"] for r in rows] == ["b/0_x", "single", "a/0_x"]
    assert rows[0]["group"] == rows[2]["group"] == "model=mlp"  # one config, two seeds
    assert rows[1]["group"] == "(defaults)"


@pytest.mark.slow
def test_multirun_writes_its_summary_and_vbench_report_reproduces_it(tmp_path):
    # Two jobs that fail at run time (MNIST's files are there but damaged: missing files or a
    # bad value would be refused before any job): they must not stop the other jobs, are
    # listed as failed, and make the command exit non-zero once the summary is written.
    from helpers.formats import write_mnist

    write_mnist(tmp_path / "data")
    (tmp_path / "data/MNIST/raw/train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    result = vbench("-m", "debug=smoke", "model.depth=1,2", "dataset=digits,mnist",
                    "eval.plots=[]", "hydra.sweep.dir=sweep", cwd=tmp_path, src_first=True,
                    env={"VBENCH_DATA": None})
    assert result.returncode == 1, result.stderr
    assert "vbench: error: dataset=mnist: cannot read" in result.stderr
    assert "2 job(s) of the sweep did not finish" in result.stderr
    sweep = tmp_path / "sweep"
    rows = read_csv(sweep / "summary.csv")
    by_overrides = {r["overrides"].removeprefix("debug=smoke ").removesuffix(" eval.plots=[]"): r
                    for r in rows}
    assert set(by_overrides) == {f"model.depth={d} dataset={ds}" for d in (1, 2)
                                 for ds in ("digits", "mnist")}
    for overrides, row in by_overrides.items():
        if overrides.endswith("mnist"):
            assert row["status"] == "failed" and "cannot read" in row["error"]
            continue
        metrics = json.loads((sweep / row["run"] / "metrics.json").read_text())
        assert row["status"] == "completed"
        assert float(row["best_test_acc"]) == metrics["best"]["test"]["accuracy"]
        assert int(row["params"]) == metrics["params"]["total"]
    assert [r["status"] for r in rows][-2:] == ["failed", "failed"]
    for name in PLOTS:
        assert png_ok(sweep / f"{name}.png"), name

    written = {n: (sweep / n).read_text() for n in ("summary.csv", "summary.md")}
    for name in written:
        (sweep / name).unlink()
    report = vbench("-m", "vbench.commands.report", "sweep", program=sys.executable,
                    cwd=tmp_path, src_first=True)
    assert report.returncode == 0, report.stderr
    assert {n: (sweep / n).read_text() for n in written} == written
    assert "model.depth=2 dataset=digits" in report.stdout


def test_report_module_does_not_import_torch():
    code = "import sys, vbench.commands.report; sys.exit('torch' in sys.modules)"
    assert vbench("-c", code, program=sys.executable, cwd=SRC, src_first=True).returncode == 0


def test_an_unreadable_run_is_skipped_with_one_line_and_the_rest_ranked(sweep, capsys):
    """A truncated metrics.json or one with wrong types does not take the leaderboard down:
    each such run is one warning line (its path and why), the others are ranked, exit 0."""
    (sweep / "0_mlp/metrics.json").write_text('{"status": "completed", "best": {"val": ')
    (sweep / "2_mlp/metrics.json").write_text(json.dumps({"status": "completed", "best": 5,
                                                           "params": "x"}))
    (sweep / "3_cnn/history.csv").write_text("epoch,val_acc\n1,0.5\n2,")  # cut off: curves only
    assert main([str(sweep)]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 2, captured.err
    assert all(w.startswith("vbench-report: warning: skipped ") for w in warnings)
    assert str(sweep.resolve() / "0_mlp/metrics.json") in warnings[0]
    assert "not valid JSON" in warnings[0]
    assert str(sweep.resolve() / "2_mlp/metrics.json") in warnings[1]
    assert "best" in warnings[1] and "Traceback" not in captured.err + captured.out
    runs = [r["run"] for r in read_csv(sweep / "summary.csv")]
    assert runs == ["3_cnn", "1_mlp", "4_bad", "5_killed"]
    assert "0_mlp" in (sweep / "summary.md").read_text()  # listed there as skipped too


def test_report_with_no_readable_run_or_an_unwritable_out_is_one_line(sweep, tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "a_file/summary"
    assert main([str(sweep), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vbench-report: error: ")
    assert str(out) in err and "--out" in err
    assert not out.exists()

    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "metrics.json").write_text("[1, 2")
    assert main([str(lone)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "skipped" in err[0] and err[1].startswith("vbench-report: error: ")
    assert not (lone / "summary.csv").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_report_into_a_read_only_folder_is_one_line(sweep, tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert main([str(sweep), "--out", str(out)]) == 2
    finally:
        out.chmod(0o700)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out) in err and not list(out.iterdir())


def test_a_run_is_a_directory_with_hydra_or_a_runs_metrics(tmp_path, capsys):
    """`vbench-report outputs/runs` after vbench-eval: the eval/<dataset>_<split>/ folders
    (metrics.json without a status) belong to their run and are no runs of their own."""
    runs = tmp_path / "outputs/runs"
    fake_run(runs / "a", [], 0.9)
    for folder in ("digits_test", "digits_val", "fake_test_final"):
        (runs / "a/eval" / folder).mkdir(parents=True)
        (runs / "a/eval" / folder / "metrics.json").write_text(json.dumps(
            {"loss": 0.3, "accuracy": 0.9, "macro_f1": 0.9, "weighted_f1": 0.9,
             "checkpoint": "best", "epoch": 2}))
    (runs / "a/wandb/run-1").mkdir(parents=True)  # a tracker's folder inside the run
    (runs / "a/wandb/run-1/metrics.json").write_text('{"status": "x"}')
    lone = tmp_path / "outputs/copied"  # a run's metrics.json without .hydra/ is a run too
    lone.mkdir(parents=True)
    (lone / "metrics.json").write_text((runs / "a/metrics.json").read_text())
    assert main([str(tmp_path / "outputs")]) == 0
    out = capsys.readouterr().out
    assert "without a result" not in out and "eval" not in out
    assert [r["run"] for r in read_csv(tmp_path / "outputs/summary.csv")] == ["copied", "runs/a"]
    rows, _ = summarize([runs])
    assert [r["run"] for r in rows] == ["a"]


def test_a_seed_group_needs_runs_whose_seeds_differ(tmp_path):
    """Five runs with the defaults (one seed) are five runs, not a group with ± 0.0000."""
    runs = tmp_path / "runs"
    for i in range(5):
        fake_run(runs / f"2026-11-22_00-0{i}_digits_mlp", [], 0.9)
    fake_run(runs / "s0", ["model=cnn", "trainer.seed=0"], 0.8)
    fake_run(runs / "s1", ["model=cnn", "trainer.seed=1"], 0.9)
    rows, _ = summarize([runs])
    groups = {r["group"] for r in rows}
    assert len(groups) == 6 and "model=cnn" in groups
    md = (runs / "summary.md").read_text()
    assert "± 0.0000" not in md
    assert "| 6 | `model=cnn` | 2 | 2 completed | " in md  # below the five runs' shared rank 1
    # Runs of the same overrides are labelled by their directories, as the groups are.
    labels = {r["run"]: r["label"] for r in rows}
    assert all(labels[f"2026-11-22_00-0{i}_digits_mlp"] == f"2026-11-22_00-0{i}_digits_mlp"
               for i in range(5))
    assert labels["s1"] == "model=cnn trainer.seed=1"


def test_labels_round_long_decimals_to_what_tells_runs_apart():
    from vbench.reports.runs import shared_keys, short_labels

    labels = short_labels(["optimizer.lr=0.009145320282946534 model.width=64 debug=smoke",
                           "optimizer.lr=0.0012345678901234 model.width=128 debug=smoke",
                           "optimizer.lr=0.00123456999 model.width=64 debug=smoke"])
    # 4 significant digits; as many more as two close values need to read apart.
    assert labels == ["optimizer.lr=0.009145 model.width=64",
                      "optimizer.lr=0.001234568 model.width=128",
                      "optimizer.lr=0.00123457 model.width=64"]
    assert shared_keys(labels) == ("optimizer.lr, model.width",
                                   ["0.009145, 64", "0.001234568, 128", "0.00123457, 64"])
    assert shared_keys(["model=mlp", "model=cnn model.depth=3"]) == \
        ("", ["model=mlp", "model=cnn model.depth=3"])
    assert short_labels(["model.depth=1 lr=1e-3", "model.depth=2 lr=1e-3"]) == \
        ["model.depth=1", "model.depth=2"]  # shared tokens go first, integers stay
