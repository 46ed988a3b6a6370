"""Scaling the data path: uint8 splits normalized per batch, a last training batch of one
dropped, gradient accumulation."""

import pytest
import torch

from helpers import make_cfg
from vbench.data import load_data
from vbench.training.loop import StepRecipe, optimizer_steps, train_one_epoch


def digits_train(*overrides):
    return load_data(make_cfg(*overrides).dataset, torch.device("cpu")).train


def test_a_last_training_batch_of_one_is_dropped_never_in_evaluation():
    split = digits_train().subset(slice(0, 161))  # 161 = 2 * 80 + 1
    train = [len(y) for _, y in split.batches(80, torch.Generator().manual_seed(0),
                                               drop_single=True)]
    assert train == [80, 80] and split.drawn(80, drop_single=True) == 160
    assert [len(y) for _, y in split.batches(80)] == [80, 80, 1]  # evaluation sees every image
    assert [len(y) for _, y in split.batches(1, drop_single=True)] == [1] * 161  # batch 1 is asked


def test_smoke_run_with_a_batch_size_that_leaves_one_image_trains_batchnorm(run_vbench):
    # debug=smoke on digits keeps 80 train images: batch 79 leaves one, which BatchNorm refuses.
    metrics, _ = run_vbench("debug=smoke", "model=cnn", "trainer.batch_size=79")
    assert metrics["status"] == "completed" and metrics["sizes"]["train"] == 80


def _mlp_after_one_epoch(split, batch_size: int, accumulate: int) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.2, total_steps=optimizer_steps(split, batch_size, accumulate))
    recipe = StepRecipe(optimizer, torch.amp.GradScaler("cpu", enabled=False), scheduler, None,
                        accumulate=accumulate)
    train_one_epoch(model, split, batch_size, recipe, torch.Generator().manual_seed(1))
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("images", [1294, 1290])  # a trailing partial group, and full groups
def test_accumulating_two_batches_equals_one_batch_twice_the_size(images):
    split = digits_train().subset(slice(0, images))
    assert optimizer_steps(split, 16, accumulate=2) == optimizer_steps(split, 32)
    for a, b in zip(_mlp_after_one_epoch(split, 16, 2), _mlp_after_one_epoch(split, 32, 1)):
        assert torch.allclose(a, b, atol=1e-5)


def test_accumulate_with_a_per_step_scheduler_runs(run_vbench):
    # OneCycleLR raises when stepped past its total: it must count optimizer steps.
    metrics, _ = run_vbench("trainer.epochs=2", "trainer.accumulate=3", "scheduler=onecycle")
    assert metrics["status"] == "completed" and metrics["best"]["test"]["accuracy"] > 0.5


def _adam_steps(run_dir) -> int:
    from vbench.core import files

    state = files.load_torch(run_dir / "checkpoints/last.pt")["optimizer"]["state"]
    return int(next(iter(state.values()))["step"])


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_one_run(tmp_path, run_vbench):
    """README: `torchrun --nproc_per_node=2 -m vbench ...` is one job of two gloo ranks."""
    import json
    import os
    import subprocess
    import sys

    overrides = ["trainer.device=cpu", "trainer.epochs=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", "-m", "vbench", *overrides,
                           "trainer.batch_size=32"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = list((tmp_path / "outputs/runs").iterdir())
    assert len(runs) == 1  # both ranks agreed on one directory
    assert done.stdout.count("run directory:") == 1  # and only rank 0 printed
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    single, single_dir = run_vbench(*overrides, "trainer.batch_size=64")
    assert metrics["status"] == "completed" and metrics["world_size"] == 2
    assert single["world_size"] == 1 and set(single) == set(metrics)
    assert metrics["sizes"] == single["sizes"]  # val/test over the whole splits
    assert _adam_steps(runs[0]) == _adam_steps(single_dir)  # 2 x 32 per step == 64
    accuracy = metrics["best"]["test"]["accuracy"]
    assert abs(accuracy - single["best"]["test"]["accuracy"]) < 0.05
    assert len((runs[0] / "history.csv").read_text().splitlines()) == 3


@pytest.mark.slow
def test_streaming_imagefolder_matches_the_in_memory_path(run_vbench, tmp_path):
    from helpers.formats import write_imagefolder

    write_imagefolder(tmp_path / "images", splits=("train", "test"), per_class=24)
    common = ("dataset=imagefolder", f"dataset.root={tmp_path / 'images'}", "model=cnn",
              "trainer.epochs=2", "trainer.batch_size=16", "dataset.augment=flip_crop",
              "eval.plots=[samples,misclassified]", "eval.shift_pixels=[0,2]")
    memory, _ = run_vbench(*common, "dataset.in_memory=true", name="memory")
    streamed, run_dir = run_vbench(*common, "dataset.in_memory=false", "dataset.num_workers=2",
                                   name="streamed")
    assert memory["data"]["in_memory"] and not streamed["data"]["in_memory"]
    assert streamed["data"]["normalization"] == "seeded sample of 65 train images"
    assert set(memory) == set(streamed) and memory["sizes"] == streamed["sizes"]
    assert memory["classes"] == streamed["classes"]
    for which in ("best", "final"):  # the same images, batches and augmentation
        for split in ("val", "test"):
            for key, value in memory[which][split].items():
                assert streamed[which][split][key] == pytest.approx(value, abs=1e-4)
    assert (run_dir / "plots/misclassified.png").is_file()


def test_slurm_ddp_launcher_asks_one_gpu_per_process():
    """README: hydra/launcher=slurm_ddp composes (no cluster here: its config is checked)."""
    import subprocess
    import sys

    import yaml

    done = subprocess.run([sys.executable, "-m", "vbench", "hydra/launcher=slurm_ddp",
                           "hydra.launcher.partition=gpu", "hydra.launcher.tasks_per_node=4",
                           "--cfg", "hydra", "--resolve", "-p", "hydra.launcher"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    launcher = yaml.safe_load(done.stdout)
    assert launcher["tasks_per_node"] == launcher["gpus_per_node"] == 4
    assert launcher["partition"] == "gpu" and launcher["_target_"].endswith("SlurmLauncher")


def test_in_memory_auto_streams_when_the_images_exceed_the_budget(tmp_path, monkeypatch):
    from helpers.formats import write_imagefolder
    from vbench.core.errors import VBenchError
    from vbench.data import stream

    write_imagefolder(tmp_path, per_class=4)
    base = ("dataset=imagefolder", f"dataset.root={tmp_path}", "dataset.num_workers=0")
    assert not load_data(make_cfg(*base).dataset, torch.device("cpu")).train.streamed
    monkeypatch.setattr(stream, "available_bytes", lambda: 1000)  # 12 RGB 32 px images: 36 kB
    data = load_data(make_cfg(*base).dataset, torch.device("cpu"))
    assert data.train.streamed and not data.in_memory and data.in_channels == 3
    with pytest.raises(VBenchError, match="dataset.in_memory='maybe' is not valid"):
        load_data(make_cfg(*base, "dataset.in_memory=maybe").dataset, torch.device("cpu"))


def test_more_processes_than_gpus_is_one_line(monkeypatch):
    """torchrun --nproc_per_node=2 on a one-GPU machine: a line naming the flag and the count
    (it was CUDA's "invalid device ordinal" traceback)."""
    import torch

    from vbench.core.errors import VBenchError
    from vbench.training import distributed

    for key, value in {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2",
                       "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(VBenchError, match=r"torchrun started 2 processes on this machine, which "
                                          r"has 1 GPU\(s\): use --nproc_per_node=1"):
        distributed.device_for(torch.device("cuda"))
