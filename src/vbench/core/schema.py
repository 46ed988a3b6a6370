"""Every config key, declared once: its type, its allowed values and its one-line doc.

The schema is Hydra structured configs: one dataclass per root section and per kind of group
option, stored in Hydra's ConfigStore under `schema/<group>/<kind>` and named first in each
option's YAML defaults list (`- /schema/model/mlp@_here_`). That gives, at composition and so
before any work (also for `vbench --cfg job`):
  - types: `trainer.epochs=abc` or `scheduler.gamma=abc` cannot compose;
  - closed key sets: a key the chosen option does not declare (`+model._target_=x`,
    `model.depth=3` with `model=torchvision`, a typo) cannot compose.
What a type cannot say (ranges, choices, odd kernel sizes) is each field's `Rule`, checked by
`validate(cfg)` right after composition. `vbench --help` prints the docs from here.

Pydantic would check ranges in one step, but it would validate a second copy of the config
after Hydra composed it: unknown keys and types would still pass composition, `--cfg job` would
print configs that cannot run, and the YAML defaults would not be tied to a declaration.
"""

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .columns import MONITORS
from .errors import VBenchError, choices_error

# The closed vocabularies, each the one list of its names: the modules that implement them
# build their tables from these (models/layers.py, training/optim.py, data/augment.py).
ACTIVATIONS = ("relu", "tanh", "leaky_relu", "gelu", "sigmoid", "silu")
AUGMENTS = ("none", "flip_crop", "rotate")
AUTO_AUGMENTS = ("none", "randaugment", "trivialaugment")
PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")
RESUME_MODES = ("auto", True, False)
COMPILE_SETTINGS = (False, True, "default", "reduce-overhead", "max-autotune",
                    "max-autotune-no-cudagraphs")
PLOTS = ("curves", "confusion", "per_class", "misclassified", "tsne", "weights", "gap", "samples")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULERS = ("none", "step", "multistep", "cosine", "onecycle", "warmup_cosine")
FREEZE_POLICIES = ("none", "stem", "layers", "backbone")


# -- rules: what a value must be beyond its type ------------------------------------------


@dataclass(frozen=True)
class Rule:
    test: Callable[[Any], bool]
    allowed: str  # completes "it must be ..."


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def at_least(lo, what="a number") -> Rule:
    return Rule(lambda v: _number(v) and v >= lo, f"{what} >= {lo}")


def above(lo, what="a number") -> Rule:
    return Rule(lambda v: _number(v) and v > lo, f"{what} > {lo}")


def fraction(*, closed_low=True, closed_high=False) -> Rule:
    lo, hi = "[" if closed_low else "(", "]" if closed_high else ")"
    return Rule(lambda v: _number(v) and (v >= 0 if closed_low else v > 0)
                and (v <= 1 if closed_high else v < 1), f"a number in {lo}0, 1{hi}")


def one_of(*choices) -> Rule:
    shown = ", ".join("null" if c is None else str(c).lower() if isinstance(c, bool) else str(c)
                      for c in choices)
    # type-exact, so that 1 is not taken for true
    return Rule(lambda v: any(v == c and type(v) is type(c) for c in choices), f"one of: {shown}")


def each(rule: Rule) -> Rule:
    return Rule(lambda v: all(rule.test(x) for x in v), f"a list, each item {rule.allowed}")


def non_empty(rule: Rule) -> Rule:
    return Rule(lambda v: len(v) >= 1 and rule.test(v),
                f"a non-empty {rule.allowed.removeprefix('a ')}")


FINITE = Rule(_number, "a finite number")
COUNT = at_least(1, "an integer")
SIZE_OR_FRACTION = Rule(lambda v: (isinstance(v, int) and not isinstance(v, bool) and v >= 1)
                        or (isinstance(v, float) and 0 < v < 1),
                        "a fraction in (0, 1) or a count >= 1")
ODD = Rule(lambda v: isinstance(v, int) and v >= 1 and v % 2 == 1, "an odd integer >= 1")
CHANNELS = one_of(1, 3)


def key(default, doc: str, rule: Rule | None = None):
    """A declared key: its default, its doc (shown by --help) and the rule its value obeys
    (None: the type says everything). A null value always passes: only Optional fields take it."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default),
                     metadata={"doc": doc, "rule": rule})
    return field(default=default, metadata={"doc": doc, "rule": rule})


def required(doc: str, rule: Rule | None = None):
    return field(default=MISSING, metadata={"doc": doc, "rule": rule})


# -- root sections --------------------------------------------------------------------------


@dataclass
class Trainer:
    epochs: int = key(30, "maximum number of passes over the training split", COUNT)
    batch_size: int = key(64, "training batch size (per process under torchrun)", COUNT)
    accumulate: int = key(1, "gradient accumulation: one optimizer step every N batches, an "
                          "effective batch of N x batch_size", COUNT)
    eval_batch_size: int = key(1024, "batch size for validation, test and inference timing", COUNT)
    device: str = key("auto", "auto (cuda > mps > cpu), cpu, cuda, cuda:N, mps",
                      Rule(lambda v: v in ("auto", "cpu", "cuda", "mps")
                           or (v.startswith("cuda:") and v[5:].isdigit()),
                           "one of: auto, cpu, cuda, cuda:N, mps"))
    precision: str = key("auto", "auto (bf16-mixed on a bf16 GPU for models of 5 M parameters "
                         "and more, else 32; metrics.json precision_reason says which), 32, "
                         "bf16-mixed, 16-mixed", one_of(*PRECISIONS))
    seed: int = key(0, "seeds weights, batch order and augmentation")
    patience: int | None = key(None, "early stopping: epochs without improvement of monitor; "
                                  "null = off", COUNT)
    monitor: str = key("val_loss", "picks the best checkpoint: val_loss (lower is better) or "
                       "val_acc; ema_val_loss, ema_val_acc: the EMA weights' (trainer.ema)",
                       one_of(*MONITORS))
    min_delta: float = key(0.0, "an improvement must beat the best by more than this",
                           at_least(0))
    label_smoothing: float = key(0.0, "label smoothing of the training loss", fraction())
    grad_clip: float | None = key(None, "clip the gradient norm to this value; null = off",
                                     above(0))
    ema: float | None = key(None, "EMA of the weights with this decay per optimizer step (timm: "
                            "0.9998), validated every epoch and reported beside the raw weights; "
                            "null = off", fraction(closed_low=False))
    ema_warmup: bool = key(True, "ramp the EMA decay up as timm's ModelEmaV3 warmup: "
                           "min(trainer.ema, 1 - (1 + step)^(-2/3))")
    mixup: float = key(0.0, "mixup alpha: each image blended with a partner, weight ~ "
                       "Beta(alpha, alpha); 0 = off (timm: 0.8, torchvision's recipe: 0.2)",
                       at_least(0))
    cutmix: float = key(0.0, "cutmix alpha: a box of a partner pasted into each image, area ~ "
                        "Beta(alpha, alpha); 0 = off (timm, torchvision: 1.0)", at_least(0))
    mixup_prob: float = key(1.0, "share of the images mixed when mixup or cutmix is on",
                            fraction(closed_high=True))
    mixup_switch_prob: float = key(0.5, "with both on: chance an image gets cutmix instead of "
                                   "mixup", fraction(closed_high=True))
    channels_last: bool = key(False, "channels_last memory format for conv nets")
    compile: Any = key(False, "torch.compile mode: default (or true), reduce-overhead (CUDA "
                       "graphs), max-autotune, max-autotune-no-cudagraphs; kept only when a "
                       "training step measures faster than eager (metrics.json compile); false "
                       "= eager", one_of(*COMPILE_SETTINGS))
    deterministic: bool = key(False, "torch.use_deterministic_algorithms: bit-identical reruns "
                              "on GPU too")
    log_every_s: float | None = key(30.0, "off a terminal (CI, SLURM): a progress line inside an "
                                    "epoch or a long evaluation every this many seconds; null = "
                                    "epoch lines only", above(0))
    resume: Any = key("auto", "auto: continue an unfinished run dir of the same config, skip a "
                      "finished one; true: insist on resuming; false: always start anew",
                      one_of(*RESUME_MODES))


@dataclass
class Eval:
    plots: list[str] = key(["curves", "confusion", "per_class", "gap"],
                           "figures in plots/; also: misclassified, tsne, weights, samples "
                           "(tsne is slow: seconds per 500 images)", each(one_of(*PLOTS)))
    background_plots: Any = key("auto", "auto: a single run at a terminal (outside SLURM) "
                                "draws plots/ in a background process once metrics.json is "
                                "written, so the prompt returns at once; true: off a terminal "
                                "too; false: before metrics.json. Sweep jobs and runs with a "
                                "logger always draw first", one_of("auto", True, False))
    extra: list[Any] = key([], "cross-domain: test splits of these datasets (same shape), "
                           "e.g. [fashion_mnist]")
    shift_pixels: list[int] = key([], "translation probe: test images shifted by k px, "
                                  "e.g. [0,1,2,4]; [] = off", each(at_least(0, "an integer")))
    tsne_samples: int = key(500, "test images projected by t-SNE (cost grows fast with the "
                            "count)", at_least(10, "an integer"))
    misclassified: int = key(25, "images in the misclassified grid, most confident first",
                             COUNT)


@dataclass
class Run:
    name: str | None = key(None, "a label for the run: names its directory (instead of its "
                           "options) and its row of the leaderboard")
    tags: list[str] = key([], "free labels recorded in metrics.json and the summary, e.g. "
                          "[baseline]")
    jobs_per_device: int = key(1, "with hydra/launcher=fill: jobs of a sweep at once on each "
                               "GPU (job i on GPU i mod N), or sharing the cores without one; "
                               "with hydra/launcher=stack: stacks of seeds, the same way",
                               COUNT)


@dataclass
class TensorBoardLogger:
    dir: str = key("tb", "event folder; relative paths are inside the run dir")


@dataclass
class MLflowLogger:
    tracking_uri: str = key("sqlite:///outputs/mlflow.db", "any MLflow URI (http://host:5000, "
                            "file:...); a relative sqlite path is from the launch dir, artifacts "
                            "in mlartifacts/ beside it")
    experiment: str | None = key(None, "experiment name; null: the experiment preset's name, "
                                    "else the dataset's")


@dataclass
class WandbLogger:
    project: str = key("vbench", "W&B project")
    entity: str | None = key(None, "W&B team or user; null: your default entity")
    mode: str | None = key(None, "online, offline or disabled; null: WANDB_MODE, else online",
                              one_of("online", "offline", "disabled"))


@dataclass
class Logger:
    """Experiment trackers: each is null unless chosen (logger=tensorboard, logger=[a,b])."""

    tensorboard: TensorBoardLogger | None = key(None, "TensorBoard events (pip extra "
                                                   "tensorboard): tensorboard --logdir outputs")
    mlflow: MLflowLogger | None = key(None, "an MLflow run per job, nested under one parent "
                                         "run per sweep (pip extra mlflow)")
    wandb: WandbLogger | None = key(None, "a W&B run per job, grouped by sweep (pip extra "
                                       "wandb; WANDB_MODE=offline works without a network)")


@dataclass
class Root:
    trainer: Trainer = field(default_factory=Trainer)
    eval: Eval = field(default_factory=Eval)
    run: Run = field(default_factory=Run)
    logger: Logger = field(default_factory=Logger)
    # The groups: each option's own schema below types them.
    dataset: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    freeze: Any = MISSING


# -- dataset options ------------------------------------------------------------------------


@dataclass
class Dataset:
    name: str = required("the dataset; metrics.json reports it")
    root: str | None = key(None, "folder holding the dataset's files ($VBENCH_DATA if set); "
                              "hf: of its decoded cache; ignored by digits, fake, csv and "
                              "webdataset (their files are named by their own keys)")
    val_size: Any = key(0.1, "val split carved from the training pool: a fraction, or a count "
                        "(scaled down with subset_per_class / max_samples)", SIZE_OR_FRACTION)
    split_seed: int = key(0, "fixes the split, so runs with different trainer.seed compare on "
                          "the same data")
    subset_per_class: int | None = key(None, "keep at most N images per class in every split "
                                          "(smoke runs)", COUNT)
    max_samples: int | None = key(None, "keep at most N images in every split, stratified "
                                     "(smoke runs)", COUNT)
    normalize: bool = key(True, "true: per-channel mean/std (lists below, else from train); "
                          "false: off")
    mean: list[float] | None = key(None, "per-channel means in [0, 1]; null: from train",
                                      non_empty(each(fraction(closed_high=True))))
    std: list[float] | None = key(None, "per-channel stds, given together with mean",
                                     non_empty(each(above(0))))
    augment: str = key("none", "train batches only: none, flip_crop (flip + 4px-pad crop), "
                       "rotate (±10°)", one_of(*AUGMENTS))
    auto_augment: str = key("none", "after augment, per image: randaugment, trivialaugment "
                            "(torchvision's op lists, drawn per image on the device); none",
                            one_of(*AUTO_AUGMENTS))
    randaugment_ops: int = key(2, "randaugment: ops applied to each image, one after another",
                               COUNT)
    randaugment_magnitude: int = key(9, "randaugment: strength of every op, bin 0..30 "
                                     "(torchvision's 31 bins)",
                                     Rule(lambda v: isinstance(v, int) and 0 <= v <= 30,
                                          "an integer from 0 to 30"))
    random_erasing: float = key(0.0, "chance each training image gets a random box (2-33 % of "
                                "it) filled with noise, last; 0 = off (timm: 0.25)",
                                fraction(closed_high=True))


@dataclass
class Digits(Dataset):
    test_size: Any = key(0.2, "held-out test split (fraction or count), stratified",
                         SIZE_OR_FRACTION)


@dataclass
class TorchvisionDataset(Dataset):
    """MNIST, Fashion-MNIST, CIFAR-10/100, SVHN: torchvision's files under `root`."""

    download: bool = key(False, "true: fetch missing files with torchvision (needs a network)")


@dataclass
class ImageFolder(Dataset):
    image_size: int = key(32, "every image is centre-cropped to a square and resized to this, "
                          "once", at_least(2, "an integer"))
    in_channels: int | None = key(None, "1 (grey) or 3 (RGB); null = 1 when all training "
                                     "images are grey", CHANNELS)
    in_memory: Any = key("auto", "auto: decode once into memory when it fits half the free RAM "
                         "(GPU memory on CUDA), else stream; true: always in memory; false: "
                         "stream", one_of("auto", True, False))
    num_workers: int | None = key(None, "processes decoding streamed batches; null = the cores "
                                  "available", at_least(0, "an integer"))


@dataclass
class CSVManifest(ImageFolder):
    """A CSV or TSV of image paths and labels (Kaggle style); ImageFolder's decoding."""

    file: str = required("the CSV (.csv) or TSV (.tsv, .tab) file: one row per image; image "
                         "paths relative to it (or to image_dir)")
    image_column: str | None = key(None, "column of image paths; null: the first of image, "
                                      "path, file, filename, file_name, image_path, id, "
                                      "image_id")
    label_column: str | None = key(None, "column of labels (class names or integers); null: "
                                      "the first of label, class, category, target")
    split_column: str | None = key(None, "column saying train, val (validation, valid) or "
                                      "test per row; null: a column named split if there is "
                                      "one, else every row is train")
    image_dir: str | None = key(None, "folder the image paths are relative to; null: the "
                                   "file's folder")
    suffix: str = key("", "appended to every image path, for ids without an extension "
                      "(e.g. .jpg)")
    classes: list[str] | None = key(None, "class names in label order; null: the sorted "
                                       "names of the train rows (integer labels: 0..max)")


@dataclass
class HFDataset(Dataset):
    """A Hugging Face `datasets` dataset: a save_to_disk folder, a folder of parquet/arrow
    files, or a hub id already in the local HF cache."""

    path: str | None = key(None, "save_to_disk folder, folder of parquet/arrow files, or hub "
                              "id (datasets.load_dataset's path); must be given")
    subset: str | None = key(None, "the hub dataset's configuration (load_dataset's name)")
    download: bool = key(False, "true: let datasets download a hub id missing from the local "
                         "cache (needs a network); false: offline")
    image_column: str | None = key(None, "null: the column of Image feature type (else one "
                                      "named image or img)")
    label_column: str | None = key(None, "null: the column of ClassLabel type (else one "
                                      "named label or labels)")
    image_size: int | None = key(None, "centre-crop and resize every image to this, once; "
                                    "null: the first train image's shorter side",
                                    at_least(2, "an integer"))
    in_channels: int | None = key(None, "1 (grey) or 3 (RGB); null = 1 when all training "
                                     "images are grey", CHANNELS)


@dataclass
class WebDataset(Dataset):
    """WebDataset tar shards, streamed: train is read shard by shard every epoch."""

    urls: str | None = key(None, "train shards: a brace pattern of local paths or http(s) "
                              "URLs, e.g. shards/train-{000000..000099}.tar; must be given")
    val_urls: str | None = key(None, "val shards, read once into memory; null: val_size (a "
                                  "fraction) of the train samples, held out by key hash")
    test_urls: str | None = key(None, "test shards, read once into memory; null: no test "
                                   "split")
    classes: list[str] | None = key(None, "class names in label order (this or num_classes "
                                       "must be given: a stream cannot be counted before it "
                                       "is read)",
                                       non_empty(Rule(lambda v: True, "list of names")))
    num_classes: int | None = key(None, "number of classes, named 0..n-1 (or give classes)",
                                     at_least(2, "an integer"))
    image_size: int = key(32, "every image is centre-cropped to a square and resized to this",
                          at_least(2, "an integer"))
    in_channels: int = key(3, "1 (grey) or 3 (RGB)", CHANNELS)
    image_key: str = key("jpg;jpeg;png;webp;ppm;pgm;bmp;tif;tiff", "the image member's "
                         "extension; alternatives separated by ;")
    label_key: str = key("cls", "the label member's extension: an integer or a class name")
    shuffle_buffer: int = key(1000, "train samples shuffled within a buffer of this many "
                              "(shard order is shuffled too); 0 = off", at_least(0, "an integer"))
    epoch_size: int | None = key(None, "train images per epoch, all processes together; "
                                    "null: counted from the local shards' tar headers "
                                    "(http(s) shards need it)", COUNT)
    num_workers: int | None = key(None, "processes reading shards; null = the cores "
                                     "available", at_least(0, "an integer"))


@dataclass
class Fake(Dataset):
    num_classes: int = key(10, "number of classes", at_least(2, "an integer"))
    image_size: int = key(32, "height and width in pixels", at_least(2, "an integer"))
    in_channels: int = key(3, "1 (grey) or 3 (RGB)", CHANNELS)
    train_size: int = key(1000, "images in the training pool (before the val split)", COUNT)
    test_size: int = key(200, "images in the test split", COUNT)
    noise: float = key(0.5, "noise std relative to the pattern contrast; higher = harder",
                       at_least(0))


# -- model options --------------------------------------------------------------------------


@dataclass
class Model:
    arch: str = required("the model family (registry key in vbench.models)")
    name: str = required("the model's name; metrics.json reports it")


@dataclass
class MLP(Model):
    depth: int = key(2, "number of hidden layers", COUNT)
    width: int = key(128, "units per hidden layer", COUNT)
    widths: list[int] | None = key(None, "explicit hidden sizes, e.g. [128,64]: replaces "
                                      "depth and width", non_empty(each(COUNT)))
    activation: str = key("relu", ", ".join(ACTIVATIONS), one_of(*ACTIVATIONS))
    dropout: float = key(0.0, "dropout after each hidden activation", fraction())
    batchnorm: bool = key(True, "BatchNorm1d after each hidden Linear; false = seed 001's "
                          "plain MLP")


@dataclass
class ResMLP(Model):
    blocks: int = key(3, "number of residual blocks (seed 001 compares 3 and 5)", COUNT)
    width: int = key(128, "units of the projection and of every block", COUNT)
    activation: str = key("relu", ", ".join(ACTIVATIONS), one_of(*ACTIVATIONS))
    dropout: float = key(0.0, "dropout after each block", fraction())
    batchnorm: bool = key(True, "BatchNorm1d in the projection and the blocks")


@dataclass
class CNN(Model):
    depth: int = key(2, "number of conv blocks", COUNT)
    width: int = key(16, "channels of the first conv block, doubled per block", COUNT)
    kernel_size: int = key(3, "conv kernel size (odd; padding keeps the size)", ODD)
    fc_width: int = key(128, "units of the hidden fully connected layer", COUNT)
    activation: str = key("relu", ", ".join(ACTIVATIONS), one_of(*ACTIVATIONS))
    dropout: float = key(0.0, "dropout before the output layer", fraction())
    batchnorm: bool = key(True, "BatchNorm2d after each conv")


@dataclass
class Library(Model):
    """Any torchvision or timm classifier by name."""

    pretrained: bool = key(False, "true: the default weights, from the local cache (no "
                           "download)")
    weights: str | None = key(None, "a weights file: state_dict, vbench checkpoint or "
                                 ".safetensors")
    input_size: int | None = key(None, "resize batches on the device to this many pixels; "
                                    "null = keep", at_least(8, "an integer"))


@dataclass
class Sklearn(Model):
    """A scikit-learn baseline on raw pixels or on a frozen torchvision backbone's features."""

    backbone: str | None = key(None, "null: raw pixels; a torchvision name: its frozen "
                                  "features")
    pretrained: bool = key(False, "backbone only: its default weights, from the local cache")
    weights: str | None = key(None, "backbone only: a weights file instead")
    input_size: int | None = key(None, "backbone only: resize to this many pixels (seed "
                                    "000: 96)", at_least(8, "an integer"))


@dataclass
class LogReg(Sklearn):
    C: float = key(1.0, "inverse L2 regularization strength", above(0))
    max_iter: int = key(1000, "lbfgs iterations, as seed 000", COUNT)


@dataclass
class RandomForest(Sklearn):
    n_estimators: int = key(200, "number of trees, as seed 000", COUNT)
    max_depth: int | None = key(None, "null: grow until leaves are pure, as seed 000", COUNT)
    n_jobs: int = key(-1, "CPU cores for fit and predict; -1 = all",
                      Rule(lambda v: v == -1 or v >= 1, "-1 (all cores) or an integer >= 1"))


# -- optimizer, scheduler, freeze options ---------------------------------------------------


@dataclass
class Optimizer:
    name: str = required(f"torch.optim class: {', '.join(OPTIMIZERS)}", one_of(*OPTIMIZERS))
    lr: float = key(1e-3, "learning rate", above(0))
    weight_decay: float = key(0.0, "weight decay (L2 penalty; decoupled for adamw)", at_least(0))
    no_decay_bias_norm: bool = key(False, "true: biases and norm weights (1-D parameters) get "
                                   "no weight decay")


@dataclass
class SGD(Optimizer):
    momentum: float = key(0.0, "momentum factor; 0.9 for SGD with momentum", fraction())
    nesterov: bool = key(False, "Nesterov momentum (needs momentum > 0)")


@dataclass
class RMSprop(Optimizer):
    alpha: float = key(0.99, "smoothing constant of the squared-gradient average", fraction())
    momentum: float = key(0.0, "momentum factor", fraction())


@dataclass
class Scheduler:
    name: str = required(f"torch.optim.lr_scheduler: {', '.join(SCHEDULERS)}",
                         one_of(*SCHEDULERS))


@dataclass
class Cosine(Scheduler):
    eta_min: float = key(0.0, "learning rate reached at the last epoch", at_least(0))


@dataclass
class Step(Scheduler):
    step_size: int = key(10, "epochs between decays", COUNT)
    gamma: float = key(0.5, "factor applied at each decay", fraction(closed_low=False,
                                                                     closed_high=True))


@dataclass
class MultiStep(Scheduler):
    milestones: list[int] = key([10, 20], "epochs after which the learning rate is multiplied "
                                "by gamma", non_empty(each(COUNT)))
    gamma: float = key(0.1, "factor applied at each milestone", fraction(closed_low=False,
                                                                        closed_high=True))


@dataclass
class OneCycle(Scheduler):
    max_lr: float | None = key(None, "peak learning rate; null = optimizer.lr", above(0))
    pct_start: float = key(0.3, "fraction of the steps spent warming up",
                           fraction(closed_low=False))


@dataclass
class WarmupCosine(Scheduler):
    warmup_epochs: float = key(2, "length of the warmup, in epochs (fractions allowed)",
                               above(0))
    start_factor: float = key(0.01, "warmup starts at this fraction of optimizer.lr",
                              fraction(closed_low=False, closed_high=True))
    eta_min: float = key(0.0, "learning rate reached at the last step", at_least(0))


@dataclass
class Freeze:
    policy: str = required("none, stem, layers (freeze.modules), backbone (linear probe)",
                           one_of(*FREEZE_POLICIES))
    modules: list[str] = key([], "module-name prefixes to freeze, for policy=layers, "
                             "e.g. [layer1,layer2]")


@dataclass
class FreezeBackbone(Freeze):
    cache: bool = key(True, "run the frozen backbone once and train the head on its features")


# Each group's kinds, as `schema/<group>/<kind>` in the ConfigStore.
# -- hydra/sweeper=optuna: vbench's Optuna sweeper (commands/optuna_sweeper.py) -------------
# Hydra's own nodes (hydra.launcher.*) are their plugins'; this sweeper is vbench's, so its keys
# are declared here like every other key, and checked (validate_sweeper) before any trial.

PRUNERS = ("none", "median", "percentile", "successive_halving", "hyperband", "threshold")
DIRECTIONS = ("maximize", "minimize")
SWEEPER_TARGET = "hydra_plugins.vbench_optuna.optuna_sweeper.VBenchOptunaSweeper"


def _pruner_name(v):
    return v if isinstance(v, str) else v.get("name") if isinstance(v, dict) else None


@dataclass
class OptunaSampler:
    """hydra/sweeper/sampler=<name>: an Optuna sampler, built with these keyword arguments."""

    _target_: str = "optuna.samplers.RandomSampler"
    seed: int | None = key(None, "the sampler's seed: the same trials in the same order on "
                           "every search (with one worker)")


@dataclass
class TPESampler(OptunaSampler):
    _target_: str = "optuna.samplers.TPESampler"
    n_startup_trials: int = key(10, "random trials before TPE models the results", COUNT)
    n_ei_candidates: int = key(24, "candidates scored per suggestion", COUNT)
    multivariate: bool = key(False, "model the parameters jointly")
    constant_liar: bool = key(False, "count running trials as bad ones, so that parallel "
                              "workers spread out (Optuna recommends it for several workers)")


@dataclass
class CmaEsSampler(OptunaSampler):
    _target_: str = "optuna.samplers.CmaEsSampler"
    n_startup_trials: int = key(1, "random trials before CMA-ES starts", at_least(0, "an integer"))
    sigma0: float | None = key(None, "initial step size; null: Optuna's", above(0))
    use_separable_cma: bool = key(False, "diagonal covariance: faster in many dimensions")
    with_margin: bool = key(False, "CMA-ES with margin (integer and discrete parameters)")
    consider_pruned_trials: bool = key(False, "learn from pruned trials too")


@dataclass
class QMCSampler(OptunaSampler):
    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: str = key("sobol", "sobol or halton", one_of("sobol", "halton"))
    scramble: bool = key(False, "scramble the sequence (with seed)")


@dataclass
class NSGAIISampler(OptunaSampler):
    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int = key(50, "trials per generation", at_least(2, "an integer"))
    mutation_prob: float | None = key(None, "null: 1 / number of parameters",
                                      fraction(closed_high=True))
    crossover_prob: float = key(0.9, "chance of a crossover", fraction(closed_high=True))
    swapping_prob: float = key(0.5, "uniform crossover's swap chance", fraction(closed_high=True))


@dataclass
class GPSampler(OptunaSampler):
    _target_: str = "optuna.samplers.GPSampler"
    n_startup_trials: int = key(10, "random trials before the Gaussian process", COUNT)
    deterministic_objective: bool = key(False, "no noise in the objective")


@dataclass
class GridSampler(OptunaSampler):
    """Every combination once: the search space must be choice() and range() only."""

    _target_: str = "optuna.samplers.GridSampler"


SAMPLERS: dict[str, type] = {"tpe": TPESampler, "random": OptunaSampler, "cmaes": CmaEsSampler,
                             "qmc": QMCSampler, "nsgaii": NSGAIISampler, "gp": GPSampler,
                             "grid": GridSampler}


@dataclass
class OptunaSweeper:
    """hydra/sweeper=optuna: an Optuna study run as a Hydra sweep. Each trial is one run whose
    config is the search space's values; it reports its monitored metric every epoch and stops
    when the pruner says so. The study lives in storage that several `vbench -m` share."""

    _target_: str = SWEEPER_TARGET
    _recursive_: bool = False  # Hydra hands the sampler over as config: the sweeper builds it
    sampler: Any = MISSING  # hydra/sweeper/sampler=<name> (SAMPLERS), tpe by default
    direction: str = key("maximize", "maximize or minimize the monitored val metric "
                         "(trainer.monitor): val_acc maximizes, val_loss minimizes",
                         one_of(*DIRECTIONS))
    study_name: str | None = key(None, "the study in the storage; null: vbench. Workers with "
                                 "the same storage and name share one study")
    storage: str | None = key(None, "a journal file (several processes append to it) or a "
                              "database URL (sqlite:///optuna.db, postgresql://...); null: "
                              "optuna.journal in the sweep directory")
    n_trials: int = key(20, "trials of the study in total, over every worker; a rerun runs "
                        "only the ones missing", COUNT)
    n_jobs: int = key(1, "trials launched together (in parallel with hydra/launcher=joblib, "
                      "fill or submitit)", COUNT)
    pruner: Any = key("none", "stops weak trials early: none, median, percentile, "
                      "successive_halving, hyperband, threshold; with Optuna's parameters: "
                      "{name:median,n_startup_trials:5,n_warmup_steps:2}",
                      Rule(lambda v: _pruner_name(v) in PRUNERS,
                           f"one of: {', '.join(PRUNERS)}, or {{name:<one of them>,"
                           "<its Optuna parameters>}"))
    stale_after_s: float = key(120.0, "a running trial whose worker has not been heard of for "
                               "this long (or whose process on this host is gone) is run again "
                               "by the next worker", above(0))
    params: dict[str, str] | None = key(None, "the search space: key: interval(lo, hi), "
                                        "tag(log, interval(lo, hi)), choice(a, b), range(a, b), "
                                        "or a fixed value")
    trial: int | None = key(None, "set by the sweeper on each job: the trial it reports to")


GROUPS: dict[str, dict[str, type]] = {
    "dataset": {"digits": Digits, "torchvision": TorchvisionDataset,
                "imagefolder": ImageFolder, "csv": CSVManifest, "hf": HFDataset,
                "webdataset": WebDataset, "fake": Fake},
    "model": {"mlp": MLP, "resmlp": ResMLP, "cnn": CNN, "library": Library, "logreg": LogReg,
              "random_forest": RandomForest},
    "optimizer": {"optimizer": Optimizer, "sgd": SGD, "rmsprop": RMSprop},
    "scheduler": {"none": Scheduler, "cosine": Cosine, "step": Step, "multistep": MultiStep,
                  "onecycle": OneCycle, "warmup_cosine": WarmupCosine},
    "freeze": {"freeze": Freeze, "backbone": FreezeBackbone},
}
SECTIONS: dict[str, type] = {"trainer": Trainer, "eval": Eval, "run": Run, "logger": Logger}
LOGGERS: dict[str, type] = {"tensorboard": TensorBoardLogger, "mlflow": MLflowLogger,
                            "wandb": WandbLogger}


def register() -> None:
    """Put the schema in Hydra's ConfigStore (before composing: cli.py calls this)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="schema", node=Root)
    for group, kinds in (*GROUPS.items(), ("logger", LOGGERS)):
        for kind, node in kinds.items():
            store.store(group=f"schema/{group}", name=kind, node=node)


# -- checking a composed config -------------------------------------------------------------


def validate(cfg: DictConfig) -> None:
    """Raise VBenchError naming the first key whose value breaks its rule; a group option that
    declares no schema is refused too, since its keys would go unchecked."""
    for extra in sorted(set(cfg.keys()) - {f.name for f in fields(Root)} - {"hydra"}):
        raise VBenchError(f"{extra} is not a key of the config; its sections: "
                          f"{', '.join(f.name for f in fields(Root))}")
    for section in (*SECTIONS, *GROUPS):
        node = cfg.get(section)
        schema = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
        if not (schema and is_dataclass(schema)):
            raise VBenchError(f"{section}: this option declares no schema, so its keys cannot be "
                              f"checked; start its YAML with `defaults: [/schema/{section}/<kind>"
                              f"@_here_, _self_]` (kinds: {', '.join(GROUPS.get(section, {}))})")
        _check_node(node, schema, section)
    _check_relations(cfg)


def validate_sweeper(node: DictConfig) -> None:
    """hydra.sweeper of hydra/sweeper=optuna against its declaration, and its sampler's."""
    _check_node(node, OptunaSweeper, "hydra.sweeper")
    sampler = OmegaConf.get_type(node.sampler)
    if is_dataclass(sampler):
        _check_node(node.sampler, sampler, "hydra.sweeper.sampler")


def typed(cfg: DictConfig) -> "Root":
    """The composed config, checked, as the schema's dataclasses: the one place a config
    becomes typed. Entry points call it; the code below them receives the sections it needs
    (`root.dataset`, `root.model`, ...) with every default the schema's."""
    validate(cfg)
    sections = OmegaConf.masked_copy(cfg, [f.name for f in fields(Root)])  # without hydra
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Root), sections))


def from_stored(config: dict, where: str) -> "Root":
    """A run's stored config (a checkpoint's or metrics.json's `config`: resolved plain values,
    without the keys that do not decide the numbers) typed and checked as a composed one; each
    group section takes the kind whose keys it has. A value edited to break its rule is one
    line naming the key and `where` it was read from."""
    plain = {k: v for k, v in config.items() if k not in GROUPS}
    cfg = OmegaConf.merge(OmegaConf.structured(Root), plain)
    try:
        for group, kinds in GROUPS.items():
            stored = config.get(group)
            kind = next((schema for schema in kinds.values() if isinstance(stored, dict)
                         and {f.name for f in fields(schema)} == set(stored)), None)
            if kind is None:
                raise VBenchError(f"{group} holds keys {sorted(stored or {})}, which no {group} "
                                  f"schema declares")
            cfg[group] = OmegaConf.merge(OmegaConf.structured(kind), stored)
        return typed(cfg)
    except (VBenchError, OmegaConfBaseException) as e:
        raise VBenchError(f"{where}: the stored config is not valid: {str(e).splitlines()[0]}; "
                          "it was edited or written by another vbench: train the run again") from None


def _check_relations(cfg: DictConfig) -> None:
    """The rules that relate a key to another key or to the shipped options."""
    mean, std = cfg.dataset.mean, cfg.dataset.std
    if (mean is None) != (std is None) or (mean is not None and len(mean) != len(std)):
        raise VBenchError(f"dataset.mean={_show(_plain(mean))} and dataset.std="
                          f"{_show(_plain(std))} go together: give both, one value per channel, "
                          "or neither (computed from train)")
    if cfg.trainer.monitor.startswith("ema_") and cfg.trainer.ema is None:
        raise VBenchError(f"trainer.monitor={cfg.trainer.monitor} watches the EMA weights, but "
                          "trainer.ema=null keeps none; set a decay (trainer.ema=0.9998) or "
                          f"monitor {cfg.trainer.monitor.removeprefix('ema_')}")
    for entry in cfg.eval.extra:
        name = entry if isinstance(entry, str) else entry.get("name")
        if name not in option_names("dataset"):
            raise choices_error("eval.extra", name, option_names("dataset"))


def _plain(value):
    return OmegaConf.to_container(value) if isinstance(value, ListConfig) else value


def _check_node(node: DictConfig, schema: type, prefix: str) -> None:
    names = [f.name for f in fields(schema)]
    for extra in sorted(set(node.keys()) - set(names)):  # `+key=...` adds keys past Hydra's struct flag
        raise VBenchError(f"{prefix}.{extra} is not a key of {prefix} here; its keys: "
                          f"{', '.join(names)}")
    for f in fields(schema):
        value = node[f.name]  # resolves interpolations
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
        inner = _dataclass_of(f.type)
        if isinstance(value, dict) and inner:
            _check_node(node[f.name], inner, f"{prefix}.{f.name}")
            continue
        rule = f.metadata.get("rule")
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise VBenchError(f"{prefix}.{f.name}={value!r} is not valid; it must be finite")
        if rule is not None and not rule.test(value):
            raise VBenchError(f"{prefix}.{f.name}={_show(value)} is not valid; it must be "
                              f"{rule.allowed}")


def _dataclass_of(annotation):
    """The dataclass a field holds (also through Optional), else None."""
    import typing

    candidates = typing.get_args(annotation) or (annotation,)
    return next((c for c in candidates if is_dataclass(c)), None)


def _show(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):  # as typed on the command line: [curves,nope]
        return "[" + ",".join(v if isinstance(v, str) else _show(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


# -- what --help and "did you mean" read ----------------------------------------------------


def declared_keys(cfg: DictConfig) -> dict[str, Any]:
    """Every dotted key the composed config's schemas declare, with its declared type."""
    out = {}
    for section in (*SECTIONS, *GROUPS):
        node = cfg.get(section)
        schema = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
        if schema and is_dataclass(schema):
            out |= {f"{section}.{f.name}": f.type for f in fields(schema)}
    return out


def values(section) -> dict[str, Any]:
    """{key: value} of one typed section (a dataclass of this schema), in declaration order."""
    return {f.name: getattr(section, f.name) for f in fields(section)}


def docs(schema: type) -> list[tuple[str, str]]:
    """(field name, doc) of a schema dataclass, in declaration order."""
    return [(f.name, f.metadata.get("doc", "")) for f in fields(schema)]


# -- the options shipped in conf/ -----------------------------------------------------------


@functools.cache
def config_groups() -> dict[str, str | None]:
    """The config groups a user chooses from, each with its default option, in the order the
    packaged config.yaml composes them: its defaults list is their one list."""
    from importlib import resources

    text = resources.files("vbench.conf").joinpath("config.yaml").read_text()
    defaults = OmegaConf.to_container(OmegaConf.create(text).defaults)
    return {k: v for entry in defaults if isinstance(entry, dict)
            for k, v in entry.items() if not k.startswith("override")}


def option_names(group: str) -> list[str]:
    """The options of a config group as shipped in the package's conf/<group>/."""
    from importlib import resources

    folder = resources.files("vbench.conf").joinpath(group)
    return sorted(f.name.removesuffix(".yaml") for f in folder.iterdir()
                  if f.name.endswith(".yaml"))


def load_option(group: str, name: str) -> DictConfig:
    """One shipped option, typed by its schema, outside Hydra's composition (e.g. a second
    dataset inside a run, for eval.extra)."""
    from importlib import resources

    raw = OmegaConf.create(resources.files("vbench.conf").joinpath(group, f"{name}.yaml")
                           .read_text())
    kind = next(entry.split("/")[-1].split("@")[0] for entry in raw.pop("defaults")
                if entry.startswith(f"/schema/{group}/"))
    return OmegaConf.merge(OmegaConf.structured(GROUPS[group][kind]), raw)
