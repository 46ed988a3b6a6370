"""The typed schema: every key of every option declared once, and every bad command line
refused before any work with one line and exit code 2 (Hydra's own composition errors too)."""

import re
import subprocess
import sys
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers import make_cfg
from vbench.commands import cli
from vbench.core import schema

GROUP_NAMES = list(schema.GROUPS)


@pytest.mark.parametrize("group", GROUP_NAMES)
def test_every_option_of_every_group_declares_every_key(group):
    for option in schema.option_names(group):
        cfg = make_cfg(f"{group}={option}")
        node_type = OmegaConf.get_type(cfg[group])
        assert node_type in schema.GROUPS[group].values(), f"{group}={option} has no schema"
        declared = {f.name for f in fields(node_type)}
        assert set(cfg[group].keys()) == declared, f"{group}={option}"
        for f in fields(node_type):
            assert f.metadata.get("doc"), f"{group}.{f.name} ({node_type.__name__}) has no doc"
        schema.validate(cfg)  # every shipped default obeys its own rules


def test_every_logger_option_is_typed():
    for name, node_type in schema.LOGGERS.items():
        cfg = make_cfg(f"logger={name}")
        assert OmegaConf.get_type(cfg.logger[name]) is node_type
        assert all(cfg.logger[other] is None for other in schema.LOGGERS if other != name)
    schema.validate(make_cfg("logger=[tensorboard,mlflow,wandb]"))


def test_every_preset_composes_and_obeys_the_schema():
    for group in ("experiment", "regularization", "variant", "debug"):
        for option in schema.option_names(group):
            schema.validate(make_cfg(f"{group}={option}"))


def test_root_sections_are_typed_and_documented():
    cfg = make_cfg()
    assert set(cfg.keys()) == {f.name for f in fields(schema.Root)}
    for section, node_type in schema.SECTIONS.items():
        assert OmegaConf.get_type(cfg[section]) is node_type
        assert all(f.metadata.get("doc") for f in fields(node_type) if not is_dataclass(f.type))


def test_vocabularies_agree_with_the_shipped_options():
    assert set(schema.option_names("scheduler")) == set(schema.SCHEDULERS)
    assert set(schema.option_names("freeze")) == set(schema.FREEZE_POLICIES)


# -- an option YAML says only what differs from its schema ----------------------------------

CONF = Path(schema.__file__).parents[1] / "conf"
KINDS = {**schema.GROUPS, "logger": schema.LOGGERS}
_STOP = {"a", "an", "and", "as", "at", "by", "for", "from", "in", "is", "it", "its", "of", "on",
         "or", "the", "this", "to", "with"}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z0-9_]*", text.lower()) if w not in _STOP}


def _repeats(comment: str, doc: str) -> bool:
    """A piece of the doc, or most of the comment's words, or of the doc's, are the other's: a
    copy or a close paraphrase."""
    def plain(text):
        return " ".join(re.findall(r"[a-z0-9.]+", text.lower()))

    if len(plain(comment)) >= 10 and plain(comment) in plain(doc):
        return True
    c, d = _words(comment), _words(doc)
    shared = c & d
    return len(shared) >= min(3, len(d)) and len(shared) >= 0.6 * min(len(c), len(d))


def _key_comments(text: str) -> dict[str, str]:
    """{top-level key: its comment}, the comment lines indented below a key included."""
    comments, key = {}, None
    for line in text.splitlines():
        code, _, comment = line.partition("#")
        if code.strip() and not line[0].isspace():
            key = code.split(":", 1)[0].strip()
        elif not code.strip() and not line[:1].isspace():
            key = None  # a comment of the file, not of a key
        if key and comment.strip():
            comments[key] = f"{comments.get(key, '')} {comment.strip()}".strip()
    return comments


def restated(text: str, group: str) -> list[str]:
    """What an option YAML of `group` copies from its own schema kind: a value equal to the
    key's default there, or a comment on a key that repeats the key's doc."""
    raw = OmegaConf.create(text)
    kind = next((entry.split("/")[-1].split("@")[0] for entry in raw.pop("defaults", [])
                 if isinstance(entry, str) and entry.startswith(f"/schema/{group}/")), None)
    values = OmegaConf.to_container(raw)  # as written: interpolations unresolved
    if kind is None:
        return [f"sets {', '.join(values)} without a schema"] if values else []
    declared = {f.name: f for f in fields(KINDS[group][kind])}
    found = []
    for name, value in values.items():
        f = declared.get(name)
        if f is None:
            continue  # composing refuses it (test above)
        default = f.default if f.default_factory is MISSING else f.default_factory()
        if value == default and isinstance(value, bool) == isinstance(default, bool):
            found.append(f"{name}: {value} is the default of schema/{group}/{kind}")
    for name, comment in _key_comments(text).items():
        if name in declared and _repeats(comment, declared[name].metadata["doc"]):
            found.append(f"{name}: the comment {comment!r} repeats its doc")
    return found


@pytest.mark.parametrize("group", list(KINDS))
def test_option_yamls_set_only_what_differs_from_their_schema(group):
    """A default restated in YAML would silently override a new default in schema.py."""
    for path in sorted((CONF / group).glob("*.yaml")):
        found = restated(path.read_text(), group)
        assert found == [], f"{group}/{path.name}: {found}"


def test_restated_defaults_and_docs_are_caught():
    bad = ("defaults:\n  - /schema/model/cnn@_here_\n  - _self_\n"
           "arch: cnn\nname: bad\n"
           "width: 16\n"                                        # the cnn kind's default
           "depth: 3                # number of conv blocks\n"    # the doc, copied
           "kernel_size: 5          # seed 002's 5x5 kernels\n"  # a reason: fine
           "dropout: 0.5            # dropout before the output\n"
           "                        # layer, in [0, 1)\n"         # the doc, over two lines
           "batchnorm: true\n")                                  # the default again
    assert restated(bad, "model") == [
        "width: 16 is the default of schema/model/cnn",
        "batchnorm: True is the default of schema/model/cnn",
        "depth: the comment 'number of conv blocks' repeats its doc",
        "dropout: the comment 'dropout before the output layer, in [0, 1)' repeats its doc"]
    # the default is that of the option's own kind: 0.5 is step's gamma, not multistep's
    multistep = "defaults: [/schema/scheduler/multistep@_here_, _self_]\nname: multistep\n"
    assert restated(multistep + "gamma: 0.5\n", "scheduler") == []
    assert restated(multistep + "gamma: 0.1\n", "scheduler") == [
        "gamma: 0.1 is the default of schema/scheduler/multistep"]
    sgd = "defaults: [/schema/optimizer/sgd@_here_, _self_]\nname: sgd\n"
    assert restated(sgd + "momentum: 0.9  # 0.9 for SGD with momentum\n", "optimizer") == [
        "momentum: the comment '0.9 for SGD with momentum' repeats its doc"]
    assert restated("optimizer: {lr: 0.1}\n", "optimizer") == ["sets optimizer without a schema"]


# (command line, what the one line must say). Each fails before Hydra makes a run directory.
REFUSED = [
    ("trainer.epochs=abc", "trainer.epochs=abc is not valid; it must be an integer"),
    ("trainer.epochs=0", "trainer.epochs=0 is not valid; it must be an integer >= 1"),
    ("trainer.batch_size=-3", "trainer.batch_size=-3 is not valid"),
    ("trainer.label_smoothing=1", ("trainer.label_smoothing=1.0 is not valid; it must be a "
                                  "number in [0, 1)")),
    ("trainer.resume=maybe", ("trainer.resume='maybe' is not valid; it must be one of: auto, "
                             "true, false")),
    ("trainer.resume=1", "trainer.resume=1 is not valid"),
    ("trainer.device=tpu", "trainer.device='tpu' is not valid"),
    ("trainer.precision=64", "trainer.precision='64' is not valid"),
    ("trainer.monitor=val_f1", "trainer.monitor='val_f1' is not valid"),
    ("trainer.grad_clip=0", "trainer.grad_clip=0.0 is not valid; it must be a number > 0"),
    ("trainer.ema=1", "trainer.ema=1.0 is not valid; it must be a number in (0, 1)"),
    ("trainer.monitor=ema_val_acc", ("trainer.monitor=ema_val_acc watches the EMA weights, but "
                                     "trainer.ema=null keeps none")),
    ("trainer.mixup=-0.2", "trainer.mixup=-0.2 is not valid; it must be a number >= 0"),
    ("trainer.cutmix=abc", "trainer.cutmix=abc is not valid; it must be a number"),
    ("trainer.mixup_prob=1.5", "trainer.mixup_prob=1.5 is not valid; it must be a number in [0, 1]"),
    ("dataset.auto_augment=augmix", ("dataset.auto_augment='augmix' is not valid; it must be one "
                                     "of: none, randaugment, trivialaugment")),
    ("dataset.randaugment_magnitude=31", ("dataset.randaugment_magnitude=31 is not valid; it must "
                                          "be an integer from 0 to 30")),
    ("dataset.random_erasing=2", "dataset.random_erasing=2.0 is not valid"),
    ("optimizer.lr=-1", "optimizer.lr=-1.0 is not valid; it must be a number > 0"),
    ("optimizer.lr=nan", "optimizer.lr=nan is not valid; it must be finite"),
    ("optimizer.lr=inf", "optimizer.lr=inf is not valid; it must be finite"),
    ("optimizer=sgd optimizer.momentum=1.5", "optimizer.momentum=1.5 is not valid"),
    ("dataset.split_seed=abc", "dataset.split_seed=abc is not valid; it must be an integer"),
    ("dataset.val_size=0", ("dataset.val_size=0 is not valid; it must be a fraction in (0, 1) "
                           "or a count >= 1")),
    ("dataset.val_size=abc", "dataset.val_size='abc' is not valid"),
    ("dataset.subset_per_class=0", "dataset.subset_per_class=0 is not valid"),
    ("dataset.augment=mixup", "dataset.augment='mixup' is not valid; it must be one of: none"),
    ("dataset.mean=[0.5]", "dataset.mean=[0.5] and dataset.std=null go together"),
    ("dataset.mean=[2.0] dataset.std=[1.0]", "dataset.mean=[2.0] is not valid"),
    ("dataset=fake dataset.image_size=0", "dataset.image_size=0 is not valid"),
    ("dataset=imagefolder dataset.image_size=0", "dataset.image_size=0 is not valid"),
    ("dataset=fake dataset.num_classes=1", ("dataset.num_classes=1 is not valid; it must be an "
                                           "integer >= 2")),
    ("dataset=fake dataset.in_channels=2", ("dataset.in_channels=2 is not valid; it must be one "
                                           "of: 1, 3")),
    ("scheduler=step scheduler.gamma=abc", ("scheduler.gamma=abc is not valid; it must be a "
                                           "number")),
    ("scheduler=step scheduler.gamma=-1", ("scheduler.gamma=-1.0 is not valid; it must be a "
                                          "number in (0, 1]")),
    ("scheduler=step scheduler.step_size=0", "scheduler.step_size=0 is not valid"),
    ("scheduler=step scheduler.step_size=-2", "scheduler.step_size=-2 is not valid"),
    ("scheduler=multistep scheduler.milestones=abc", ("scheduler.milestones=abc is not valid; it "
                                                     "must be a list of integers")),
    ("scheduler=multistep scheduler.milestones=[]", "scheduler.milestones=[] is not valid"),
    ("scheduler=onecycle scheduler.pct_start=0", "scheduler.pct_start=0.0 is not valid"),
    ("model.depth=0", "model.depth=0 is not valid"),
    ("model.widths=[64,0]", "model.widths=[64,0] is not valid"),
    ("model.activation=relux", "model.activation='relux' is not valid; it must be one of: relu"),
    ("model.batchnorm=maybe", "model.batchnorm=maybe is not valid; it must be true or false"),
    ("model=cnn model.kernel_size=4", ("model.kernel_size=4 is not valid; it must be an odd "
                                      "integer >= 1")),
    ("model=resnet18 model.input_size=0", "model.input_size=0 is not valid"),
    ("model=logreg model.C=0", "model.C=0.0 is not valid"),
    ("eval.plots=[curves,nope]", ("eval.plots=[curves,nope] is not valid; it must be a list, "
                                 "each item one of: curves")),
    ("eval.shift_pixels=[-1]", "eval.shift_pixels=[-1] is not valid"),
    ("eval.extra=[nope]", "eval.extra='nope' is not valid; choose one of: cifar10"),
    # keys the chosen option does not declare, added with + or not
    ("+model._target_=x", "model._target_ is not a key of model here; its keys: arch, name"),
    ("+scheduler.foo=1", "scheduler.foo is not a key of scheduler here; its keys: name, eta_min"),
    ("+scheduler._target_=os.system", "scheduler._target_ is not a key of scheduler here"),
    ("+optimizer.bogus=1", "optimizer.bogus is not a key of optimizer here"),
    ("+foo=1", "foo is not a key of the config"),
    ("model=torchvision model.depth=3", ("model.depth is not a key of this config; options of "
                                        "kind mlp, cnn have it (keys of model here: arch")),
    ("trainer.epoch=3", ("trainer.epoch is not a key of this config; did you mean "
                        "trainer.epochs?")),
    ("model=cnn model.widht=3", "did you mean model.width?"),
    # options, sweeps and files
    ("model=nope", "model=nope is not an option (choose one of: alexnet, cnn"),
    ("model=mpl", "model=mpl is not an option; did you mean model=mlp?"),
    ("dataset=cifar", "dataset=cifar is not an option; did you mean dataset=cifar10?"),
    ("model.depth=1,2", "model.depth=1,2 lists several values: add -m to sweep them"),
    ("-m model.depth=1,0", "model.depth=0 is not valid"),
    ("-m experiment=fmnist_depth model.width=0", "model.width=0 is not valid"),
    ("--config-dir /nonexistent/conf", "--config-dir=/nonexistent/conf: no such directory"),
    ("--cfg job trainer.epochs=0", "trainer.epochs=0 is not valid"),
    ("model.depth=[", "cannot parse the overrides"),
]


@pytest.mark.parametrize("line,says", REFUSED, ids=[r[0] for r in REFUSED])
def test_bad_command_line_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, line, says):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["vbench", *line.split()])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("vbench: error: ") and err.count("\n") == 1, err
    assert says in err, err
    assert not any(tmp_path.iterdir())  # no run directory, no metrics.json


def test_yaml_syntax_error_in_a_config_dir_names_file_and_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "conf/model").mkdir(parents=True)
    (tmp_path / "conf/model/broken.yaml").write_text("arch: mlp\nname: [oops\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["vbench", "--config-dir", "conf", "model=broken"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert "broken.yaml, line 3: YAML syntax error" in err


def test_a_config_dir_option_without_schema_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "conf/model").mkdir(parents=True)
    (tmp_path / "conf/model/loose.yaml").write_text("arch: mlp\nname: loose\ndepth: 2\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["vbench", "--config-dir", "conf", "model=loose"])
    with pytest.raises(SystemExit):
        cli.main()
    assert "model: this option declares no schema" in capsys.readouterr().err


def test_help_shows_groups_and_every_key_of_the_chosen_options(tmp_path):
    vbench = Path(sys.executable).with_name("vbench")
    out = subprocess.run([str(vbench), "model=cnn", "--help"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert "model: alexnet, [cnn], convnet" in out and "variant: " in out
    assert "fmnist_depth" in out and "b0_mlp" not in out  # variant arms are only counted
    for key, doc in [("trainer.epochs=30", "maximum number of passes"),
                     ("model.kernel_size=3", "conv kernel size"),
                     ("dataset.val_size=0.1", "val split carved")]:
        line = next(line for line in out.splitlines() if key in line)
        assert doc in line
    version = subprocess.run([str(vbench), "--version"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    assert version.startswith("vbench ") and "torch " in version and "hydra-core " in version
