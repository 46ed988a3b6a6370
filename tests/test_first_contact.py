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


def test_parallel_jobs_label_their_lines_and_seed_jobs_are_named_by_their_seed(tmp_path):
    done = vbench("-m", "debug=smoke", "eval.plots=[]", "trainer.epochs=2",
                  "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "trainer.seed=0,1",
                  "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    epoch_lines = [line for line in done.stdout.splitlines() if "train_loss" in line]
    assert len(epoch_lines) == 4, done.stdout  # 2 jobs x 2 epochs
    assert all(line.startswith(("[job 0] ", "[job 1] ")) for line in epoch_lines)
    jobs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert [job.split(",")[-1] for job in jobs] == ["trainer.seed=0", "trainer.seed=1"]
    summary = (tmp_path / "sweep/summary.md").read_text()
    assert all(f"| {job} |" in summary for job in jobs)  # not `0_`


def test_an_interrupted_runs_log_ends_with_the_continue_command(tmp_path):
    import signal

    from helpers import VBENCH, start_paused

    with start_paused([str(VBENCH), "debug=smoke", "trainer.epochs=5", "eval.plots=[]",
                       "hydra.run.dir=run"], "epoch:1", tmp_path) as paused:
        paused.proc.send_signal(signal.SIGTERM)
        code, rest = paused.finish()
    assert code == 130, rest
    log = (tmp_path / "run/vbench.log").read_text().splitlines()
    assert log[-2] == "vbench: interrupted (SIGTERM)"
    assert log[-1].startswith("vbench: continue with: vbench ") and "hydra.run.dir=" in log[-1]


def test_the_tools_expand_a_quoted_tilde(tmp_path):
    """`vbench-eval '~/runs/t1'`: the shell leaves a quoted ~ alone, as it does in
    dataset.root=~/photos, which vbench expands; the tools expand it too."""
    from helpers import VBENCH

    home = tmp_path / "home"
    (home / "runs").mkdir(parents=True)
    trained = vbench("debug=smoke", "eval.plots=[]", f"hydra.run.dir={home / 'runs/t1'}",
                     cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    for tool, extra in (("vbench-eval", []), ("vbench-export", ["--format", "safetensors"])):
        done = vbench("~/runs/t1", *extra, cwd=tmp_path, env={"HOME": str(home)},
                      program=VBENCH.with_name(tool))
        assert done.returncode == 0, done.stderr
    assert (home / "runs/t1/eval/digits_test/metrics.json").is_file()
    assert (home / "runs/t1/export/model.safetensors").is_file()


def test_eval_of_a_cut_off_checkpoint_never_advises_deleting_it(tmp_path):
    from helpers import VBENCH

    trained = vbench("debug=smoke", "eval.plots=[]", "hydra.run.dir=run", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    best = tmp_path / "run/checkpoints/best.pt"
    best.write_bytes(best.read_bytes()[:1000])
    done = vbench("run", cwd=tmp_path, program=VBENCH.with_name("vbench-eval"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "cannot be read" in done.stderr and "delete" not in done.stderr
