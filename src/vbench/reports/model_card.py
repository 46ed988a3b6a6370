"""model_card.md in every run directory: what was trained, how well (best vs final, val vs
test), the per-class extremes, how to reproduce it, and the versions; vbench-eval appends."""

import shlex
from dataclasses import dataclass
from pathlib import Path

from ..core import files
from ..core.columns import SPLIT_METRICS
from ..core.rundir import HYDRA_DIR, MODEL_CARD_FILE


@dataclass(frozen=True)
class Recipe:
    """How a run trained, as its card states it (metrics.json holds the rest)."""

    arch: str  # model.arch
    optimizer: str
    scheduler: str
    epochs: int  # trainer.epochs: the most it could run
    batch_size: int
    freeze: str  # freeze.policy
    augment: str  # dataset.augment


def write(run_dir: Path, metrics: dict, recipe: Recipe) -> None:
    m, r = metrics, recipe
    params = m.get("params") or {}
    sizes = m.get("sizes") or {}
    lines = [
        f"# Model card: {m['model']} on {m['dataset']}", "",
        (f"- **Model**: `{m['model']}` (arch `{r.arch}`), "
         f"{params.get('total', 0):,} parameters ({params.get('trainable', 0):,} trainable)"),
        (f"- **Dataset**: `{m['dataset']}`, {sizes.get('train', 0)} train / "
         f"{sizes.get('val', 0)} val / {sizes.get('test', 0)} test images, "
         f"{len(m.get('classes') or [])} classes"),
        (f"- **Recipe**: optimizer `{r.optimizer}`, scheduler "
         f"`{r.scheduler}`, {m['epochs_run']} of {r.epochs} epochs, batch "
         f"{r.batch_size}, seed {m['seed']}, precision {m.get('precision')}, freeze "
         f"`{r.freeze}`, augment `{r.augment}`"),
        (f"- **Status**: {m['status']}; best = epoch {m['best_epoch']}"
         f"{' by ' + m['monitor'] if m.get('monitor') else ''}, final = epoch {m['epochs_run']}"),
        "", "## Results", "",
        "The best checkpoint was chosen on **val**; **test** was never used for any choice.", "",
        "| metric | best val | best test | final val | final test |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in SPLIT_METRICS:
        cells = [_cell(m.get(ckpt), split, name) for ckpt in ("best", "final")
                 for split in ("val", "test")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    per_class = m.get("per_class_accuracy") or {}
    if per_class:
        ranked = sorted(per_class.items(), key=lambda kv: kv[1])
        lines += ["", "Per-class test accuracy (best checkpoint): lowest "
                  + ", ".join(f"{k} {v:.3f}" for k, v in ranked[:3]) + "; highest "
                  + ", ".join(f"{k} {v:.3f}" for k, v in ranked[::-1][:3]) + "."]
    lines += ["", "## Reproduce", "", "```", _command(run_dir), "```", "",
              "## Versions", "",
              ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items() if v), ""]
    files.write_text(Path(run_dir) / MODEL_CARD_FILE, "\n".join(lines))


def append_eval(run_dir: Path, which: str, epoch: int | None, dataset: str, results: dict,
                trained_on: str | None = None, overrides: list[str] = ()) -> None:
    """A vbench-eval result of the `which` checkpoint ("best"/"final"), saved at `epoch`,
    appended as its own section (the card is created if missing). `trained_on` names the
    run's own dataset when `dataset` is another one; `overrides` are the dataset overrides
    vbench-eval was given, written as they are typed."""
    path = Path(run_dir) / MODEL_CARD_FILE
    text = path.read_text() if path.exists() else f"# Model card: {Path(run_dir).name}\n"
    rows = [f"| {split} | " + " | ".join(f"{values[n]:.4f}" for n in SPLIT_METRICS) + " |"
            for split, values in results.items()]
    saved = "an unrecorded epoch" if epoch is None else f"epoch {epoch}"
    heading = f"## vbench-eval: {which} checkpoint on {dataset}"
    if trained_on is not None:
        heading += f", another dataset (trained on {trained_on})"
    keys = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "dataset"]
    sentence = f"The {which} checkpoint, saved at {saved}"
    if overrides:
        sentence += (f", evaluated on {dataset}" + (f" with {_listed(keys)}" if keys else "")
                     + f" (overrides: `{' '.join(shlex.quote(o) for o in overrides)}`)")
    words = [sentence + ".", ""]
    section = [heading, "", *words,
               "| split | " + " | ".join(SPLIT_METRICS) + " |",
               "|---|" + "---:|" * len(SPLIT_METRICS), *rows, ""]
    files.write_text(path, text.rstrip("\n") + "\n\n" + "\n".join(section))


def _listed(overrides: list[str]) -> str:
    """`dataset.image_size=8`, `dataset.in_channels=1` as "image size 8 and in channels 1"."""
    words = [f"{key.lstrip('+~').removeprefix('dataset.').replace('_', ' ')} {value}"
             for key, _, value in (o.partition("=") for o in overrides)]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _cell(checkpoint: dict | None, split: str, name: str) -> str:
    values = (checkpoint or {}).get(split)
    return "—" if values is None else f"{values[name]:.4f}"


def _command(run_dir: Path) -> str:
    """`vbench` with the run's own command-line overrides (.hydra/overrides.yaml)."""
    overrides_file = Path(run_dir) / HYDRA_DIR / "overrides.yaml"
    overrides = []
    if overrides_file.exists():
        from omegaconf import OmegaConf

        overrides = [str(o) for o in OmegaConf.load(overrides_file)]
    return " ".join(["vbench", *(shlex.quote(o) for o in overrides)])
