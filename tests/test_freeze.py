"""Freeze policies, counted in parameters and checked against one real optimizer step, and the
feature cache of a frozen backbone."""

import pytest
import torch
import torch.nn.functional as F

from helpers import make_cfg
from vbench.core.files import load_torch
from vbench.models import InputSpec, build_model
from vbench.models.freeze import apply_freeze, head_name, stem_names
from vbench.training.loop import keep_frozen_in_eval

SPEC = InputSpec(in_channels=3, image_size=16, num_classes=10)


def model_for(option: str):
    cfg = make_cfg(f"model={option}").model
    if "input_size" in cfg:
        cfg.input_size = None if option != "vit_small" else 224
    torch.manual_seed(0)
    return build_model(cfg, SPEC)


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("option,stem,head", [
    ("resnet18", ["conv1", "bn1"], "fc"),  # seed 004's conv1/bn1
    ("cnn", ["features.0", "features.1"], "classifier"),
    ("mlp", ["1", "2"], "7"),
    ("resmlp", ["input_proj.1", "input_proj.2"], "head"),
    ("mobilenet_v2", ["features.0.0", "features.0.1"], "classifier"),
    ("vgg16", ["features.0"], "classifier"),  # seed 002 trains VGG's whole classifier
    ("squeezenet", ["features.0"], "classifier"),
    ("vit_small", ["patch_embed"], "head"),
])
def test_stem_and_head_of_each_family(option, stem, head):
    model = model_for(option)
    assert stem_names(model) == stem and head_name(model) == head


def expected_trainable(model, policy: str, modules: list[str]) -> int:
    frozen = {"none": [], "stem": ["conv1", "bn1"], "layers": modules,
              "backbone": [n for n, _ in model.named_children() if n != "fc"]}[policy]
    return count(model) - sum(count(model.get_submodule(n)) for n in frozen)


@pytest.mark.parametrize("policy", ["none", "stem", "layers", "backbone"])
def test_policy_freezes_exactly_its_parameters_and_they_do_not_move(policy):
    model = model_for("resnet18")
    modules = ["layer1", "layer2"]
    apply_freeze(model, make_cfg(f"freeze={policy}", f"freeze.modules=[{','.join(modules)}]")
                 .freeze)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == expected_trainable(model, policy, modules)
    if policy == "backbone":
        assert trainable == 512 * 10 + 10  # the linear probe of the issue: 5130

    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    keep_frozen_in_eval(model)
    F.cross_entropy(model(torch.randn(8, 3, 16, 16)), torch.arange(8)).backward()
    optimizer.step()
    for name, value in model.state_dict().items():
        module = name.rsplit(".", 1)[0]
        owner_frozen = not any(p.requires_grad for p in model.get_submodule(module).parameters())
        if owner_frozen:  # weights and BatchNorm running statistics alike
            assert torch.equal(value, before[name]), name
    assert not torch.equal(model.fc.weight, before["fc.weight"])


def test_freeze_policy_choices_are_listed():
    from vbench.core.errors import VBenchError

    cfg = make_cfg("freeze.policy=head").freeze
    with pytest.raises(VBenchError, match="freeze.policy='head'.*none, stem, layers, backbone"):
        apply_freeze(model_for("cnn"), cfg)


PROBE = ["model=resnet18", "model.input_size=null", "freeze=backbone", "dataset=fake",
         "dataset.image_size=16", "dataset.train_size=200", "dataset.test_size=40",
         "trainer.epochs=2", "optimizer.lr=0.01"]


@pytest.mark.slow
def test_frozen_backbone_trains_through_the_cache_with_the_uncached_numbers(run_vbench,
                                                                             monkeypatch):
    import vbench.training.run

    calls = []
    real = vbench.training.run.cache_features
    monkeypatch.setattr(vbench.training.run, "cache_features",
                        lambda *a: calls.append(1) or real(*a))
    cached, run_dir = run_vbench(*PROBE, name="cached")
    assert calls == [1]
    uncached, _ = run_vbench(*PROBE, "freeze.cache=false", name="uncached")
    assert calls == [1]
    assert cached["params"] == uncached["params"] and cached["params"]["trainable"] == 5130
    for ckpt in ("best", "final"):
        for split in ("val", "test"):
            assert cached[ckpt][split] == pytest.approx(uncached[ckpt][split], abs=1e-4)

    # best.pt is the full model's state_dict and scores what metrics.json says.
    from vbench.data import load_data
    from vbench.evaluation.forward import predict
    from vbench.evaluation.metrics import classification_metrics

    cfg = make_cfg(*PROBE)
    data = load_data(cfg.dataset, torch.device("cpu"))
    model = model_for("resnet18")
    model.load_state_dict(load_torch(run_dir / "checkpoints/best.pt")["model"])
    again = classification_metrics(predict(model, data.test, 256, None), data.test.y)
    assert again == pytest.approx(cached["best"]["test"], abs=1e-6)


def test_cache_only_without_augmentation_and_only_for_a_frozen_backbone():
    from vbench.core.schema import typed
    from vbench.training.features import uses_feature_cache

    def caches(*overrides):
        cfg = typed(make_cfg(*overrides))
        return uses_feature_cache(cfg.freeze, cfg.dataset, cfg.trainer)

    assert caches("freeze=backbone")
    assert not caches("freeze=backbone", "dataset.augment=flip_crop")
    assert caches("freeze=backbone", "dataset.augment=none")
    assert not caches("freeze=backbone", "freeze.cache=false")
    assert not caches("freeze=layers")
