"""What a checkpoint holds, defined once: saving best.pt and last.pt, restoring a run from
last.pt, rebuilding a run's model, and the config fingerprint both carry.

Checkpoints are self-contained: besides the weights they carry what a consumer needs without
the dataset (the resolved config, class names, normalization, input spec, vbench version), as
plain types, so `torch.load(..., weights_only=True)` reads them. vbench-eval, -predict and
-export rebuild a run's model from them; resume continues from last.pt.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from ..core import files
from ..core.errors import VBenchError
from ..core.rundir import CHECKPOINTS_DIR, METRICS_FILE
from ..core.schema import Library, Model, Root, from_stored
from . import distributed

if TYPE_CHECKING:
    import torch

    from ..models import InputSpec

# torch and the models are imported where they are used: resume's check of a finished run
# (config_fingerprint, path_of) runs before any job, where vbench has not imported torch yet.

CHECKPOINTS = {"best": "best.pt", "final": "last.pt"}
# What the checkpoint files hold, versioned: a file of another format is refused by name
# instead of failing on a missing key. 1: the first versioned format (vbench 0.1, this
# README's keys).
FORMAT = 1


def config_fingerprint(cfg: Root) -> dict:
    """Everything that decides the training, as plain data: stored in both checkpoints and in
    metrics.json, compared by resume before it continues or skips a run."""
    plain = dataclasses.asdict(cfg)
    del plain["trainer"]["resume"]
    del plain["logger"]  # where results are also sent changes none of them
    del plain["run"]["jobs_per_device"]  # nor how many jobs share a device
    return plain


def path_of(run_dir: Path, which: str) -> Path:
    """checkpoints/best.pt ("best") or checkpoints/last.pt ("final") of a run directory."""
    return Path(run_dir) / CHECKPOINTS_DIR / CHECKPOINTS[which]


def weights_of(model) -> dict:
    """The state_dict of the model itself, also when it runs through torch.compile or DDP."""
    return distributed.unwrap(getattr(model, "_orig_mod", model)).state_dict()


def save_best(run_dir: Path, model, epoch: int, monitor: str, value: float,
              about: dict, ema=None) -> None:
    """best.pt: the weights of the best epoch and, with trainer.ema, their EMA then
    (`model_ema`, what metrics.json `ema.best` evaluates)."""
    state = {"model": weights_of(model), "epoch": epoch, monitor: value, **about}
    if ema is not None:
        state["model_ema"] = ema.module.state_dict()
    files.save_torch(path_of(run_dir, "best"), state)


def save_last(run_dir: Path, epoch: int, loop: dict, about: dict) -> None:
    """last.pt: the weights and every piece of state an exact resume needs. `loop` holds the
    live objects: model, optimizer, scheduler (or None), stopper, history, generator, and
    with trainer.ema the EMA (its weights and update count: `ema`)."""
    scheduler, ema = loop["scheduler"], loop.get("ema")
    files.save_torch(path_of(run_dir, "final"), {
        "model": weights_of(loop["model"]), "optimizer": loop["optimizer"].state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": epoch, "early_stopping": vars(loop["stopper"]).copy(),
        "history": loop["history"],
        "rng": {"torch": _torch().get_rng_state(), "batches": loop["generator"].get_state()},
        **({"ema": ema.state_dict()} if ema is not None else {}),
        **about,  # its "config" is the fingerprint resume compares
    })


def restore_last(state: dict, loop: dict) -> tuple[list[dict], int]:
    """Put last.pt's state back into the live objects of `loop` (as save_last names them);
    returns (history so far, the epoch to start at)."""
    distributed.unwrap(getattr(loop["model"], "_orig_mod", loop["model"])).load_state_dict(
        state["model"])
    loop["optimizer"].load_state_dict(state["optimizer"])
    if loop["scheduler"] is not None:
        loop["scheduler"].load_state_dict(state["scheduler"])
    _torch().set_rng_state(state["rng"]["torch"])
    loop["generator"].set_state(state["rng"]["batches"])
    vars(loop["stopper"]).update(state["early_stopping"])
    if loop.get("ema") is not None:
        loop["ema"].load_state_dict(state["ema"])
    return list(state["history"]), state["epoch"] + 1


def _torch():
    import torch

    return torch


def save_fitted(run_dir: Path, fitted: dict, about: dict) -> None:
    """A scikit-learn baseline's one fit (models/sklearn.checkpoint_state): best = final."""
    for which in CHECKPOINTS:
        files.save_torch(path_of(run_dir, which), {**fitted, "epoch": 1, **about})


def describe(fingerprint: dict, data) -> dict:
    """The checkpoint fields every consumer reads, from the run's config fingerprint and
    (image) data."""
    try:
        version = metadata.version("vbench")
    except metadata.PackageNotFoundError:
        version = None
    return {
        "format": FORMAT,
        "config": fingerprint,  # resume compares it; eval rebuilds the run from it
        "classes": list(data.classes),
        "mean": [float(m) for m in data.mean],
        "std": [float(s) for s in data.std],
        "input": {"channels": int(data.in_channels), "size": list(data.train.x.shape[-2:]),
                  "num_classes": len(data.classes)},
        "vbench_version": version,
    }


@dataclass
class RunModel:
    """A run's model rebuilt from one of its checkpoints, in eval mode, on the CPU."""

    model: torch.nn.Module
    cfg: Root  # the run's config, typed and checked (schema.from_stored)
    classes: list[str]
    mean: list[float]
    std: list[float]
    channels: int
    size: tuple[int, int]
    path: Path  # the checkpoint file

    @property
    def spec(self) -> InputSpec:
        from ..models import InputSpec

        return InputSpec(self.channels, self.size[-1], len(self.classes), tuple(self.mean),
                         tuple(self.std))


def checkpoint_path(run_dir: Path, which: str = "best") -> Path:
    """The checkpoint file of a run directory, or one line saying why there is none."""
    run_dir = Path(run_dir)
    if which not in CHECKPOINTS:
        raise VBenchError(f"--checkpoint {which!r} is not valid; choose one of: best, final")
    if not run_dir.is_dir():
        raise VBenchError(f"{run_dir} is not a directory; give the directory of a vbench run")
    if not (run_dir / METRICS_FILE).is_file() and not (run_dir / CHECKPOINTS_DIR).is_dir():
        raise VBenchError(f"{run_dir} is not a vbench run (no metrics.json or checkpoints/); "
                          "give a run directory such as outputs/runs/<name>")
    path = path_of(run_dir, which)
    if not path.is_file():
        raise VBenchError(f"{path} does not exist: the run has no {which} checkpoint (it did not "
                          f"finish an epoch{', or no epoch was best' if which == 'best' else ''})"
                          f"{'; try --checkpoint final' if which == 'best' else ''}")
    return path


def load_run_model(run_dir: Path, which: str = "best") -> RunModel:
    """Rebuild the model of a run directory from its checkpoint, without its dataset."""
    path = checkpoint_path(run_dir, which)
    state = files.load_torch(path)
    check_format(state, path)
    cfg = from_stored(state["config"], str(path))  # an edited value: one line naming the key
    info = state["input"]
    run = RunModel(None, cfg, list(state["classes"]), list(state["mean"]), list(state["std"]),
                   int(info["channels"]), tuple(info["size"]), path)
    from ..models.sklearn import is_sklearn, load_baseline

    if is_sklearn(cfg.model):
        run.model = load_baseline(cfg.model, cfg.dataset, cfg.trainer, run.spec, path,
                                  state).eval()
    else:
        run.model = build_run_model(cfg.model, run.spec, path)
        run.model.load_state_dict(state["model"])
        run.model.eval()
    return run


def check_format(state: dict, path: Path) -> None:
    """A checkpoint of this vbench's FORMAT, or one line naming both formats."""
    found = state.get("format")
    if found == FORMAT:
        return
    written = f"format {found}" if found is not None else "no format version (an older vbench)"
    raise VBenchError(f"{path} is a checkpoint of {written}, this vbench reads format {FORMAT}; "
                      "use the vbench that trained it, or train the run again with this one")


def build_run_model(model_cfg: Model, spec: InputSpec, path: Path) -> torch.nn.Module:
    """The run's network, built as the run built it; the caller loads the weights."""
    from ..models import build_model

    if isinstance(model_cfg, Library):
        # The pretrained file shaped only the initial weights and the input statistics; the
        # checkpoint replaces the weights, so it stands in for the file (no hub cache needed).
        model_cfg = dataclasses.replace(model_cfg,
                                        weights=str(path) if model_cfg.pretrained else None)
    return build_model(model_cfg, spec)
