"""The promise of a run directory under what a machine can do: one writer, kills at any point
resumed to the uninterrupted numbers, files that would run code never read, a full disk said
in one line. Every test here starts the installed `vbench` as a user would."""

import json
import os
import pickle
import shlex
import signal
import subprocess
from pathlib import Path

import pytest

from helpers import VBENCH, Started, start_paused, vbench
from helpers.formats import write_cifar10, write_mnist
from vbench.core.rundir import wait_for_figures

# A wide MLP with Adam: checkpoints of some size; kills land at pause points (start()).
WIDE = ["model.width=1024", "model.depth=3", "trainer.epochs=6", "eval.plots=[]",
        "trainer.device=cpu", "trainer.precision=32"]


def start(*args, cwd, at: str) -> Started:
    """A run that waits at the pause point `at` (vbench/core/pause.py) until it is signalled."""
    return start_paused([str(VBENCH), *args], at, cwd)


def results(run_dir: Path) -> tuple[dict, list[str]]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    kept = {k: metrics[k] for k in ("status", "epochs_run", "best_epoch", "best", "final",
                                    "per_class_accuracy", "params")}
    history = [line.rsplit(",", 1)[0] for line in (run_dir / "history.csv").read_text()
               .splitlines()]  # without epoch_s, the time
    return kept, history


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("whole")
    done = vbench(*WIDE, "hydra.run.dir=run", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return results(cwd / "run")


# Where a SIGKILL lands: before any checkpoint exists, after a middle epoch's files, and
# halfway through writing a checkpoint (its temp file written, not yet renamed).
KILL_POINTS = {"in_epoch_1": "start", "in_a_middle_epoch": "epoch:3",
               "during_a_checkpoint_write": "checkpoint-write"}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_anywhere_then_resume_gives_the_uninterrupted_numbers(tmp_path, uninterrupted,
                                                                       point):
    run_dir = tmp_path / "run"
    with start(*WIDE, "hydra.run.dir=run", cwd=tmp_path, at=KILL_POINTS[point]) as paused:
        paused.proc.send_signal(signal.SIGKILL)
        paused.proc.wait()
    assert not (run_dir / "metrics.json").exists()  # died mid-run: nothing claims completion

    again = vbench(*WIDE, "hydra.run.dir=run", cwd=tmp_path)  # the same command: resume=auto
    assert again.returncode == 0, again.stderr
    assert results(run_dir) == uninterrupted
    assert not list(run_dir.rglob("*.tmp"))  # a killed write's temp file is gone


def test_a_second_process_into_the_same_run_dir_stops_at_once(tmp_path):
    with start(*WIDE, "hydra.run.dir=run", cwd=tmp_path, at="epoch:1") as first:
        config_before = (tmp_path / "run/.hydra/config.yaml").read_text()
        # the first waits forever: a second that waited for the lock would time out here
        second = vbench("debug=smoke", "hydra.run.dir=run", cwd=tmp_path, timeout=300)
        assert second.returncode == 2
        assert second.stderr == (f"vbench: error: {tmp_path / 'run'} is in use by another vbench "
                                 f"process (pid {first.proc.pid}); wait for it to end, or "
                                 "choose another hydra.run.dir\n")
        assert (tmp_path / "run/.hydra/config.yaml").read_text() == config_before


def test_a_finished_run_of_another_config_is_refused_and_left_as_it_was(tmp_path):
    assert vbench("debug=smoke", "hydra.run.dir=run", cwd=tmp_path).returncode == 0
    wait_for_figures(tmp_path / "run")
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()
              and p.name != ".lock"}
    other = vbench("debug=smoke", "model.depth=3", "hydra.run.dir=run", cwd=tmp_path)
    assert other.returncode == 2 and other.stderr.count("\n") == 1
    assert "holds a finished run of another config (differs in model.depth)" in other.stderr
    assert {p: p.read_bytes() for p in before} == before
    bad = vbench("debug=smoke", "trainer.epochs=0", "hydra.run.dir=run", cwd=tmp_path)
    assert bad.returncode == 2 and "trainer.epochs=0 is not valid" in bad.stderr


def test_an_interrupt_before_the_first_checkpoint_prints_a_command_that_works(tmp_path):
    # batches of 2: the first epoch lasts far longer than the start-up
    with start(*WIDE, "trainer.epochs=1", "hydra.run.dir=my run", cwd=tmp_path, at="start") as paused:
        paused.proc.send_signal(signal.SIGTERM)
        code, message = paused.finish()
    assert code == 130, message
    assert not (tmp_path / "my run/checkpoints/last.pt").exists()
    command = shlex.split(message.split("continue with: ", 1)[1])
    assert command[0] == "vbench"
    continued = vbench(*command[1:], cwd=tmp_path)
    assert continued.returncode == 0, continued.stderr
    assert json.loads((tmp_path / "my run/metrics.json").read_text())["status"] == "completed"


class _Creates:
    """A pickle that, if unpickled by pickle.load, would create a file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.path))}",))


def test_a_crafted_cifar_batch_never_runs_its_code(tmp_path):
    write_cifar10(tmp_path / "data")
    planted = tmp_path / "planted"
    batch = tmp_path / "data/cifar-10-batches-py/data_batch_1"
    batch.write_bytes(pickle.dumps({"data": _Creates(planted), "labels": [0]}, protocol=2))
    result = vbench("dataset=cifar10", f"dataset.root={tmp_path / 'data'}", "debug=smoke",
                    "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"{batch} is not a CIFAR batch file: it names posix.system" in result.stderr
    assert not planted.exists()


@pytest.mark.parametrize("content", ["pickle_with_code", "random_bytes", "truncated",
                                     "bad_safetensors"])
def test_unreadable_weights_are_one_line_and_never_run_code(tmp_path, content):
    import torch

    planted = tmp_path / "planted"
    path = tmp_path / ("w.safetensors" if content == "bad_safetensors" else "w.pt")
    if content == "pickle_with_code":
        path.write_bytes(pickle.dumps({"model": _Creates(planted)}))
    elif content == "random_bytes":
        path.write_bytes(os.urandom(4096))
    elif content == "truncated":
        torch.save({"w": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:500])
    else:
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    from vbench.core.errors import VBenchError
    from vbench.models.zoo import load_weights

    with pytest.raises(VBenchError) as err:
        load_weights(torch.nn.Linear(2, 2), path)
    text = str(err.value)
    assert text.startswith(f"model.weights={path}: cannot read it") and "\n" not in text
    assert "weights_only" not in text  # never torch's advice to load it unsafely
    assert not planted.exists()


def test_unreadable_weights_through_the_cli(tmp_path):
    (tmp_path / "w.pt").write_bytes(os.urandom(4096))
    result = vbench("model=timm", "model.name=resnet10t", f"model.weights={tmp_path / 'w.pt'}",
                    "debug=smoke", "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"vbench: error: model.weights={tmp_path / 'w.pt'}: cannot "
                                    "read it: it is not a torch weights file")


def test_an_output_path_under_a_regular_file_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("")
    result = vbench("debug=smoke", "hydra.run.dir=afile/run", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"{tmp_path / 'afile/run'}: Not a directory" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_is_one_line_and_the_run_says_failed(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        result = vbench(*WIDE, "trainer.epochs=1", f"hydra.run.dir={disk}/run", cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "cannot write" in result.stderr and "No space left on device" in result.stderr
        metrics = json.loads((disk / "run/metrics.json").read_text())
        assert metrics["status"] == "failed" and "No space left on device" in metrics["error"]
        assert not list(disk.rglob("*.tmp"))
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.slow
def test_the_readme_subset_sweep_runs(tmp_path):
    """`vbench -m experiment=fmnist_depth trainer.epochs=5 dataset.subset_per_class=500`: the
    default val share (5,000 of 60,000) of whatever pool the files give, not a count."""
    write_mnist(tmp_path / "data", folder="FashionMNIST", train=12000, test=100)
    result = vbench("-m", "experiment=fmnist_depth", "trainer.epochs=5",
                    "dataset.subset_per_class=500", f"dataset.root={tmp_path / 'data'}",
                    "model.depth=1,2", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for metrics in (tmp_path / "sweep").glob("*/metrics.json"):
        sizes = json.loads(metrics.read_text())["sizes"]
        assert sizes["val"] == round(5000 * 5000 / 60000) == 417  # the README's figure
        assert sizes["train"] == 5000 - sizes["val"]


def test_every_dataset_accepts_a_root(tmp_path):
    for dataset in ("digits", "fake", "mnist"):
        result = vbench(f"dataset={dataset}", f"dataset.root={tmp_path}", "--cfg", "job",
                        cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"root: {tmp_path}" in result.stdout


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_every_file_of_a_run_honours_the_umask(tmp_path, umask):
    """Colleagues on a shared cluster read a run: 0644 under umask 022 (mkstemp gave 0600)."""
    done = subprocess.run(["sh", "-c", f"umask {umask:03o} && exec \"$0\" \"$@\"", str(VBENCH),
                           "debug=smoke", "eval.plots=[curves]", "hydra.run.dir=run"],
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    run = tmp_path / "run"
    wait_for_figures(run)  # drawn in the background
    written = [p for p in run.rglob("*") if p.is_file() and p.name != ".lock"]
    names = {p.relative_to(run).as_posix() for p in written}
    assert {"metrics.json", "history.csv", "model_card.md", "checkpoints/best.pt",
            "checkpoints/last.pt", "plots/curves.png", "vbench.log"} <= names
    assert {p.relative_to(run).as_posix(): oct(p.stat().st_mode & 0o777) for p in written} == \
        {name: oct(0o666 & ~umask) for name in names}


def test_a_run_dir_that_interpolates_the_time_is_one_directory(tmp_path):
    """hydra.run.dir=out/${now:...}: the lock and the run land in the same directory (the
    time was resolved twice, leaving a second directory holding only .lock)."""
    done = vbench("debug=smoke", "eval.plots=[]", "hydra.run.dir=out/${now:%H-%M-%S-%f}",
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run,) = (tmp_path / "out").iterdir()
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"


def test_a_long_run_name_is_cut_like_an_automatic_name(tmp_path):
    done = vbench("debug=smoke", "eval.plots=[]", f"run.name={'x' * 300}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run,) = (tmp_path / "outputs/runs").iterdir()
    name = run.name.split("_", 2)[2]  # after the date and time
    assert len(name) == 60 and name.startswith("x" * 53)
    assert json.loads((run / "metrics.json").read_text())["name"] == "x" * 300


def test_missing_data_is_refused_without_a_run_directory(tmp_path):
    done = vbench("dataset=mnist", f"dataset.root={tmp_path / 'none'}", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "dataset=mnist: data not found" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # not even an empty outputs/runs/
    (tmp_path / "outputs").mkdir()  # a folder that was there before stays
    again = vbench("dataset=mnist", f"dataset.root={tmp_path / 'none'}", cwd=tmp_path)
    assert again.returncode == 2
    assert [p.name for p in tmp_path.rglob("*")] == ["outputs"]
