"""Trust at every edge: what a user types or leaves on disk that vbench used to answer with a
traceback. Each is one line naming the key or file and the fix, or simply works."""

import json
from pathlib import Path

import pytest
from hydra._internal.utils import get_args_parser

from helpers import VBENCH, vbench
from helpers.formats import write_imagefolder
from vbench.commands.preflight import check_command_line
from vbench.core.errors import VBenchError

FAST = ["trainer.epochs=1", "trainer.device=cpu", "trainer.precision=32", "eval.plots=[]",
        "dataset.image_size=8", "model.depth=1", "model.width=8"]


def refusal(*overrides: str) -> str:
    with pytest.raises(VBenchError) as err:
        check_command_line(get_args_parser().parse_args(list(overrides)))
    assert "\n" not in str(err.value)
    return str(err.value)


# ---------------------------------------------------------------- a key in the wrong group


@pytest.mark.parametrize("override,meant", [
    ("trainer.lr=0.1", "optimizer.lr"),               # the leaf is a key of another group
    ("optimizer.epochs=3", "trainer.epochs"),
    ("optimizer.batchsize=32", "trainer.batch_size"),  # a close match in another group
    ("lr=0.1", "optimizer.lr"),                        # no group at all
    ("trainer.momentum=0.9", "optimizer.momentum"),    # only some optimizers have it
])
def test_a_key_of_another_group_is_suggested(override, meant):
    assert f"did you mean {meant}" in refusal(override)


def test_a_typo_in_the_right_group_is_still_suggested_first():
    message = refusal("trainer.ephocs=3")
    assert "did you mean trainer.epochs?" in message and "optimizer" not in message


# ---------------------------------------------------------------- ~ in a path


def test_tilde_at_the_start_of_a_value_is_the_home_directory(monkeypatch, tmp_path):
    from vbench.commands.preflight import expand_home

    monkeypatch.setenv("HOME", str(tmp_path))
    home = str(tmp_path)
    assert expand_home(["dataset.root=~/photos", "model.weights=~", "-m", "~model.dropout",
                        "x=a~/b", "x=[~/a,~/b]", "x=~/a,~/b", "x='~/q'", "x=~nosuchuser9/a"]) == [
        f"dataset.root={home}/photos", f"model.weights={home}", "-m", "~model.dropout",
        "x=a~/b", f"x=[{home}/a,{home}/b]", f"x={home}/a,{home}/b", "x='~/q'",
        "x=~nosuchuser9/a"]


def test_the_readme_imagefolder_example_runs_with_a_tilde(tmp_path):
    """README: `vbench dataset=imagefolder dataset.root=~/photos`, as a user types it (bash
    leaves the ~ after = alone)."""
    home = tmp_path / "home"
    write_imagefolder(home / "photos", splits=("train", "test"), classes=("cat", "dog"),
                      per_class=6)
    done = vbench("dataset=imagefolder", "dataset.root=~/photos", *FAST,
                  "hydra.run.dir=run", cwd=tmp_path, env={"HOME": str(home)})
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["config"]["dataset"]["root"] == str(home / "photos")
    # vbench-eval's overrides alike
    evaluated = vbench("run", "dataset=imagefolder", "dataset.root=~/photos",
                       "dataset.image_size=8", program=VBENCH.with_name("vbench-eval"),
                       cwd=tmp_path, env={"HOME": str(home)})
    assert evaluated.returncode == 0, evaluated.stderr
    assert (tmp_path / "run/eval").is_dir()


def test_a_tilde_in_a_yaml_root_is_the_home_directory(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from vbench.data.source import data_root

    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_root(OmegaConf.create({"root": "~/photos"})) == tmp_path / "photos"


# ---------------------------------------------------------------- a damaged image while streaming


def truncate_pixels(path: Path) -> None:
    """Keep the PNG header (Image.open still reads the mode and size), cut the pixel data."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("split,workers", [("train", 0), ("train", 1), ("test", 1)])
def test_a_damaged_image_while_streaming_is_one_line_naming_it(tmp_path, split, workers):
    """A damaged train image stops the run at its data stage (no run directory left); a
    damaged test image at the evaluation (metrics.json says failed, with the same line)."""
    root = tmp_path / "images"
    write_imagefolder(root, splits=("train", "test"), classes=("cat", "dog"), per_class=6)
    bad = root / split / "dog/3.png"
    truncate_pixels(bad)
    done = vbench("dataset=imagefolder", f"dataset.root={root}", "dataset.in_memory=false",
                  f"dataset.num_workers={workers}", *FAST, "hydra.run.dir=run", cwd=tmp_path)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("vbench: error: ") and str(bad) in done.stderr
    assert "fix it or remove it" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    run = tmp_path / "run"
    assert run.exists() == (split == "test")
    if run.exists():
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["status"] == "failed" and "\n" not in metrics["error"]
        assert str(bad) in metrics["error"]
        assert "Traceback" not in (run / "vbench.log").read_text()


def test_an_image_that_vanishes_while_streaming_is_one_line_naming_it(tmp_path):
    """Listed when the run started, gone when a worker reads it."""
    from helpers import make_cfg
    from vbench.data.imagefolder import read_imagefolder

    root = tmp_path / "images"
    write_imagefolder(root, classes=("cat", "dog"), per_class=4)
    cfg = make_cfg("dataset=imagefolder", f"dataset.root={root}", "dataset.in_memory=false",
                   "dataset.num_workers=1", "dataset.image_size=8")
    raw = read_imagefolder(cfg.dataset)
    gone = raw.train_x.paths[5]
    gone.unlink()
    with pytest.raises(VBenchError) as err:
        raw.train_x.decode()
    message = str(err.value)
    assert "\n" not in message and str(gone) in message and "is gone" in message
