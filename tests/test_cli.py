"""The installed `vbench` command, run as a user would, from a directory that is not the repo."""

import json

import pytest

from helpers import vbench


def test_cli_smoke_run_from_another_directory(tmp_path):
    result = vbench("debug=smoke", "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_run"] == 1
    assert (tmp_path / "run/.hydra/config.yaml").exists()
    assert (tmp_path / "run/.hydra/overrides.yaml").read_text().count("debug=smoke") == 1
    assert "best test" in result.stdout and "run directory:" in result.stdout.splitlines()[-1]
    assert "\r" not in result.stdout  # no progress-bar spam in logs


@pytest.mark.parametrize("override,expected", [
    ("optimizer.lr=-1", "vbench: error: optimizer.lr=-1.0 is not valid; it must be a number > 0"),
    ("model.activation=nope", ("vbench: error: model.activation='nope' is not valid; it must be "
                              "one of: relu")),
])
def test_cli_bad_value_one_line_exit_2(tmp_path, override, expected):
    result = vbench(override, "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(expected) and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "run").exists()  # refused before Hydra made the run directory


@pytest.mark.parametrize("group,choices", [("model", ["cnn", "mlp"]),
                                           ("dataset", ["digits", "fake"])])
def test_cli_unknown_group_option_lists_choices(tmp_path, group, choices):
    result = vbench(f"{group}=nope", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"vbench: error: {group}=nope is not an option")
    assert all(f" {c}," in result.stderr for c in choices)
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "outputs").exists()


def test_cli_help_lists_the_config_groups(tmp_path):
    result = vbench("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "vbench" in result.stdout
    for group in ("dataset", "model", "optimizer", "scheduler", "regularization", "freeze"):
        assert f"\n  {group}: " in result.stdout


def test_user_config_dir_adds_options(tmp_path):
    (tmp_path / "mine/model").mkdir(parents=True)
    (tmp_path / "mine/model/wide_mlp.yaml").write_text(
        "defaults: [/schema/model/mlp@_here_, _self_]\n"
        "arch: mlp\nname: wide_mlp\ndepth: 1\nwidth: 32\nactivation: gelu\n"
        "dropout: 0.0\nbatchnorm: false\n")
    result = vbench("--config-dir", "mine", "model=wide_mlp", "debug=smoke", "hydra.run.dir=run",
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert metrics["model"] == "wide_mlp"
    assert metrics["params"]["total"] == 64 * 32 + 32 + 32 * 10 + 10


def test_cli_sweep_gives_one_complete_run_dir_per_job(tmp_path):
    result = vbench("-m", "debug=smoke", "model=mlp", "model.depth=1,2",
                    "model.activation=relu,gelu", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = sorted(p.parent.name for p in (tmp_path / "sweep").glob("*/metrics.json"))
    assert jobs == ["0_debug=smoke,model.activation=relu,model.depth=1,model=mlp",
                    "1_debug=smoke,model.activation=gelu,model.depth=1,model=mlp",
                    "2_debug=smoke,model.activation=relu,model.depth=2,model=mlp",
                    "3_debug=smoke,model.activation=gelu,model.depth=2,model=mlp"]
    for job in jobs:
        metrics = json.loads((tmp_path / "sweep" / job / "metrics.json").read_text())
        assert metrics["status"] == "completed"
        assert (tmp_path / "sweep" / job / "checkpoints/best.pt").exists()
