"""First contact (issue 31): what a new user meets first is said in one line, before any work:
a torchvision that does not load with this torch, and a sweep's missing weights and data."""

import os

from helpers import vbench


def _broken_torchvision(tmp_path) -> dict:
    """An environment whose `import torchvision` fails as a torchvision built for another
    torch does: at its first operator."""
    fake = tmp_path / "fake/torchvision"
    fake.mkdir(parents=True, exist_ok=True)
    (fake / "__init__.py").write_text(
        'raise RuntimeError("operator torchvision::nms does not exist")\n')
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "fake"),
                                                        os.environ.get("PYTHONPATH")]))}


def test_version_says_torchvision_does_not_load_with_this_torch(tmp_path):
    done = vbench("--version", cwd=tmp_path, env=_broken_torchvision(tmp_path))
    assert done.returncode == 2
    assert done.stdout.startswith("vbench ") and "torchvision" in done.stdout
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("vbench: error: torchvision ")
    assert "does not load with torch" in done.stderr and "torchvision::nms" in done.stderr
    assert "pip install" in done.stderr


def test_a_run_that_needs_torchvision_stops_before_any_work(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    done = vbench("model=resnet18", "debug=smoke", cwd=work, env=_broken_torchvision(tmp_path))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "does not load with torch" in done.stderr
    assert not list(work.iterdir())  # no outputs/
    # A run that does not need torchvision is not held back by it.
    fine = vbench("debug=smoke", "eval.plots=[]", "hydra.run.dir=run", cwd=work,
                  env=_broken_torchvision(tmp_path))
    assert fine.returncode == 0, fine.stderr


def test_a_sweep_lists_every_missing_file_once_before_its_first_job(tmp_path):
    """The ResNet-18 freeze study without weights and data: one message naming the weights
    file and the data folder once each, though six jobs need them; nothing is written."""
    env = {"TORCH_HOME": str(tmp_path / "torch"), "VBENCH_DATA": str(tmp_path / "data")}
    work = tmp_path / "work"
    work.mkdir()
    done = vbench("-m", "experiment=cifar_resnet18_freeze", cwd=work, env=env)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.count("resnet18-f37072fd.pth") == 2  # the expected path and its URL
    assert done.stderr.count("cifar-10-batches-py") == 2  # where it looked, and the fix
    assert "(1) " in done.stderr and "(2) " in done.stderr and "(3) " not in done.stderr
    assert not list(work.iterdir())
    # Arms that differ in the model: each missing weights file once, with the data.
    mixed = vbench("-m", "experiment=cifar_mlp_vs_cnn", cwd=work, env=env)
    assert mixed.returncode == 2 and mixed.stderr.count("\n") == 1, mixed.stderr
    assert mixed.stderr.count("data not found") == 1
    assert not list(work.iterdir())


def test_a_sweep_with_a_fixed_key_of_a_swept_option_composes(tmp_path):
    """`-m model=resnet18,vgg16 model.pretrained=true`: the fixed key belongs to the swept
    models (the default mlp has no pretrained), so it is checked on each job, not on mlp."""
    env = {"TORCH_HOME": str(tmp_path / "torch")}
    done = vbench("-m", "model=resnet18,vgg16", "model.pretrained=true", "debug=smoke",
                  cwd=tmp_path, env=env)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "not a key" not in done.stderr
    assert "resnet18-f37072fd.pth" in done.stderr and "vgg16-397923af.pth" in done.stderr
