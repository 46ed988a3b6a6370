"""Seeds trained as one stacked model (hydra/launcher=stack, commands/stack.py).

The jobs of a sweep that differ only in trainer.seed train the same network on the same data.
A seed-size network's step is mostly Python and kernel launches, so N of them stacked into one
(`torch.func.stack_module_state` + `functional_call` under `vmap`) cost little more than one.
Each member is the run of its seed: its initial weights are built after
`torch.manual_seed(seed)` as a separate run builds them, its batches and augmentation come from
its own generator seeded the same way, and the optimizer's update is elementwise, so the
member's numbers are a separate run's to float tolerance (the stacked matmuls sum in another
order). Each member keeps its own early stopping, best and final checkpoints and divergence,
and writes the complete run directory a separate run writes (training/finish.py).

What cannot be stacked runs as ordinary jobs (`why_not_stacked` says why): anything whose
per-member result would not be a separate run's (dropout draws under vmap, mixup, EMA, gradient
clipping by the whole model's norm, accumulation, mixed precision, frozen layers, compile) or
that vmap cannot run (scikit-learn baselines, torchvision/timm networks, torchrun, streamed
data). An unfinished stack trains again from its first epoch: the rerun's numbers are an
uninterrupted stack's, since every draw is seeded.
"""

import contextlib
import copy
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from ..core.columns import ACCURACY, EPOCH, EPOCH_COLUMNS, LOSS, MONITORS, epoch_columns
from ..core.console import console, epoch_line, epoch_progress, log, log_only, run_log
from ..core.device import auto_precision, configure_determinism, resolve_device
from ..core.pause import pause_at
from ..core.rundir import HISTORY_FILE, exclusive, remove_stale_temps
from ..core.schema import Library, Root, Sklearn
from ..core.status import COMPLETED, DIVERGED, EARLY_STOPPED, FAILED, FINISHED, INTERRUPTED
from ..data import load_data
from ..evaluation.metrics import classification_metrics
from ..models import InputSpec, build_model, count_params
from ..reports.analysis import Trained, analyze, keep_initial
from . import checkpoint
from .finish import Outcome, finish, write_unfinished
from .loop import EarlyStopping
from .optim import build_optimizer, build_scheduler
from .resume import finished_metrics


class NotStackable(Exception):
    """Found once the members are built (a precision that is not float32, a model vmap
    cannot run): the launcher runs them as ordinary jobs instead."""


def why_not_stacked(cfg: Root) -> str | None:
    """Why a job of `cfg` is not trained in a stack, or None when it can be."""
    t, model = cfg.trainer, cfg.model
    reasons = [
        (isinstance(model, Sklearn), "a scikit-learn baseline has no torch training step"),
        (isinstance(model, Library),
         f"{model.arch} networks are not stacked (vmap cannot run every layer of them)"),
        (hasattr(model, "dropout") and model.dropout > 0,
         "dropout: its draws under vmap cannot be a separate run's"),
        (cfg.freeze.policy != "none", "frozen layers"),
        (t.ema is not None, "trainer.ema"),
        (bool(t.mixup or t.cutmix), "mixup/cutmix"),
        (t.grad_clip is not None, "trainer.grad_clip (one norm per member)"),
        (t.accumulate > 1, "trainer.accumulate"),
        (t.compile is not False, "trainer.compile"),
        (t.channels_last, "trainer.channels_last"),
        (t.precision not in ("auto", "32"), f"trainer.precision={t.precision}"),
        (cfg.optimizer.no_decay_bias_norm, "optimizer.no_decay_bias_norm"),
        (hasattr(cfg.dataset, "in_memory") and cfg.dataset.in_memory is False, "streamed data"),
    ]
    found = [why for applies, why in reasons if applies]
    return ", ".join(found) if found else None


@dataclass
class Member:
    """One seed of the stack: its config, its directory and what it has become."""

    cfg: Root
    dir: Path
    model: nn.Module  # its own module: its weights are copied in at checkpoints and the end
    generator: torch.Generator  # its batch order and augmentation, as a separate run's
    stopper: EarlyStopping
    history: list
    status: str = COMPLETED
    frozen: dict | None = None  # its weights and buffers since it stopped (no more updates)
    # best.pt's and last.pt's contents, kept here and written once when the stack ends: an
    # fsynced write per member per epoch cost more than the members' shared epoch (8 ms
    # each on CPU). A stack that does not finish trains again anyway (run_stack).
    best: dict | None = None
    last: dict | None = None


def run_stack(cfgs: list[Root], run_dirs: list[Path]) -> list[dict]:
    """Train the members (`cfgs`, equal but for trainer.seed) as one stacked model and write
    each member's run directory; returns each member's metrics.json. Raises NotStackable
    before any member's directory holds a result."""
    with contextlib.ExitStack() as held:
        for run_dir, cfg in zip(run_dirs, cfgs, strict=True):
            held.enter_context(exclusive(run_dir))
            held.enter_context(run_log(run_dir, cfg.trainer.log_every_s))
        done = [finished_metrics(c.trainer.resume, checkpoint.config_fingerprint(c), d)
                for c, d in zip(cfgs, run_dirs, strict=True)]
        if all(m is not None and m["status"] in FINISHED for m in done):
            console.print(f"already finished: {len(cfgs)} seeds", highlight=False)
            return done
        for run_dir in run_dirs:
            remove_stale_temps(run_dir)
        try:
            return _train(cfgs, [Path(d) for d in run_dirs])
        except NotStackable:
            raise  # nothing written: the launcher runs the members as ordinary jobs
        except KeyboardInterrupt:
            _unfinished(cfgs, run_dirs, INTERRUPTED, "interrupted by the user")
            raise
        except Exception as e:
            _unfinished(cfgs, run_dirs, FAILED, f"{type(e).__name__}: {e}")
            raise


def _unfinished(cfgs: list[Root], run_dirs: list[Path], status: str, error: str) -> None:
    """Each member's metrics.json says the stack did not finish (never `completed`)."""
    for cfg, run_dir in zip(cfgs, run_dirs, strict=True):
        write_unfinished(_labels(cfg), Path(run_dir), status, error)


def _labels(cfg: Root):
    from .run import _labels as labels

    return labels(cfg)


def _train(cfgs: list[Root], run_dirs: list[Path]) -> list[dict]:
    first = cfgs[0]
    device = resolve_device(first.trainer.device)
    configure_determinism(first.trainer.deterministic, device)
    data = load_data(first.dataset, device)  # one copy: the members' data are the same
    if not data.in_memory:
        raise NotStackable("streamed data")
    member = member_bytes(first, data)
    free = free_bytes(device)
    sizes = stack_sizes(len(cfgs), member, free)
    if len(sizes) > 1:
        console.print(f"the {len(cfgs)} seeds need about {_gb(member * len(cfgs))} stacked and "
                      f"{device} has {_gb(free)} free: they train as {len(sizes)} stacks of "
                      f"{'/'.join(map(str, sizes))}, one after another", highlight=False,
                      soft_wrap=True)
    results, start = [], 0
    for size in sizes:
        results += _train_stack(cfgs[start:start + size], run_dirs[start:start + size], data,
                                device)
        start += size
    return results


# What a member holds besides its activations, in copies of its weights: the stacked weights,
# their gradient, the optimizer's state (Adam's two moments), the member's own module.
WEIGHT_COPIES = 5
# The share of the device's free memory a stack plans to fill: the rest is the allocator's
# slack and what the estimate does not see (the val pass, the loss).
FILL = 0.9


def member_bytes(cfg: Root, data) -> int:
    """What one member of the stack holds on the device: its weights WEIGHT_COPIES times, and
    the larger of the outputs of its layers on one training batch, kept for the backward pass
    and matched by their gradients, and on one val batch. Layer outputs grow with the batch,
    so one image's forward pass on the CPU, scaled, counts them (a pass on the meta device
    costs a second and a half of imports)."""
    model = build_model(cfg.model, InputSpec.of(data)).eval()  # a throwaway, on the CPU
    outputs = []

    def count(module, inputs, output):
        if torch.is_tensor(output):
            outputs.append(output[0].numel() * output.element_size())

    for module in model.modules():
        if not list(module.children()):
            module.register_forward_hook(count)
    with torch.no_grad():
        model(data.train.inputs(data.train.uint8(slice(0, 1))).cpu())
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    train = min(cfg.trainer.batch_size, len(data.train))
    val = min(cfg.trainer.eval_batch_size, len(data.val))
    return WEIGHT_COPIES * weights + max(2 * train, val) * sum(outputs)


def free_bytes(device: torch.device) -> int:
    """The device's free memory: the GPU's, or the machine's available memory (which MPS
    shares; where /proc/meminfo is missing, as on macOS, the machine's whole memory)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            kib = {line.split(":")[0]: int(line.split()[1]) for line in f}
        return kib["MemAvailable"] * 1024
    except (OSError, KeyError, IndexError, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def stack_sizes(count: int, member: int, free: int) -> list[int]:
    """The stacks `count` members of `member` bytes each train in, given `free` bytes: one,
    or as few equal ones as fit; NotStackable when not even two members fit together."""
    fits = int(FILL * free) // max(member, 1)
    if fits >= count:
        return [count]
    if fits < 2:
        raise NotStackable(f"two members need about {_gb(2 * member)} and the device has "
                           f"{_gb(free)} free")
    stacks = -(-count // fits)
    size, extra = divmod(count, stacks)
    return [size + 1] * extra + [size] * (stacks - extra)


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _train_stack(cfgs: list[Root], run_dirs: list[Path], data, device) -> list[dict]:
    from .run import new_run

    first = cfgs[0]
    t = first.trainer
    members, runs = [], []
    for cfg, run_dir in zip(cfgs, run_dirs, strict=True):
        torch.manual_seed(cfg.trainer.seed)  # the member's initial weights: its run's
        model = build_model(cfg.model, InputSpec.of(data)).to(device)
        if t.precision == "auto" and auto_precision(device, count_params(model)["total"])[0]:
            raise NotStackable("trainer.precision=auto chose mixed precision for this model")
        run = new_run(cfg, run_dir, data, device)
        runs.append(run)
        generator = torch.Generator(device=data.train.x.device).manual_seed(cfg.trainer.seed)
        members.append(Member(cfg, run_dir, model, generator,
                              EarlyStopping(MONITORS[t.monitor], t.patience, t.min_delta), []))
    initial = [keep_initial(m.cfg.eval.plots, m.model) for m in members]
    stacked = _Stacked([m.model for m in members])
    stacked.check(data.val)  # a model vmap cannot run is found here, before any epoch
    optimizer = build_optimizer(first.optimizer, stacked.holder)
    steps = data.train.num_batches(t.batch_size, drop_single=True)
    scheduler, per_step = build_scheduler(first.scheduler, optimizer, t.epochs, steps)
    for run in runs:
        run.phases.lap("setup")
    title = (f"{first.model.name} on {first.dataset.name}: {len(cfgs)} seeds stacked "
             f"({', '.join(str(c.trainer.seed) for c in cfgs)}), {len(data.train)} train / "
             f"{len(data.val)} val images, {device}, up to {t.epochs} epochs; an epoch's line "
             f"is the mean of the seeds still training (each seed's own: its vbench.log)")
    start = time.perf_counter()
    with epoch_progress(t.epochs, title, steps) as report:
        for epoch in range(1, t.epochs + 1):
            active = [m for m in members if m.frozen is None]
            if not active:
                break
            _epoch(stacked, members, data, optimizer, scheduler if per_step else None, epoch,
                   report)
            if scheduler is not None and not per_step:
                scheduler.step()
            for s, member in enumerate(members):
                if member.frozen is None:
                    _after_epoch(stacked, s, member, optimizer, scheduler, epoch)
            pause_at(f"epoch:{epoch}")
    train_time = time.perf_counter() - start  # the stack's: every member records it
    for run in runs:
        run.phases.lap("training")
    results = []
    for s, (member, run) in enumerate(zip(members, runs, strict=True)):
        stacked.copy_into(s, member.model)
        if member.frozen is not None:
            member.model.load_state_dict(member.frozen)
        run.phases.restart()
        with log_only(member.dir):
            _write_checkpoints(member, run)
            results.append(_finish_member(member, run, train_time, initial[s]))
    return results


class _Stacked:
    """The members' weights and buffers stacked along a first dimension, and the one module
    whose forward `vmap` runs over them."""

    def __init__(self, models: list[nn.Module]):
        params, buffers = torch.func.stack_module_state(models)
        self.holder = nn.Module()  # the stacked weights, as the optimizer's parameters
        self.params = {}
        for i, (name, value) in enumerate(params.items()):
            parameter = nn.Parameter(value.detach().clone())
            self.holder.register_parameter(f"p{i}", parameter)
            self.params[name] = parameter
        self.buffers = buffers
        self.base = copy.deepcopy(models[0])

        def forward(p, b, x):
            return torch.func.functional_call(self.base, (p, b), (x,))

        self.train_forward = torch.vmap(forward, in_dims=(0, 0, 0))
        self.eval_forward = torch.vmap(forward, in_dims=(0, 0, None))

    def check(self, split) -> None:
        try:
            self.base.eval()
            with torch.no_grad():
                self.eval_forward(self.params, self.buffers, split.inputs(split.uint8(slice(0, 2))))
        except Exception as e:  # noqa: BLE001 - vmap's refusals come in many types
            raise NotStackable(f"vmap cannot run this model ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:120]})") from None

    def copy_into(self, s: int, model: nn.Module) -> None:
        with torch.no_grad():
            for name, value in model.named_parameters():
                value.copy_(self.params[name][s])
            for name, value in model.named_buffers():
                value.copy_(self.buffers[name][s])

    def state_of(self, s: int) -> dict:
        """Member s's weights and buffers, by the model's own names."""
        return {**{n: p[s].detach().clone() for n, p in self.params.items()},
                **{n: b[s].clone() for n, b in self.buffers.items()}}

    def restore(self, s: int, state: dict) -> None:
        with torch.no_grad():
            for name, value in state.items():
                (self.params if name in self.params else self.buffers)[name][s].copy_(value)


def _epoch(stacked: _Stacked, members: list[Member], data, optimizer, per_step_scheduler,
           epoch: int, report) -> None:
    """One pass over the train split for every member (each in its own order), then val: each
    active member's history.csv row."""
    first = members[0].cfg
    t = first.trainer
    started = time.perf_counter()
    lr = optimizer.param_groups[0]["lr"]
    count = len(members)
    loss_sum = torch.zeros(count, device=data.train.x.device)
    correct = torch.zeros(count, device=data.train.x.device, dtype=torch.long)
    drawn = data.train.drawn(t.batch_size, drop_single=True)
    stacked.base.train()
    stopped = [s for s, m in enumerate(members) if m.frozen is not None]
    for x, y in _stacked_batches(data, t.batch_size, [m.generator for m in members]):
        optimizer.zero_grad(set_to_none=True)
        logits = stacked.train_forward(stacked.params, stacked.buffers, x)
        # each member's mean loss over its batch, in one call
        losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none",
                                 label_smoothing=t.label_smoothing).view(count, -1).mean(1)
        losses.sum().backward()  # each member's gradient is its own loss's
        optimizer.step()
        if per_step_scheduler is not None:
            per_step_scheduler.step()
        for s in stopped:  # a stopped member stops changing
            stacked.restore(s, members[s].frozen)
        loss_sum += losses.detach() * y.shape[1]
        correct += (logits.argmax(2) == y).sum(1)
        report.batch(y.shape[1])
    train_loss = (loss_sum / drawn).tolist()
    train_acc = (correct.float() / drawn).tolist()
    val = _validate(stacked, data.val, t.eval_batch_size)
    seconds = time.perf_counter() - started
    rows = []
    for s, member in enumerate(members):
        if member.frozen is not None:
            continue
        values = (epoch, train_loss[s], train_acc[s], val[s][LOSS], val[s][ACCURACY], lr,
                  seconds)
        member.history.append(dict(zip(EPOCH_COLUMNS, values, strict=True)))
        rows.append(member.history[-1])
        with log_only(member.dir):  # each member's log: its own epoch line, as its run's
            log(epoch_line(rows[-1], t.monitor, t.epochs))
    with log_only(None):  # the screen: the mean of the members still training
        report({column: sum(row[column] for row in rows) / len(rows) if column != EPOCH
                else epoch for column in rows[0]})


def _stacked_batches(data, batch_size: int, generators: list[torch.Generator]):
    """Each member's training batches of one epoch, stacked: inputs (S, B, ...) and labels
    (S, B), member s's drawn from generators[s] as a separate run draws them (Split.batches).
    Without augmentation every member's batch is one gather from the stacked orders: S
    gathers per step cost the GPU S kernel launches each."""
    split = data.train
    if data.augment is not None:  # its draws are per member, from its generator
        streams = [split.batches(batch_size, g, data.augment, drop_single=True)
                   for g in generators]
        for batches in zip(*streams, strict=True):
            yield torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches])
        return
    orders = torch.stack([split.permutation(g) for g in generators])
    for start in range(0, split.drawn(batch_size, drop_single=True), batch_size):
        index = orders[:, start:start + batch_size]
        x = split.inputs(split.x[index.flatten()])
        yield x.view(*index.shape, *x.shape[1:]), split.y[index]


@torch.no_grad()
def _validate(stacked: _Stacked, split, batch_size: int) -> list[dict]:
    """Every member's metrics on `split` (classification_metrics, as a separate run's)."""
    stacked.base.eval()
    chunks = [stacked.eval_forward(stacked.params, stacked.buffers, x)
              for x, _ in split.batches(batch_size)]
    logits = torch.cat(chunks, dim=1)
    return [classification_metrics(logits[s], split.y) for s in range(logits.shape[0])]


def _after_epoch(stacked: _Stacked, s: int, member: Member, optimizer, scheduler,
                 epoch: int) -> None:
    """What a separate run does after its epoch: history.csv, divergence, the best and last
    checkpoints (kept, written when the stack ends), early stopping; a member that ends stops
    changing from now on. What it prints goes into its own log."""
    with log_only(member.dir):
        _member_after_epoch(stacked, s, member, optimizer, scheduler, epoch)


def _member_after_epoch(stacked: _Stacked, s: int, member: Member, optimizer, scheduler,
                        epoch: int) -> None:
    from .run import _write_history

    t, row = member.cfg.trainer, member.history[-1]
    _write_history(member.history, member.dir / HISTORY_FILE, epoch_columns(False))
    if not math.isfinite(row["train_loss"]):  # last.pt stays the epoch before, as a run's
        console.print(f"seed {t.seed} diverged: the training loss is {row['train_loss']} at "
                      f"epoch {epoch}", highlight=False)
        member.status = DIVERGED
        member.frozen = stacked.state_of(s)
        return
    weights = stacked.state_of(s)
    if member.stopper.update(row[t.monitor], epoch):
        member.best = {"model": weights, "epoch": epoch, "value": member.stopper.best}
    member.last = {"model": weights, "epoch": epoch, "history": list(member.history),
                   "optimizer": _member_optimizer_state(optimizer, s),
                   "scheduler": scheduler.state_dict() if scheduler is not None else None,
                   "stopper": vars(member.stopper).copy(),
                   "generator": member.generator.get_state()}
    if member.stopper.should_stop:
        console.print(f"seed {t.seed}: early stopping, {t.monitor} has not improved for "
                      f"{t.patience} epochs; best epoch {member.stopper.best_epoch}",
                      highlight=False, soft_wrap=True)
        member.status = EARLY_STOPPED
        member.frozen = weights


def _member_optimizer_state(optimizer: torch.optim.Optimizer, s: int) -> dict:
    """Member s's slice of the stacked optimizer's state, as a separate run's optimizer
    state_dict: last.pt stays a checkpoint a separate run of that seed could resume from."""
    full = optimizer.state_dict()
    return {"state": {i: {k: (v[s].clone() if torch.is_tensor(v) and v.dim() > 0 else v)
                          for k, v in state.items()}
                      for i, state in full["state"].items()},
            "param_groups": full["param_groups"]}


class _Kept:
    """A state kept earlier, handed to checkpoint.save_last as the live object it was."""

    def __init__(self, state):
        self.state = state

    def state_dict(self):
        return self.state

    def get_state(self):
        return self.state


def _write_checkpoints(member: Member, run) -> None:
    """best.pt and last.pt as a separate run of the seed leaves them; the member's model holds
    its final weights again afterwards."""
    final = {k: v.clone() for k, v in member.model.state_dict().items()}
    t = member.cfg.trainer
    if member.best is not None:
        member.model.load_state_dict(member.best["model"])
        checkpoint.save_best(member.dir, member.model, member.best["epoch"], t.monitor,
                             member.best["value"], run.about)
    last = member.last
    if last is not None:
        member.model.load_state_dict(last["model"])
        live = {"model": member.model, "optimizer": _Kept(last["optimizer"]),
                "scheduler": _Kept(last["scheduler"]) if last["scheduler"] is not None else None,
                "stopper": SimpleNamespace(**last["stopper"]), "history": last["history"],
                "generator": _Kept(last["generator"]), "ema": None}
        checkpoint.save_last(member.dir, last["epoch"], live, run.about)
    member.model.load_state_dict(final)


def _finish_member(member: Member, run, train_time: float, initial) -> dict:
    """The member's evaluation and files, as a separate run ends (training/finish.py)."""
    from .run import _best_and_final

    history, best_epoch = member.history, member.stopper.best_epoch
    best, final = _best_and_final(run, member.model, best_epoch, len(history))
    trained = Trained(member.model, history, best_epoch,
                      best.test_logits if best is not None else None, initial, {})
    outcome = Outcome(member.model, best, final, member.status, len(history), best_epoch,
                      member.cfg.trainer.monitor, train_time,
                      analysis=lambda: analyze(member.cfg.eval, member.cfg.trainer, member.dir,
                                               run.data, trained, None))
    return finish(run, outcome)


__all__ = ["NotStackable", "run_stack", "why_not_stacked"]
