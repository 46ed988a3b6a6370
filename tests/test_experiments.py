"""Every experiment preset is a sweep that runs: each of its jobs, shrunk (1 epoch, 10 images
per class, small inputs, no pretrained weights), trains on tiny real-format files."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from helpers import vbench
from helpers.formats import write_cifar10, write_mnist
from vbench.training.run import run

PRESETS = sorted(p.stem for p in (Path(__file__).parents[1] / "src/vbench/conf/experiment")
                 .glob("*.yaml"))
SHRINK = ["debug=smoke", "eval.plots=[]"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_mnist(root, "MNIST")
    write_mnist(root, "FashionMNIST")
    write_cifar10(root)
    return root


def sweep_jobs(preset: str) -> list[list[str]]:
    """The jobs `vbench -m experiment=<preset>` launches, expanded as Hydra's basic sweeper does."""
    with initialize_config_module("vbench.conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={preset}"], return_hydra_config=True)
    params = [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()]
    return BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), None)[0]


def shrunk(cfg):
    """Library backbones at 64 px and without pretrained weights (none can be downloaded here)."""
    if cfg.model.get("pretrained"):
        cfg.model.pretrained = False
    if cfg.model.get("input_size"):
        cfg.model.input_size = 64
    return cfg


def test_every_seed_study_has_a_preset():
    assert PRESETS == ["cifar_mlp_vs_cnn", "cifar_resnet18_freeze", "fmnist_activation",
                       "fmnist_depth", "fmnist_optimizer", "fmnist_regularization",
                       "fmnist_schedule", "fmnist_skip", "fmnist_width", "mnist_baselines",
                       "mnist_cnn_vs_pretrained"]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_job_of_every_preset_runs(preset, data_root, tmp_path):
    jobs = sweep_jobs(preset)
    assert len(jobs) >= 3
    seen = set()
    for i, job in enumerate(jobs):
        with initialize_config_module("vbench.conf", version_base="1.3"):
            cfg = compose("config", overrides=[f"experiment={preset}", *job, *SHRINK,
                                               f"dataset.root={data_root}"])
        metrics = run(shrunk(cfg), tmp_path / str(i))
        assert metrics["status"] == "completed", job
        assert metrics["epochs_run"] == 1 and metrics["best"]["test"] is not None
        seen.add(json.dumps([cfg.model, cfg.optimizer, cfg.scheduler, cfg.freeze], default=str))
    assert len(seen) == len(jobs)  # every job trains something different


def test_preset_arms_match_the_seeds():
    def cfg_of(*overrides):
        with initialize_config_module("vbench.conf", version_base="1.3"):
            return compose("config", overrides=list(overrides))

    skip = cfg_of("experiment=fmnist_skip", "variant=skip_plain8")
    assert (skip.dataset.name, skip.model.name, skip.model.depth) == ("fashion_mnist", "mlp", 8)
    momentum = cfg_of("experiment=fmnist_optimizer", "variant=opt_sgd_momentum")
    assert (momentum.optimizer.name, momentum.optimizer.momentum) == ("sgd", 0.9)
    assert momentum.model.width == 256 and momentum.model.batchnorm is False
    freeze = cfg_of("experiment=cifar_resnet18_freeze", "variant=freeze_layer1_2")
    assert list(freeze.freeze.modules) == ["layer1", "layer2"]
    assert (freeze.optimizer.name, freeze.optimizer.weight_decay) == ("adamw", 0.1)
    mlp = cfg_of("experiment=cifar_mlp_vs_cnn", "variant=c3_mlp")
    assert list(mlp.model.widths) == [256, 128]
    baseline = cfg_of("experiment=mnist_baselines", "variant=b0_mlp")
    assert baseline.dataset.subset_per_class == 1000 and list(baseline.model.widths) == [30, 20]


def test_cli_runs_a_whole_preset_as_a_sweep(data_root, tmp_path):
    result = vbench("-m", "experiment=fmnist_depth", *SHRINK, f"dataset.root={data_root}",
                    "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    # Job directories are named by their overrides, without the path-valued dataset.root.
    assert [p.parent.name for p in jobs] == [
        f"{i}_debug=smoke,eval.plots=[],experiment=fmnist_depth,model.depth={depth}"
        for i, depth in enumerate([1, 2, 3, 5, 8])]
    assert all(json.loads(p.read_text())["status"] == "completed" for p in jobs)
    assert (tmp_path / "sweep/summary.csv").exists()
