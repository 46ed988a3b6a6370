"""The modern recipe: EMA of the weights, mixup/cutmix, RandAugment / TrivialAugmentWide and
random erasing on the device, timm weights at any image size; the maths of each, and each
option end to end on real-format fake CIFAR-10."""

import csv
import json
import math

import pytest
import torch
import torch.nn.functional as F

from helpers import make_cfg
from helpers.formats import write_cifar10
from vbench.commands.help import help_text
from vbench.core.files import load_torch
from vbench.data.augment import (
    OPS,
    SIGNED,
    apply_ops,
    auto_augment,
    build_augment,
    magnitudes,
    random_erasing,
)
from vbench.models import InputSpec, build_model
from vbench.training import run as run_module
from vbench.training.ema import WeightsEma
from vbench.training.mix import Mix, cutmix_boxes
from vbench.training.run import run


def generator(seed=0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n=32, channels=3, size=32, seed=0) -> torch.Tensor:
    """Smooth uint8 images (noise alone would make most ops look alike)."""
    g = generator(seed)
    coarse = torch.rand(n, channels, 4, 4, generator=g)
    return (F.interpolate(coarse, size=size, mode="bilinear") * 255).to(torch.uint8)


# ----- mixup / cutmix -------------------------------------------------------------------------


def test_mixed_targets_sum_to_one_and_weigh_what_each_image_holds():
    n, h, w = 256, 16, 16
    x, y = torch.randn(n, 3, h, w), torch.randint(10, (n,), generator=generator(1))
    mixed, target = Mix(10, mixup=0.8, cutmix=1.0, switch_prob=0.5)(x, y, generator(2))
    assert mixed.shape == x.shape and target.shape == (n, 10)
    torch.testing.assert_close(target.sum(1), torch.ones(n))
    partner, kinds, lams = x.flip(0), set(), []
    for i in torch.nonzero(y != y.flip(0)).flatten().tolist():
        lam = target[i, y[i]].item()  # the image's own share
        assert target[i, y.flip(0)[i]].item() == pytest.approx(1 - lam, abs=1e-6)
        pasted = (mixed[i] == partner[i]).all(0) & (mixed[i] != x[i]).all(0)
        kept = (mixed[i] == x[i]).all(0)
        if (pasted | kept).all():  # cutmix: every pixel is its own or the partner's
            kinds.add("cutmix")
            assert pasted.sum().item() / (h * w) == pytest.approx(1 - lam, abs=1e-6)
        else:  # mixup: the lambda-weighted blend
            kinds.add("mixup")
            torch.testing.assert_close(mixed[i], lam * x[i] + (1 - lam) * partner[i])
        lams.append(lam)
    assert kinds == {"mixup", "cutmix"}
    assert len({round(v, 4) for v in lams}) > len(lams) // 2  # one lambda per image


def test_cutmix_boxes_have_the_drawn_area():
    h, w = 32, 32
    lam = torch.rand(2000, generator=generator(3))
    top, bottom, left, right = cutmix_boxes(lam, h, w, generator(4))
    assert ((0 <= top) & (top <= bottom) & (bottom <= h)
            & (0 <= left) & (left <= right) & (right <= w)).all()
    # torchvision's box: sides 2 * int(0.5 * sqrt(1 - lam) * side), centred, cut at the border
    side = (1 - lam).sqrt()
    unclipped = (bottom - top == 2 * (0.5 * side * h).long()) & (
        right - left == 2 * (0.5 * side * w).long())
    assert unclipped.float().mean() > 0.1  # big boxes are mostly cut by the border
    area = ((bottom - top) * (right - left)).float() / (h * w)
    # an unclipped box has the drawn area 1 - lam, up to the whole pixels of its sides
    assert ((area - (1 - lam)).abs() <= 2 * side * (2 / h) + 4 / (h * w))[unclipped].all()


def test_mixed_loss_with_label_smoothing_is_timms():
    from timm.data.mixup import mixup_target
    from timm.loss import SoftTargetCrossEntropy

    x, y = torch.randn(64, 3, 8, 8), torch.randint(10, (64,), generator=generator(5))
    _, target = Mix(10, mixup=0.8, cutmix=1.0)(x, y, generator(6))
    lam = target.gather(1, y.view(-1, 1))  # the image's own share (its partner's class aside)
    lam = torch.where(y.view(-1, 1) == y.flip(0).view(-1, 1), torch.ones_like(lam), lam)
    logits = torch.randn(64, 10, generator=generator(7))
    ours = F.cross_entropy(logits, target, label_smoothing=0.1)
    timms = SoftTargetCrossEntropy()(logits, mixup_target(y, 10, lam, smoothing=0.1))
    torch.testing.assert_close(ours, timms)


def test_mixing_is_seeded_and_prob_zero_mixes_nothing():
    x, y = torch.randn(32, 3, 8, 8), torch.randint(10, (32,), generator=generator(8))
    mix = Mix(10, mixup=0.2, cutmix=1.0)
    a, b = mix(x, y, generator(9)), mix(x, y, generator(9))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    same, target = Mix(10, mixup=0.2, cutmix=1.0, prob=0.0)(x, y, generator(9))
    assert torch.equal(same, x) and torch.equal(target, F.one_hot(y, 10).float())


# ----- EMA ------------------------------------------------------------------------------------


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_equals_the_closed_form_average(warmup):
    model = torch.nn.Linear(1, 1, bias=False)
    values = [0.5, -1.0, 2.0, 3.0, 0.0, 1.5, -0.5, 4.0]
    decay, ema = 0.9, WeightsEma(model, 0.9, warmup)
    for v in values:
        with torch.no_grad():
            model.weight.fill_(v)
        ema.update()

    def d(t):  # the decay of update t (1-based): timm's get_decay(step=t)
        if t == 1:
            return 0.0  # the first update copies
        return min(1 - (1 + (t - 1)) ** (-2 / 3), decay) if warmup else decay

    # e_T = sum_t w_t (1 - d_t) prod_{s > t} d_s
    expected = sum(w * (1 - d(t)) * math.prod(d(s) for s in range(t + 1, len(values) + 1))
                   for t, w in enumerate(values, 1))
    assert ema.module.weight.item() == pytest.approx(expected, rel=1e-5)
    assert ema.updates == len(values)
    restored = WeightsEma(torch.nn.Linear(1, 1, bias=False), decay, warmup)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == ema.updates and torch.equal(restored.module.weight,
                                                           ema.module.weight)


# ----- RandAugment / TrivialAugmentWide / random erasing --------------------------------------


@pytest.mark.parametrize("policy", ["randaugment", "trivialaugment"])
def test_every_op_gives_what_torchvision_gives_that_image(policy):
    """Every op at bins 0, 9 and 30, both signs, on RGB and grey images: pixel for pixel what
    torchvision's policy does to that image with that op and magnitude."""
    from torchvision.transforms.v2 import RandAugment, TrivialAugmentWide

    reference = RandAugment() if policy == "randaugment" else TrivialAugmentWide()
    table = magnitudes(policy, 32, 32)
    cases = [(k, float(table[k, b]) * sign) for k, op in enumerate(OPS) for b in (0, 9, 30)
             for sign in ((1, -1) if op in SIGNED else (1,))]
    for batch in (torch.cat([images(3), images(1, 1).expand(-1, 3, -1, -1)]),
                  images(2, 1, seed=1)):
        x = batch.repeat(len(cases), 1, 1, 1)  # every image under every case, in one batch
        op = torch.tensor([k for k, _ in cases]).repeat_interleave(len(batch))
        m = torch.tensor([m for _, m in cases]).repeat_interleave(len(batch))
        got = apply_ops(x, op, m)
        for i, (image, k, magnitude) in enumerate(zip(x, op.tolist(), m.tolist())):
            expected = reference._apply_image_or_video_transform(
                image, OPS[k], magnitude, interpolation=reference.interpolation,
                fill=reference._fill)
            assert torch.equal(got[i], expected), (OPS[k], magnitude)


def test_ops_give_the_same_images_over_the_whole_batch_or_per_op():
    """The accelerator's path (every family over the whole batch, no sync) and the CPU's (each
    family on the images that picked it) agree image for image."""
    x = torch.cat([images(200), images(56, 1).expand(-1, 3, -1, -1)])
    op = torch.randint(len(OPS), (256,), generator=generator(10))
    m = magnitudes("trivialaugment", 32, 32)[op, torch.randint(31, (256,), generator=generator(11))]
    m = torch.where(torch.rand(256, generator=generator(12)) < 0.5, -m, m)
    assert torch.equal(apply_ops(x, op, m, gather=True), apply_ops(x, op, m, gather=False))


@pytest.mark.parametrize("options", [
    {"policy": "randaugment"}, {"policy": "trivialaugment"}, {"erasing": 1.0},
    {"kind": "flip_crop", "policy": "trivialaugment", "erasing": 0.5},
    {"kind": "rotate", "policy": "randaugment"},
], ids=["randaugment", "trivialaugment", "erasing", "all", "rotate_randaugment"])
def test_augment_is_uint8_per_image_and_seeded(options):
    augment = build_augment(options.pop("kind", "none"), mean=(0.5, 0.4, 0.3),
                            std=(0.2, 0.2, 0.2), **options)
    x = images(1).expand(64, -1, -1, -1).contiguous()  # one image, 64 times
    out = augment(x, generator(0))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    distinct = {out[i].numpy().tobytes() for i in range(64)}
    assert len(distinct) > 16  # each image its own draws, not one per batch
    assert torch.equal(out, augment(x, generator(0)))
    assert not torch.equal(out, augment(x, generator(1)))


def test_randaugment_applies_its_ops_in_rounds():
    x = images(256)
    one = auto_augment(x, "randaugment", generator(2), ops=1)
    two = auto_augment(x, "randaugment", generator(2), ops=2)
    def unchanged(out):
        return (out == x).all(dim=(1, 2, 3)).float().mean()

    # Identity is 1 of 14 ops (and a few ops leave some images as they were)
    assert unchanged(two) < unchanged(one) < 0.3


@pytest.mark.parametrize("gather", [True, False], ids=["cpu_path", "accelerator_path"])
def test_random_erasing_boxes_cover_2_to_33_percent(gather):
    x = torch.full((500, 3, 32, 32), 7, dtype=torch.uint8)
    out = random_erasing(x, 0.5, (0.5,) * 3, (0.3,) * 3, generator(3), gather=gather)
    assert out.dtype == torch.uint8 and torch.equal(out, random_erasing(
        x, 0.5, (0.5,) * 3, (0.3,) * 3, generator(3), gather=gather))
    changed = (out != x).any(1)  # (N, H, W): noise is never 7 everywhere in a box
    erased = changed.any(dim=(1, 2))
    assert 0.4 < erased.float().mean() < 0.6
    for mask in changed[erased]:
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert 0.015 * 1024 <= box <= 1024 / 3 + 40  # the rounded sides of [0.02, 1/3]


# ----- timm weights at another image size ------------------------------------------------------


def test_timm_vit_weights_load_at_another_image_size_offline(tmp_path, monkeypatch):
    """A tiny timm ViT's 'pretrained' file (160 px, 1000 classes) in the Hugging Face cache,
    loaded for 32 px and 10 classes: timm's checkpoint filter resamples the position
    embeddings; nothing is downloaded."""
    import huggingface_hub
    import timm
    from safetensors.torch import save_file
    from timm.models import _builder
    from timm.models.vision_transformer import checkpoint_filter_fn

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    for name in ("load_state_dict_from_hf", "load_state_dict_from_url", "download_cached_file"):
        monkeypatch.setattr(_builder, name, no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    torch.manual_seed(0)
    file = timm.create_model("test_vit").state_dict()
    assert file["pos_embed"].shape == (1, 1 + 10 * 10, 64)  # 160 px, patch 16
    repo = tmp_path / "models--timm--test_vit.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs/main").write_text("abc123")
    (repo / "snapshots/abc123").mkdir(parents=True)
    save_file(file, repo / "snapshots/abc123/model.safetensors")

    torch.manual_seed(1)
    model = build_model(make_cfg("model=timm", "model.name=test_vit",
                                 "model.pretrained=true").model, InputSpec(3, 32, 10))
    state = model.state_dict()
    assert state["pos_embed"].shape == (1, 1 + 2 * 2, 64)  # built for the data's 32 px
    filtered = checkpoint_filter_fn(dict(file), model)  # what timm's loader makes of the file
    torch.testing.assert_close(state["pos_embed"], filtered["pos_embed"])
    for key, value in file.items():
        if key != "pos_embed" and not key.startswith("head."):
            assert torch.equal(state[key], value), key
    assert model.head.out_features == 10
    assert "state_dict" not in model.pretrained_cfg  # no second copy kept alive
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)

    # a plain file (model.weights) at yet another size, through the same loader
    path = tmp_path / "vit.safetensors"
    save_file(file, path)
    other = build_model(make_cfg("model=timm", "model.name=test_vit", f"model.weights={path}",
                                 "model.input_size=48").model, InputSpec(3, 32, 10))
    assert other.pos_embed.shape == (1, 1 + 3 * 3, 64)


def test_timm_weights_of_another_model_are_refused(tmp_path):
    import timm

    from vbench.core.errors import VBenchError

    path = tmp_path / "other.pt"
    torch.save(timm.create_model("test_resnet").state_dict(), path)
    with pytest.raises(VBenchError, match=f"weights file {path} does not fit this model: "):
        build_model(make_cfg("model=timm", "model.name=test_vit", f"model.weights={path}").model,
                    InputSpec(3, 32, 10))


# ----- schema and --help ------------------------------------------------------------------------


def test_help_lists_the_new_keys():
    text = help_text(make_cfg(), {})
    for key, doc in [("trainer.ema=null", "EMA of the weights"),
                     ("trainer.mixup=0.0", "mixup alpha"), ("trainer.cutmix=0.0", "cutmix alpha"),
                     ("trainer.mixup_prob=1.0", "share of the images mixed"),
                     ("trainer.mixup_switch_prob=0.5", "cutmix instead of"),
                     ("trainer.ema_warmup=true", "ModelEmaV3"),
                     ("dataset.auto_augment=none", "randaugment, trivialaugment"),
                     ("dataset.randaugment_ops=2", "ops applied"),
                     ("dataset.randaugment_magnitude=9", "strength"),
                     ("dataset.random_erasing=0.0", "random box")]:
        line = next((line for line in text.splitlines() if key in line), None)
        assert line is not None and doc in line, key


# ----- end to end on CIFAR-10 files ---------------------------------------------------------


@pytest.fixture
def cifar(tmp_path):
    write_cifar10(tmp_path / "data")
    return ["dataset=cifar10", f"dataset.root={tmp_path / 'data'}", "dataset.val_size=50",
            "model=cnn", "model.width=8", "trainer.batch_size=50", "eval.plots=[]"]


OPTIONS = {  # option -> (overrides, epochs)
    "ema": (["trainer.ema=0.5", "trainer.monitor=ema_val_loss"], 3),
    "mixup": (["trainer.mixup=0.2"], 1),
    "cutmix": (["trainer.cutmix=1.0", "trainer.label_smoothing=0.1"], 1),
    "randaugment": (["dataset.auto_augment=randaugment"], 1),
    "trivialaugment": (["dataset.augment=flip_crop", "dataset.auto_augment=trivialaugment"], 1),
    "random_erasing": (["dataset.random_erasing=0.5"], 1),
    "modern": (["regularization=modern"], 2),
}


@pytest.mark.parametrize("option", [pytest.param(o, marks=pytest.mark.slow)
                                    if o in ("ema", "modern") else o for o in OPTIONS])
def test_each_option_runs_end_to_end(run_vbench, cifar, option):
    overrides, epochs = OPTIONS[option]
    metrics, run_dir = run_vbench(*cifar, *overrides, f"trainer.epochs={epochs}")
    assert metrics["status"] == "completed"
    with open(run_dir / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == epochs and all(0 <= float(r["train_acc"]) <= 1 for r in rows)
    ema = option in ("ema", "modern")
    assert ("ema_val_acc" in rows[0]) == ema == ("ema" in metrics)
    if not ema:
        return
    assert set(metrics["ema"]) == {"decay", "best", "final"}
    assert set(metrics["ema"]["final"]) == {"val", "test"}
    best = load_torch(run_dir / "checkpoints/best.pt")
    assert set(best["model_ema"]) == set(best["model"])
    steps = epochs * math.ceil(metrics["sizes"]["train"] / 50)  # one update per optimizer step
    assert load_torch(run_dir / "checkpoints/last.pt")["ema"]["updates"] == steps
    if option == "ema":  # the monitor watches the EMA: the best epoch is the EMA's best
        ema_losses = [float(r["ema_val_loss"]) for r in rows]
        assert metrics["best_epoch"] == 1 + ema_losses.index(min(ema_losses))
        assert metrics["ema"]["best"]["val"]["loss"] == pytest.approx(min(ema_losses), rel=1e-5)


@pytest.mark.slow
def test_ema_and_mixing_resume_to_the_uninterrupted_numbers(run_vbench, monkeypatch):
    """Interrupted after epoch 1 of 2 and resumed: the EMA's average and update count, and
    the generator the mixing and augmentation draw from, continue as if never stopped."""
    recipe = ["trainer.epochs=2", "trainer.ema=0.8", "trainer.mixup=0.4", "trainer.cutmix=1.0",
              "dataset.random_erasing=0.3", "dataset.subset_per_class=30"]
    whole, whole_dir = run_vbench(*recipe, name="whole")

    def stop(point):
        if point == "epoch:1":
            raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "pause_at", stop)
    with pytest.raises(KeyboardInterrupt):
        run(make_cfg(*recipe), whole_dir.parent / "stopped")
    monkeypatch.undo()
    resumed, stopped_dir = run_vbench(*recipe, name="stopped")
    for key in ("status", "best_epoch", "best", "final", "ema", "per_class_accuracy"):
        assert resumed[key] == whole[key], key

    def history(run_dir):
        with open(run_dir / "history.csv") as f:
            return [{k: v for k, v in r.items() if k != "epoch_s"} for r in csv.DictReader(f)]

    assert history(stopped_dir) == history(whole_dir)


def test_ema_on_a_frozen_backbone_trains_the_cached_head(run_vbench):
    metrics, run_dir = run_vbench("dataset=fake", "dataset.image_size=32",
                                  "dataset.train_size=200", "dataset.test_size=50",
                                  "model=timm", "model.name=test_resnet", "freeze=backbone",
                                  "trainer.ema=0.9", "trainer.epochs=1", "eval.plots=[]")
    assert metrics["status"] == "completed" and metrics["ema"]["final"]["test"] is not None
    best = load_torch(run_dir / "checkpoints/best.pt")
    frozen = [k for k in best["model"] if not k.startswith("fc.")]
    assert all(torch.equal(best["model"][k], best["model_ema"][k]) for k in frozen
               if best["model"][k].is_floating_point())  # a frozen weight's average is itself
    assert json.loads((run_dir / "metrics.json").read_text())["ema"] == metrics["ema"]
