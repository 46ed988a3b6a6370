"""Using a trained run: self-contained checkpoints, vbench-eval, vbench-predict, vbench-export,
model_card.md. Tiny real digits runs (smoke subsets, one epoch), trained once per module."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_cfg
from vbench.commands.use import eval_main, evaluate_run, export_main, predict_main
from vbench.training.run import run

SMOKE = ["debug=smoke"]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{name: run dir} of tiny digits runs: an MLP (2 epochs, so best may differ from final), a
    CNN, and the two scikit-learn baselines (logreg stored as arrays, the forest refitted)."""
    root = tmp_path_factory.mktemp("runs")
    recipes = {"mlp": ["model=mlp", "trainer.epochs=2"], "cnn": ["model=cnn"],
               "logreg": ["model=logreg", "model.max_iter=50"],
               "random_forest": ["model=random_forest", "model.n_estimators=20"]}
    for name, overrides in recipes.items():
        run(make_cfg(*SMOKE, *overrides), root / name)
    return {name: root / name for name in recipes}


def _tool(name: str, *args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / name), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, check=False)


def test_checkpoints_are_self_contained(runs):
    for file in ("best.pt", "last.pt"):
        state = torch.load(runs["mlp"] / "checkpoints" / file, weights_only=True)
        assert state["classes"] == [str(d) for d in range(10)]
        assert state["input"] == {"channels": 1, "size": [8, 8], "num_classes": 10}
        assert len(state["mean"]) == len(state["std"]) == 1 and state["std"][0] > 0
        assert state["config"]["model"]["name"] == "mlp" and state["vbench_version"]


@pytest.mark.parametrize("name", ["mlp", "cnn", "logreg", "random_forest"])
def test_eval_reproduces_best_test_exactly(runs, name):
    results = evaluate_run(runs[name], [])
    best = json.loads((runs[name] / "metrics.json").read_text())["best"]
    assert results == best  # val and test, to the last bit
    on_disk = json.loads((runs[name] / "eval/digits_test/metrics.json").read_text())
    assert on_disk == best["test"]
    assert (runs[name] / "eval/digits_test/confusion.png").stat().st_size > 5000
    assert "## vbench-eval: best checkpoint on digits" in (runs[name] / "model_card.md").read_text()


def test_eval_final_checkpoint_reproduces_final(runs):
    results = evaluate_run(runs["mlp"], [], "final")
    assert results == json.loads((runs["mlp"] / "metrics.json").read_text())["final"]


def test_eval_on_another_dataset_of_the_same_shape(runs):
    eval_main([str(runs["cnn"]), "dataset=fake", "dataset.image_size=8",
               "dataset.in_channels=1", "dataset.subset_per_class=20"])
    metrics = json.loads((runs["cnn"] / "eval/fake_test/metrics.json").read_text())
    assert set(metrics) == {"loss", "accuracy", "macro_f1", "weighted_f1"}
    assert (runs["cnn"] / "eval/fake_test/confusion.png").exists()
    assert "another dataset" in (runs["cnn"] / "model_card.md").read_text()


def test_eval_refuses_another_shape_and_model_overrides(runs, capsys):
    for overrides in (["dataset=fake", "dataset.subset_per_class=20"], ["model.width=4"]):
        with pytest.raises(SystemExit) as stop:
            eval_main([str(runs["mlp"]), *overrides])
        assert stop.value.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_model_card(runs):
    card = (runs["mlp"] / "model_card.md").read_text()
    assert "| accuracy |" in card and "best val" in card and "Per-class test accuracy" in card
    assert "vbench" in card.split("## Reproduce")[1] and "torch" in card.split("## Versions")[1]


def _write_images(folder: Path) -> list[Path]:
    """Mixed sizes, grey and RGB, PNG and JPEG, and one file that is not an image."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    shapes = [(8, 8), (30, 20), (8, 8, 3), (64, 48, 3)]
    paths = []
    for i, shape in enumerate(shapes):
        path = folder / f"img{i}.{'jpg' if i == 3 else 'png'}"
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
        paths.append(path)
    (folder / "broken.png").write_bytes(b"this is not a PNG")
    return paths


def test_predict_folder_through_the_console_script(runs, tmp_path):
    images = _write_images(tmp_path / "images")
    done = _tool("vbench-predict", runs["cnn"], tmp_path / "images", "--top-k", "2",
                 "--csv", tmp_path / "out.csv")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 5
    broken = [line for line in lines if "broken.png" in line]
    assert len(broken) == 1 and "not an image" in broken[0]
    for path, line in zip(images, [line for line in lines if "broken" not in line]):
        parts = line.split()
        assert parts[0] == str(path) and len(parts) == 5
        assert parts[1] in [str(d) for d in range(10)] and 0 < float(parts[2]) <= 1
    csv_lines = (tmp_path / "out.csv").read_text().splitlines()
    assert csv_lines[0] == "path,class_1,probability_1,class_2,probability_2,error"
    assert len(csv_lines) == 6


def test_predict_json_with_a_baseline(runs, tmp_path, capsys):
    image = _write_images(tmp_path / "images")[2]  # RGB, for a grey model
    predict_main([str(runs["logreg"]), str(image), "--json", "--top-k", "10"])
    row = json.loads(capsys.readouterr().out)
    assert row["error"] is None and abs(sum(t["probability"] for t in row["top"]) - 1) < 1e-5


def test_predict_matches_the_model_on_the_test_images(runs, tmp_path):
    """A test image written as PNG and predicted gets the class the run's model gives it."""
    from vbench.data import load_data
    from vbench.inference.predict import predict_files
    from vbench.training.checkpoint import load_run_model

    loaded = load_run_model(runs["cnn"])
    data = load_data(loaded.cfg.dataset, torch.device("cpu"))
    pixels = data.test.uint8(slice(0, 20))
    paths = []
    for i, image in enumerate(pixels):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image[0].numpy()).save(paths[-1])
    got = [p.top[0][0] for p in predict_files(loaded, paths, 1, 8, torch.device("cpu"))]
    with torch.no_grad():
        expected = loaded.model(data.test.inputs(pixels)).argmax(1).tolist()
    assert got == [loaded.classes[i] for i in expected]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_export_with_parity(runs, tmp_path, fmt, capsys):
    out = tmp_path / f"model.{fmt}"
    export_main([str(runs["cnn"]), "--format", fmt, "--out", str(out)])
    line = capsys.readouterr().out
    assert "max |logit difference|" in line and float(line.split(": ")[1].split()[0]) <= 1e-3
    classes = [str(d) for d in range(10)]
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    if fmt == "onnx":
        import onnx
        import onnxruntime

        meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        assert json.loads(meta["classes"]) == classes
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        assert session.run(None, {"images": images.numpy()})[0].shape == (4, 10)
    elif fmt == "torchscript":
        assert torch.jit.load(str(out))(images).shape == (4, 10)
        assert json.loads(Path(f"{out}.json").read_text())["classes"] == classes
    else:
        from safetensors.torch import load_file

        assert {"mean", "std"} <= set(load_file(str(out)))
        assert json.loads(Path(f"{out}.json").read_text())["classes"] == classes


def _exits_with_one_line(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        main(list(map(str, argv)))
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error" in err
    return err


def test_export_refuses_a_baseline(runs, capsys):
    _exits_with_one_line(export_main, [runs["logreg"], "--format", "torchscript"], capsys)


def test_not_a_run_or_no_checkpoint_is_one_line(runs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    image = _write_images(tmp_path / "images")[0]
    done = _tool("vbench-predict", tmp_path / "empty", image)  # through the console script
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    _exits_with_one_line(eval_main, [tmp_path / "empty"], capsys)
    no_last = tmp_path / "copy"
    (no_last / "checkpoints").mkdir(parents=True)
    (no_last / "metrics.json").write_text((runs["mlp"] / "metrics.json").read_text())
    _exits_with_one_line(eval_main, [no_last, "--checkpoint", "final"], capsys)
    _exits_with_one_line(predict_main, [no_last, image], capsys)


@pytest.mark.slow
@pytest.mark.parametrize("model", [["model=torchvision", "model.name=resnet18"],
                                   ["model=timm", "model.name=resnet10t"]])
def test_library_models_eval_and_export(tmp_path, model, capsys):
    run_dir = tmp_path / "run"
    run(make_cfg(*SMOKE, *model, "model.input_size=32"), run_dir)
    results = evaluate_run(run_dir, [])
    assert results == json.loads((run_dir / "metrics.json").read_text())["best"]
    export_main([str(run_dir), "--format", "onnx", "--out", str(tmp_path / "m.onnx")])
    assert "max |logit difference|" in capsys.readouterr().out


@pytest.mark.slow
def test_readme_commands(tmp_path, monkeypatch):
    """Every command of the README's "Use a trained model" block, as written, in a fresh dir:
    the training through the console script, the three tools in-process (their mains, same argv)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("## Use a trained model")[1].split("```bash")[1].split("```")[0]
    _write_images(tmp_path / "photos")
    monkeypatch.chdir(tmp_path)
    mains = {"vbench-eval": eval_main, "vbench-predict": predict_main,
             "vbench-export": export_main}
    for command in block.strip().splitlines():
        tool, *args = command.split()
        if tool == "vbench":
            done = _tool(tool, *args, cwd=tmp_path)
            assert done.returncode == 0, f"{command}: {done.stderr}"
        else:
            mains[tool](args)  # a failure raises SystemExit(2)
    run_dir = tmp_path / "outputs/runs/digits_cnn"
    assert (run_dir / "eval/fake_test/metrics.json").exists()
    assert (tmp_path / "predictions.csv").exists() and (tmp_path / "digits_cnn.pt").exists()
    assert (run_dir / "export/model.onnx").exists()
    assert "vbench debug=smoke model=cnn" in (run_dir / "model_card.md").read_text()


def test_onnx_without_the_extra_names_it(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    err = _exits_with_one_line(export_main, [runs["mlp"], "--format", "onnx", "--out",
                                             tmp_path / "m.onnx"], capsys)
    assert "vbench[export]" in err
    assert not (tmp_path / "m.onnx").exists()
