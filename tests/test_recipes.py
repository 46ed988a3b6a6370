"""Optimizers, schedules, regularization and trainer switches: each option trains on digits
and does what it says."""

import csv
import itertools
from pathlib import Path

import pytest
import torch

from helpers import make_cfg
from vbench.core.files import load_torch
from vbench.core.schema import Optimizer, typed
from vbench.models import InputSpec, build_model
from vbench.training.optim import build_optimizer

CONF = Path(__file__).parents[1] / "src/vbench/conf"
QUICK = ["dataset.subset_per_class=30", "trainer.epochs=4"]


def lrs(run_dir) -> list[float]:
    with open(run_dir / "history.csv") as f:
        return [float(r["lr"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml")))
def test_every_optimizer_trains(run_vbench, name):
    lr = ["optimizer.lr=0.1"] if name == "sgd" else []  # 16 plain SGD steps need a bigger lr
    metrics, _ = run_vbench(f"optimizer={name}", *QUICK, *lr)
    assert metrics["status"] == "completed"
    assert metrics["best"]["test"]["accuracy"] > 0.5  # chance is 0.1


@pytest.mark.parametrize("name,check", [
    ("none", lambda lr: lr == [1e-3] * 4),
    ("step", lambda lr: lr == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4])),
    ("multistep", lambda lr: lr == pytest.approx([1e-3, 1e-4, 1e-4, 1e-5])),
    ("cosine", lambda lr: lr[0] == 1e-3 and all(a > b for a, b in itertools.pairwise(lr))),
    ("onecycle", lambda lr: lr[0] < lr[1] and lr[-1] < lr[1]),  # warms up, then anneals
    ("warmup_cosine", lambda lr: lr[0] < 1e-4 and lr[1] == pytest.approx(1e-3, rel=0.05)
     and lr[3] < lr[2]),
])
def test_every_scheduler_shapes_the_logged_lr(run_vbench, name, check):
    extra = {"step": ["scheduler.step_size=2"], "multistep": ["scheduler.milestones=[1,3]"],
             "warmup_cosine": ["scheduler.warmup_epochs=1"]}.get(name, [])
    metrics, run_dir = run_vbench(f"scheduler={name}", *QUICK, *extra)
    assert metrics["status"] == "completed"
    assert check(lrs(run_dir)), lrs(run_dir)


def test_no_decay_bias_norm_splits_parameter_groups():
    cfg = make_cfg("optimizer=adamw", "optimizer.no_decay_bias_norm=true")
    model = build_model(cfg.model, InputSpec(1, 8, 10))
    optimizer = build_optimizer(typed(cfg).optimizer, model)
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 1e-2 and plain["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decayed["params"]) and all(p.ndim == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


@pytest.mark.parametrize("option,model,optimizer,label_smoothing", [
    ("none", (0.0, False), ("adam", 0.0), 0.0),
    ("dropout", (0.3, False), ("adam", 0.0), 0.0),
    ("weight_decay", (0.0, False), ("adamw", 1e-2), 0.0),
    ("batchnorm", (0.0, True), ("adam", 0.0), 0.0),
    ("label_smoothing", (0.0, False), ("adam", 0.0), 0.1),
    ("all", (0.3, True), ("adamw", 1e-2), 0.0),
])
def test_regularization_options_set_seed_001s_keys(option, model, optimizer, label_smoothing):
    cfg = make_cfg(f"regularization={option}")
    assert (cfg.model.dropout, cfg.model.batchnorm) == model
    assert (cfg.optimizer.name, cfg.optimizer.weight_decay) == optimizer
    assert cfg.trainer.label_smoothing == label_smoothing


def test_explicit_overrides_beat_regularization():
    cfg = make_cfg("regularization=all", "model.dropout=0.1", "optimizer=sgd")
    assert cfg.model.dropout == 0.1 and cfg.model.batchnorm is True
    assert cfg.optimizer.name == "sgd" and cfg.optimizer.weight_decay == 1e-2


def test_label_smoothing_keeps_the_training_loss_up(run_vbench):
    def last_train_loss(run_dir) -> float:
        with open(run_dir / "history.csv") as f:
            return float(list(csv.DictReader(f))[-1]["train_loss"])

    _, plain_dir = run_vbench("trainer.epochs=6", name="plain")
    smooth, smooth_dir = run_vbench("trainer.epochs=6", "trainer.label_smoothing=0.1",
                                    name="smooth")
    # With eps=0.1 over 10 classes the smoothed loss cannot drop below ~0.5; the plain one does.
    assert last_train_loss(plain_dir) < 0.4 < last_train_loss(smooth_dir)
    assert smooth["best"]["test"]["accuracy"] > 0.9


def test_grad_clip_bounds_each_sgd_step(run_vbench):
    _, run_dir = run_vbench("optimizer=sgd", "scheduler=none", "trainer.grad_clip=1e-9",
                            "trainer.epochs=1")
    torch.manual_seed(0)  # the run's seed: the same initial weights
    initial = build_model(make_cfg().model, InputSpec(1, 8, 10))
    trained = load_torch(run_dir / "checkpoints/last.pt")["model"]
    steps = 21  # ceil(1294 / 64) SGD steps of at most lr * 1e-9 each
    for name, weight in initial.named_parameters():  # buffers (BatchNorm stats) move anyway
        assert (trained[name] - weight.detach()).abs().max() <= steps * 1e-2 * 1e-9 + 1e-7


def test_channels_last_gives_the_same_training(run_vbench):
    plain, _ = run_vbench("model=cnn", *QUICK, name="plain")
    fast, _ = run_vbench("model=cnn", *QUICK, "trainer.channels_last=true", name="cl")
    assert fast["final"]["test"]["accuracy"] == pytest.approx(
        plain["final"]["test"]["accuracy"], abs=0.03)


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="no CPU bf16")
def test_bf16_autocast_on_cpu_matches_float32(run_vbench):
    fp32, _ = run_vbench("model=cnn", *QUICK, name="fp32")
    bf16, _ = run_vbench("model=cnn", *QUICK, "trainer.precision=bf16-mixed", name="bf16")
    assert (fp32["precision"], bf16["precision"]) == ("float32", "bfloat16")
    assert bf16["final"]["test"]["accuracy"] == pytest.approx(
        fp32["final"]["test"]["accuracy"], abs=0.03)
    assert bf16["final"]["test"]["accuracy"] > 0.5


def test_deterministic_mode_runs_and_repeats(run_vbench):
    a, _ = run_vbench("model=cnn", *QUICK, "trainer.deterministic=true", name="a")
    b, _ = run_vbench("model=cnn", *QUICK, "trainer.deterministic=true", name="b")
    assert a["final"] == b["final"]
    torch.use_deterministic_algorithms(False)


def test_early_stopping_is_announced(run_vbench, capsys):
    run_vbench("trainer.epochs=10", "trainer.patience=1", "trainer.min_delta=1e9")
    assert "early stopping: val_loss has not improved for 1 epochs" in capsys.readouterr().out


def test_fused_optimizer_kernels_where_torch_has_them():
    """fused=True on CUDA (one kernel for every parameter); CPU keeps torch's default."""
    import torch

    from vbench.training.optim import _fused, build_optimizer

    model = torch.nn.Linear(4, 2)
    adam = Optimizer(name="adam", lr=1e-3)
    assert not build_optimizer(adam, model).defaults.get("fused")
    cuda_param = torch.nn.Parameter(torch.zeros(1))
    cuda_param.__class__ = type("OnCuda", (torch.nn.Parameter,), {"is_cuda": True})
    assert _fused(torch.optim.Adam, [{"params": [cuda_param]}]) == {"fused": True}
    assert _fused(torch.optim.RMSprop, [{"params": [cuda_param]}]) == {}
    # the fused kernel gives the default kernel's numbers (torch has it on CPU too)
    steps = []
    for fused in (False, True):
        torch.manual_seed(0)
        net = torch.nn.Linear(8, 3)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2, fused=fused)
        for _ in range(5):
            opt.zero_grad()
            net(torch.ones(4, 8)).square().sum().backward()
            opt.step()
        steps.append(net.weight.detach().clone())
    assert torch.allclose(*steps, atol=1e-6)



@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("recipe_keys", [[], ["trainer.mixup=0.2", "trainer.cutmix=1.0",
                                              "dataset.auto_augment=trivialaugment",
                                              "trainer.grad_clip=1.0"]])
def test_the_training_loop_never_waits_for_the_gpu(recipe_keys):
    """No device synchronisation inside an epoch's loop (the one .item() per epoch comes
    after it): the loop runs under sync debug mode "error", where a sync raises."""
    import torch

    from helpers import make_cfg
    from vbench.core.schema import typed
    from vbench.data import load_data
    from vbench.models import InputSpec, build_model
    from vbench.training.loop import epoch_sums
    from vbench.training.run import Run, _training

    cfg = typed(make_cfg("model=cnn", "trainer.device=cuda", *recipe_keys))
    run = Run(cfg.trainer, cfg.eval, labels=None, fingerprint=None, recipe=None, dir=None,
              loggers=None, device=torch.device("cuda"))
    run.data = load_data(cfg.dataset, run.device)
    model = build_model(cfg.model, InputSpec.of(run.data)).to(run.device)
    training = _training(cfg, run, model)
    generator = torch.Generator(device=run.device).manual_seed(0)
    epoch_sums(training.model, training.data.train, 64, training.recipe, generator)  # warm-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss_sum, correct, drawn = epoch_sums(training.model, training.data.train, 64,
                                              training.recipe, generator)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert 0 < drawn <= len(run.data.train) and 0 <= correct.item() <= drawn
    assert torch.isfinite(loss_sum).item()
