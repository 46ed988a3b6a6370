"""Run directories named by what ran; run.name and run.tags recorded and shown."""

import io
import json

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig

import vbench.training.names  # noqa: F401  (the resolver, as cli.py registers it)
from vbench.reports.leaderboard import leaderboard_tables, summarize
from vbench.training.names import MAX_LENGTH, run_name


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
