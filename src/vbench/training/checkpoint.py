"""Self-contained checkpoints: best.pt and last.pt carry what a consumer needs without the
dataset (the resolved config, class names, normalization, input spec, vbench version), as plain
types, so `torch.load(..., weights_only=True)` reads them. vbench-eval, -predict and -export
rebuild a run's model from them.
"""

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ..core import files
from ..core.errors import VBenchError
from ..models import InputSpec, build_model
from ..models.sklearn import is_sklearn, load_baseline
from .resume import config_fingerprint

CHECKPOINTS = {"best": "best.pt", "final": "last.pt"}


def describe(cfg: DictConfig, data) -> dict:
    """The checkpoint fields every consumer reads, from the run's config and (image) data."""
    try:
        version = metadata.version("vbench")
    except metadata.PackageNotFoundError:
        version = None
    return {
        "config": config_fingerprint(cfg),  # resume compares it; eval rebuilds the run from it
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
    cfg: DictConfig  # the run's resolved config
    classes: list[str]
    mean: list[float]
    std: list[float]
    channels: int
    size: tuple[int, int]
    path: Path  # the checkpoint file

    @property
    def spec(self) -> InputSpec:
        return InputSpec(self.channels, self.size[-1], len(self.classes), tuple(self.mean),
                         tuple(self.std))


def checkpoint_path(run_dir: Path, which: str = "best") -> Path:
    """The checkpoint file of a run directory, or one line saying why there is none."""
    run_dir = Path(run_dir)
    if which not in CHECKPOINTS:
        raise VBenchError(f"--checkpoint {which!r} is not valid; choose one of: best, final")
    if not run_dir.is_dir():
        raise VBenchError(f"{run_dir} is not a directory; give the directory of a vbench run")
    if not (run_dir / "metrics.json").is_file() and not (run_dir / "checkpoints").is_dir():
        raise VBenchError(f"{run_dir} is not a vbench run (no metrics.json or checkpoints/); "
                          "give a run directory such as outputs/runs/<name>")
    path = run_dir / "checkpoints" / CHECKPOINTS[which]
    if not path.is_file():
        raise VBenchError(f"{path} does not exist: the run has no {which} checkpoint (it did not "
                          f"finish an epoch{', or no epoch was best' if which == 'best' else ''})"
                          f"{'; try --checkpoint final' if which == 'best' else ''}")
    return path


def load_run_model(run_dir: Path, which: str = "best") -> RunModel:
    """Rebuild the model of a run directory from its checkpoint, without its dataset."""
    path = checkpoint_path(run_dir, which)
    state = files.load_torch(path)
    if "input" not in state:
        raise VBenchError(f"{path} predates self-contained checkpoints (no config, classes or "
                          "normalization inside); train the run again with this vbench")
    cfg = OmegaConf.create(state["config"])
    info = state["input"]
    run = RunModel(None, cfg, list(state["classes"]), list(state["mean"]), list(state["std"]),
                   int(info["channels"]), tuple(info["size"]), path)
    if is_sklearn(cfg.model):
        run.model = load_baseline(cfg, run.spec, path, state).eval()
    else:
        run.model = build_run_model(cfg.model, run.spec, path)
        run.model.load_state_dict(state["model"])
        run.model.eval()
    return run


def build_run_model(model_cfg: DictConfig, spec: InputSpec, path: Path) -> torch.nn.Module:
    """The run's network, built as the run built it; the caller loads the weights."""
    model_cfg = model_cfg.copy()
    if model_cfg.get("pretrained"):
        # The pretrained file shaped only the initial weights and the input statistics; the
        # checkpoint replaces the weights, so it stands in for the file (no hub cache needed).
        model_cfg.weights = str(path)
    elif "weights" in model_cfg:
        model_cfg.weights = None
    return build_model(model_cfg, spec)
