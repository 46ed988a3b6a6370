"""The model zoo over the registry: every option of conf/model builds and trains a step; the
seed architectures have the seeds' sizes; library weights load from the offline caches."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from helpers import make_cfg
from vbench.core.errors import VBenchError
from vbench.models import InputSpec, build_model
from vbench.models.sklearn import SKLEARN_ARCHS
from vbench.training.run import run

CONF = Path(__file__).parents[1] / "src/vbench/conf/model"
OPTIONS = sorted(p.stem for p in CONF.glob("*.yaml"))
NETWORKS = [o for o in OPTIONS if OmegaConf.load(CONF / f"{o}.yaml").arch not in SKLEARN_ARCHS]
# Library backbones train at a tiny size on CPU; ViT's patch grid is fixed at 224 px and AlexNet's
# first layers need at least 63 px.
INPUT_SIZE = {"vit_small": 224, "alexnet": 64}


def tiny_model(option: str, spec: InputSpec, *overrides: str):
    cfg = make_cfg(f"model={option}", *overrides).model
    if "input_size" in cfg:
        cfg.input_size = INPUT_SIZE.get(option, 32)
    torch.manual_seed(0)
    return build_model(cfg, spec)


def test_every_option_is_tested():
    assert {"mlp", "resmlp", "cnn", "simple_cnn", "convnet", "resnet18", "vgg16", "alexnet",
            "shufflenet_v2", "squeezenet", "mobilenet_v2", "efficientnet_b0", "vit_small",
            "torchvision", "timm", "logreg", "random_forest"} <= set(OPTIONS)
    assert set(OPTIONS) - set(NETWORKS) == set(SKLEARN_ARCHS)


# The big ones: VGG16/AlexNet have ~100M-parameter classifiers, ViT runs at 224 px.
SLOW = {"vgg16", "alexnet", "vit_small"}


@pytest.mark.parametrize("option", [pytest.param(o, marks=pytest.mark.slow) if o in SLOW else o
                                    for o in NETWORKS])
def test_every_network_builds_and_trains_one_step(option):
    spec = InputSpec(in_channels=1, image_size=8, num_classes=5, mean=(0.3,), std=(0.2,))
    model = tiny_model(option, spec)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 4])
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    logits = model(x)
    assert logits.shape == (4, 5)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_seed_architectures_have_the_seeds_sizes():
    mnist, cifar = InputSpec(1, 28, 10), InputSpec(3, 32, 10)
    # Seed 002's SimpleCNN on MNIST: conv 5x5 32, 64; FC 3136 -> 1000 -> 10.
    assert n_params(build_model(make_cfg("model=simple_cnn").model, mnist)) == (
        (25 * 32 + 32) + (25 * 32 * 64 + 64) + (64 * 7 * 7 * 1000 + 1000) + (1000 * 10 + 10))
    # Seed 004's ConvNet on CIFAR-10: 12-24-48 conv + BatchNorm, FC 768 -> 64 -> 10.
    assert n_params(build_model(make_cfg("model=convnet").model, cifar)) == (
        (27 * 12 + 12 + 24) + (9 * 12 * 24 + 24 + 48) + (9 * 24 * 48 + 48 + 96)
        + (768 * 64 + 64) + (64 * 10 + 10))
    # Seed 003's small CNN on CIFAR-10 (no BatchNorm), as cnn.yaml says.
    assert n_params(build_model(make_cfg("model=cnn", "model.batchnorm=false").model,
                                cifar)) == 268_650
    # Seed 001's ResidualMLP(784, 128, 10, num_blocks=3).
    block = 2 * (128 * 128 + 128) + 2 * 256
    assert n_params(build_model(make_cfg("model=resmlp").model, mnist)) == (
        784 * 128 + 128 + 256 + 3 * block + 128 * 10 + 10)


def test_resmlp_blocks_are_residual():
    model = build_model(make_cfg("model=resmlp", "model.blocks=1").model, InputSpec(1, 8, 3))
    block = model.blocks[0].eval()
    for p in block.block.parameters():
        torch.nn.init.zeros_(p)  # the block's branch outputs 0: only the skip is left
    x = torch.randn(5, 128)
    assert torch.equal(block(x), torch.relu(x))


def test_library_head_is_replaced_and_grey_input_is_adapted():
    model = tiny_model("resnet18", InputSpec(1, 16, 7))
    assert model.fc.out_features == 7 and model.conv1.in_channels == 3
    seen = []
    model.conv1.register_forward_hook(lambda m, args, out: seen.append(args[0].shape))
    model.eval()(torch.randn(2, 1, 16, 16))
    assert seen == [(2, 3, 32, 32)]  # grey repeated to RGB, resized to input_size on the fly
    assert set(model.state_dict()) == set(tiny_model("resnet18", InputSpec(3, 32, 7))
                                          .state_dict())  # the adapter adds no keys


def test_pretrained_inputs_are_renormalized_to_the_weights_statistics():
    from vbench.models.zoo import InputAdapter

    data_mean, data_std = (0.2, 0.4, 0.6), (0.1, 0.2, 0.3)
    imagenet = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    adapter = InputAdapter(InputSpec(3, 8, 10, data_mean, data_std), None, imagenet)
    raw = torch.rand(2, 3, 8, 8)  # pixels in [0, 1]
    as_loaded = (raw - torch.tensor(data_mean).view(1, 3, 1, 1)) / torch.tensor(
        data_std).view(1, 3, 1, 1)
    expected = (raw - torch.tensor(imagenet[0]).view(1, 3, 1, 1)) / torch.tensor(
        imagenet[1]).view(1, 3, 1, 1)
    torch.testing.assert_close(adapter(as_loaded), expected)


@pytest.mark.parametrize("option,name,close", [
    ("torchvision", "resnet19", "resnet18"),
    ("timm", "vit_smal_patch16_224", "vit_small_patch16_224"),
])
def test_unknown_library_name_lists_close_matches(option, name, close):
    with pytest.raises(VBenchError, match=f"model.name='{name}' is not a .*close matches: .*"
                                          f"{close}"):
        build_model(make_cfg(f"model={option}", f"model.name={name}").model, InputSpec(3, 32, 10))


def test_torchvision_pretrained_weights_load_from_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = tiny_model("resnet18", InputSpec(3, 32, 1000))  # the ImageNet-shaped file
    checkpoints = tmp_path / "hub/checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(reference.state_dict(), checkpoints / "resnet18-f37072fd.pth")

    torch.manual_seed(1)  # a different random init: equal outputs mean the file was loaded
    model = build_model(make_cfg("model=resnet18", "model.pretrained=true",
                                 "model.input_size=32").model, InputSpec(1, 16, 10))
    assert model.fc.out_features == 10  # the 1000-class head was replaced, not loaded
    reference.fc = model.fc
    x = torch.randn(3, 1, 16, 16)
    torch.testing.assert_close(model.eval()(x), reference.eval()(model.adapt_input(x)))
    # ImageNet statistics: (x * std_data + mean_data - imagenet_mean) / imagenet_std.
    assert model.adapt_input.scale.flatten()[0].item() == pytest.approx(1 / 0.229)


def test_timm_pretrained_weights_load_from_the_hugging_face_cache(tmp_path, monkeypatch):
    import huggingface_hub
    from safetensors.torch import save_file

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    reference = build_model(make_cfg("model=timm", "model.name=resnet10t").model,
                            InputSpec(3, 32, 1000))
    repo = tmp_path / "models--timm--resnet10t.c3_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs/main").write_text("abc123")
    (repo / "snapshots/abc123").mkdir(parents=True)
    save_file(reference.state_dict(), repo / "snapshots/abc123/model.safetensors")

    torch.manual_seed(1)
    model = build_model(make_cfg("model=timm", "model.name=resnet10t",
                                 "model.pretrained=true").model, InputSpec(3, 32, 4))
    reference.fc = model.fc
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model.eval()(x), reference.eval()(model.adapt_input(x)))


def test_weights_file_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(tiny_model("mobilenet_v2", InputSpec(3, 32, 10)).state_dict(), path)
    with pytest.raises(VBenchError, match=f"weights file {path} does not fit this model"):
        build_model(make_cfg("model=resnet18", f"model.weights={path}").model,
                    InputSpec(3, 32, 10))


@pytest.mark.parametrize("option,expected", [
    ("resnet18", "resnet18-f37072fd.pth"),
    ("vit_small", "model.safetensors of the hub repo timm/vit_small_patch16_224"),
])
def test_pretrained_offline_without_weights_is_one_clear_error(tmp_path, monkeypatch, option,
                                                                 expected):
    import huggingface_hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(VBenchError) as err:
        run(make_cfg(f"model={option}", "model.pretrained=true"), tmp_path / "run")
    message = str(err.value)
    assert expected in message and str(tmp_path) in message and "model.weights=" in message
    assert "\n" not in message
