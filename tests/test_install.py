"""The README's instructions and what follows them: .ci/run installs exactly what Install and
Test say, then runs the Test section's command; the trackers' commands read the same wherever
vbench writes them."""

import re
from pathlib import Path

import pytest

from helpers import make_cfg
from vbench.commands.help import help_text

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def commands(text: str) -> list[str]:
    """The command lines of a shell text: no comments, no blank lines, `&&` chains split."""
    lines = [line.split(" #", 1)[0].strip() for line in text.splitlines()]
    return [part.strip() for line in lines if line and not line.startswith("#")
            for part in line.split("&&")]


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, re.DOTALL)


def test_ci_installs_what_the_readme_says_and_runs_its_test_command():
    default, cpu = bash_blocks(section("Install"))
    (test,) = bash_blocks(section("Test"))
    ci = commands((ROOT / ".ci/run").read_text())
    ci = ci[ci.index("rm -rf .venv") + 1:]
    assert ci == commands(default) + commands(test)
    assert commands(test)[-1] == "pytest"
    # The CPU wheels are for users: PyTorch's index is out of CI's reach.
    assert commands(cpu) == [
        "python3 -m venv .venv", ". .venv/bin/activate",
        "pip3 install torch torchvision --index-url https://download.pytorch.org/whl/cpu",
        "pip install -e ."]
    assert "download.pytorch.org" not in (ROOT / ".ci/run").read_text()
    # The user environment's size and install time are stated.
    assert re.search(r"\d\.\d GB and took \d+ s to install", section("Install"))


def test_the_extras_the_readme_names_exist_and_dev_brings_every_integration():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    table = section("Install").split("| extra |", 1)[1].splitlines()[2:]
    named = {name for row in table if row.startswith("|")
             for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert named == {"tensorboard", "mlflow", "wandb", "trackers", "export", "joblib", "slurm",
                     "launchers", "optuna", "hf", "webdataset"} and named <= set(extras)
    assert extras["trackers"] == ["vbench[tensorboard,mlflow,wandb]"]
    assert extras["launchers"] == ["vbench[joblib,slurm]"]
    # dev brings every integration, itself or through a group extra (trackers, launchers)
    def brought(requirement: str) -> set[str]:
        inner = re.fullmatch(r"vbench\[([\w,]+)\]", requirement)
        names = set(inner.group(1).split(",")) if inner else set()
        return names | {n for name in names for req in extras.get(name, [])
                        for n in brought(req)}

    assert named <= set().union(*map(brought, extras["dev"]))


def test_the_trackers_commands_read_the_same_everywhere():
    places = {
        "README": README,
        "vbench --help": help_text(make_cfg(), {}),
        "conf/logger/tensorboard.yaml": (ROOT / "src/vbench/conf/logger/tensorboard.yaml")
        .read_text(),
        "loggers/tensorboard.py": (ROOT / "src/vbench/loggers/tensorboard.py").read_text(),
    }
    for where, text in places.items():
        # `outputs` holds outputs/runs and outputs/sweeps: single runs' tb/ and sweep jobs'.
        text = " ".join(text.split())  # --help wraps its lines
        assert set(re.findall(r"tensorboard --logdir ([\w/<>.-]+)", text)) == {"outputs"}, where
    uris = {where: set(re.findall(r"mlflow ui --backend-store-uri (\S+)", text))
            for where, text in (("README", README), ("conf/logger/mlflow.yaml", (
                ROOT / "src/vbench/conf/logger/mlflow.yaml").read_text()))}
    default = make_cfg("logger=mlflow").logger.mlflow.tracking_uri
    assert uris == {"README": {default}, "conf/logger/mlflow.yaml": {default}}
