"""The config arrives typed (issue 27): one conversion at the edge, the schema the only source
of a default, checkpoints with a format version, Hydra's private API in one adapter."""

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vbench
from helpers import make_cfg
from vbench.core import schema
from vbench.training import checkpoint
from vbench.training.run import run

SRC = Path(vbench.__file__).parent
VBENCH_EVAL = Path(sys.executable).with_name("vbench-eval")


def _sources():
    return {path.relative_to(SRC).as_posix(): path.read_text() for path in SRC.rglob("*.py")}


def test_typed_gives_the_schemas_dataclasses_with_their_defaults():
    root = schema.typed(make_cfg("model=cnn", "optimizer=sgd"))
    assert isinstance(root, schema.Root)
    assert isinstance(root.model, schema.CNN) and isinstance(root.optimizer, schema.SGD)
    assert isinstance(root.dataset, schema.Digits) and isinstance(root.trainer, schema.Trainer)
    assert root.model.kernel_size == schema.CNN().kernel_size == 3  # the schema's default
    with pytest.raises(schema.VBenchError, match=r"model.width=-3 is not valid"):
        schema.typed(make_cfg("model.width=-3"))


def test_no_config_default_is_restated_in_src():
    """No `.get(key, default)` on a config section and no OmegaConf.select with a default:
    the schema is the only source of a default (data/stream.py once fell back to "true" where
    the schema said "auto")."""
    config_names = r"(cfg|config|trainer|dataset|model_cfg|train_cfg|options|section|node)"
    found = []
    for name, text in _sources().items():
        for number, line in enumerate(text.splitlines(), 1):
            if (re.search(rf"\b{config_names}(\.\w+)*\.get\([^,()]+,", line)
                    or re.search(r"OmegaConf\.select\(.*default", line)):
                found.append(f"{name}:{number}: {line.strip()}")
    assert found == []


def test_the_root_config_stays_at_the_edge():
    """Only the commands, the run's entry (training/run.py; a stack of seeds' in
    training/stack.py), the schema and the two places that
    turn a whole config into its stored form or read a stored run back (training/checkpoint.py,
    inference/evaluate_run.py) name the root config; every other module gets sections."""
    allowed = {"core/schema.py", "training/run.py", "training/stack.py",
               "training/checkpoint.py", "inference/evaluate_run.py"}
    naming = sorted(name for name, text in _sources().items()
                    if re.search(r"\bRoot\b", text) and name not in allowed
                    and not name.startswith("commands/"))
    assert naming == []


def test_stored_config_is_typed_by_the_kind_its_keys_name():
    cfg = schema.typed(make_cfg("model=resmlp", "scheduler=step", "freeze=backbone"))
    stored = checkpoint.config_fingerprint(cfg)
    again = schema.from_stored(stored, "best.pt")
    assert isinstance(again.model, schema.ResMLP) and isinstance(again.scheduler, schema.Step)
    assert checkpoint.config_fingerprint(again) == stored
    stored["model"]["blocks"] = 0
    with pytest.raises(schema.VBenchError, match=r"^best.pt: .*model.blocks=0 is not valid"):
        schema.from_stored(stored, "best.pt")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("typed") / "run"
    run(make_cfg("debug=smoke", "model=cnn", "eval.plots=[]"), run_dir)
    return run_dir


def _rewrite(path: Path, change) -> None:
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


def _eval(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(VBENCH_EVAL), str(run_dir)], capture_output=True, text=True,
                          timeout=120, check=False)


def test_checkpoints_carry_their_format_and_refuse_another(trained, tmp_path):
    best = trained / "checkpoints/best.pt"
    assert torch.load(best, weights_only=True)["format"] == checkpoint.FORMAT
    for stored, said in ((checkpoint.FORMAT + 1, f"format {checkpoint.FORMAT + 1}"),
                         (None, "no format version")):
        copy = tmp_path / f"run-{stored}"
        subprocess.run(["cp", "-r", str(trained), str(copy)], check=True)

        def change(state, stored=stored):
            if stored is None:
                del state["format"]
            else:
                state["format"] = stored
        _rewrite(copy / "checkpoints/best.pt", change)
        done = _eval(copy)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert said in done.stderr and f"reads format {checkpoint.FORMAT}" in done.stderr


def test_eval_of_an_edited_stored_config_names_the_key(trained, tmp_path):
    """A run whose stored config was edited to an invalid value: one line naming the key."""
    copy = tmp_path / "edited"
    subprocess.run(["cp", "-r", str(trained), str(copy)], check=True)
    _rewrite(copy / "checkpoints/best.pt",
             lambda state: state["config"]["model"].update(width=-3))
    done = _eval(copy)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "model.width=-3 is not valid" in done.stderr and "best.pt" in done.stderr


def test_hydra_private_api_vbench_relies_on():
    """What commands/hydra_private.py takes from Hydra's private modules, as vbench uses it: a
    Hydra release that changes it fails here by name."""
    from omegaconf import OmegaConf

    from vbench.commands import hydra_private

    args = hydra_private.get_args_parser().parse_args(["-m", "--cfg", "job", "model=cnn"])
    for flag in ("multirun", "cfg", "help", "hydra_help", "info", "shell_completion",
                 "experimental_rerun", "config_path", "config_name", "overrides"):
        assert hasattr(args, flag), flag
    assert args.multirun and args.cfg == "job" and args.overrides == ["model=cnn"]
    callbacks = hydra_private.callbacks(OmegaConf.create({"hydra": {"callbacks": {}}}))
    assert callable(callbacks.on_run_start) and callable(callbacks.on_run_end)
    assert hydra_private.run_and_report(lambda: 7) == 7


def test_sections_are_dataclasses_all_the_way_down():
    root = schema.typed(make_cfg("logger=tensorboard"))
    assert dataclasses.is_dataclass(root.logger.tensorboard)
    assert root.logger.mlflow is None and root.logger.tensorboard.dir == "tb"
