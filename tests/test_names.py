"""Run directories named by what ran; run.name and run.tags recorded and shown."""

import io
import json

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig

import vbench.commands.names  # noqa: F401  (the resolver, as cli.py registers it)
from vbench.commands.names import JOB_DIR_LENGTH, MAX_LENGTH, run_name
from vbench.reports.leaderboard import leaderboard_tables, summarize


def run_dir_name(*overrides: str) -> str:
    with initialize_config_module("vbench.conf", version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        return cfg.hydra.run.dir.split("/")[-1].split("_", 2)[-1]  # after the timestamp


@pytest.mark.parametrize("overrides, name", [
    ([], "digits_mlp"),
    (["optimizer=sgd", "scheduler=step"], "digits_mlp_sgd_step"),
    (["dataset=cifar10", "model=timm", "model.name=resnet10t"], "cifar10_timm-resnet10t"),
    (["run.name=my baseline/2"], "my-baseline-2"),
])
def test_run_directory_names_the_chosen_options(overrides, name):
    assert run_dir_name(*overrides) == name


def test_long_names_are_cut_and_stay_distinct():
    choices = {"dataset": "imagefolder", "model": "torchvision", "optimizer": "rmsprop",
               "scheduler": "warmup_cosine", "freeze": "backbone", "variant": "x" * 30}
    a = run_name(choices, "efficientnet_b0")
    b = run_name({**choices, "variant": "y" * 30}, "efficientnet_b0")
    assert len(a) == len(b) == MAX_LENGTH and a != b
    assert a.startswith("imagefolder_torchvision-efficientnet_b0_rmsprop")


def test_name_and_tags_reach_metrics_and_leaderboard(run_vbench, tmp_path):
    metrics, run_dir = run_vbench("debug=smoke", "eval.plots=[]", "run.name=baseline",
                                  "run.tags=[paper,v2]")
    assert metrics["name"] == "baseline" and metrics["tags"] == ["paper", "v2"]
    rows, _ = summarize([run_dir])
    assert rows[0]["label"] == "baseline" and rows[0]["tags"] == "paper v2"
    from rich.console import Console

    console = Console(width=160, record=True, file=io.StringIO())
    for item in leaderboard_tables(rows, "best_val_acc", "runs", 160):
        console.print(item)
    text = console.export_text()
    assert "baseline" in text and "paper v2" in text
    assert json.loads((run_dir / "metrics.json").read_text())["tags"] == ["paper", "v2"]


def test_a_sweep_over_many_overrides_gets_job_directories_a_file_system_takes(tmp_path):
    """Hydra names a job's directory after its overrides; a dozen of them went past the 255
    bytes of a file name ("File name too long" after the sweep had started)."""
    import subprocess
    import sys

    overrides = ["debug=smoke", "eval.plots=[]", "dataset=fake", "dataset.image_size=12",
                 "dataset.in_channels=1", "dataset.train_size=300", "dataset.test_size=100",
                 "dataset.val_size=100", "trainer.batch_size=64", "optimizer=adam",
                 "optimizer.lr=0.001", "optimizer.weight_decay=0.0001", "model.width=32",
                 "model.depth=1,2"]
    done = subprocess.run([sys.executable, "-m", "vbench", "-m", *overrides,
                           f"hydra.sweep.dir={tmp_path / 'sweep'}"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert [p.name[:2] for p in jobs] == ["0_", "1_"]
    assert all(len(p.name) <= 2 + JOB_DIR_LENGTH for p in jobs) and jobs[0].name != jobs[1].name
    assert all(json.loads((p / "metrics.json").read_text())["status"] == "completed" for p in jobs)
