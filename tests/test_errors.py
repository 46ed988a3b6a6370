"""Bad input is refused before any training, with a message naming key, value and choices."""

import json

import pytest
import torch

from helpers import make_cfg
from vbench.core.errors import VBenchError
from vbench.training.run import run

BAD = [
    ("optimizer.lr=-1", "optimizer.lr=-1", "> 0"),
    ("trainer.epochs=-1", "trainer.epochs=-1", ">= 1"),
    ("trainer.batch_size=0", "trainer.batch_size=0", ">= 1"),
    ("model.dropout=1.5", "model.dropout=1.5", "[0, 1)"),
    ("model.activation=nope", "model.activation='nope'", "relu, tanh, leaky_relu, gelu"),
    ("trainer.monitor=val_f2", "trainer.monitor='val_f2'", "val_loss, val_acc"),
    ("trainer.precision=64", "trainer.precision='64'", "auto, 32, bf16-mixed, 16-mixed"),
    ("trainer.device=tpu", "trainer.device='tpu'", "auto, cpu, cuda, cuda:N, mps"),
    ("dataset.val_size=0", "dataset.val_size=0", "a fraction in (0, 1) or a count"),
    ("model=cnn model.kernel_size=4", "model.kernel_size=4", "an odd integer"),
    ("model=resnet18 model.input_size=0", "model.input_size=0", "an integer >= 8"),
    ("freeze=layers", "freeze=layers needs freeze.modules", "freeze.modules="),
    ("freeze=layers freeze.modules=[nope]", "'nope' names no module", "0, 1, 2"),
]


@pytest.mark.parametrize("overrides,names,allowed", BAD, ids=[b[0] for b in BAD])
def test_bad_value_is_refused_before_training(tmp_path, overrides, names, allowed):
    with pytest.raises(VBenchError) as err:
        run(make_cfg(*overrides.split()), tmp_path)
    assert names in str(err.value) and allowed in str(err.value)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "history.csv").exists()
    # Refused by the schema: nothing written; refused later (freeze): metrics.json says failed.
    path = tmp_path / "metrics.json"
    if path.exists():
        metrics = json.loads(path.read_text())
        assert metrics["status"] == "failed" and names in metrics["error"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda(tmp_path):
    with pytest.raises(VBenchError, match="trainer.device=cuda but CUDA is not available"):
        run(make_cfg("trainer.device=cuda"), tmp_path)


def test_a_key_the_option_does_not_declare_is_refused(tmp_path):
    with pytest.raises(VBenchError, match=r"optimizer.bogus is not a key of optimizer here"):
        run(make_cfg("+optimizer.bogus=1"), tmp_path)


def test_registry_refuses_duplicates_and_lists_known_names():
    from vbench.models import build_model, register_model

    with pytest.raises(ValueError, match="registered twice"):
        register_model("mlp")(lambda cfg, spec: None)
    with pytest.raises(VBenchError, match="model.arch='nope'.*cnn, mlp"):
        build_model(make_cfg("model.arch=nope").model, None)
