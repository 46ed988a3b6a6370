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

from helpers import make_cfg
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
    metrics = json.loads((runs[name] / "metrics.json").read_text())
    assert results == metrics["best"]  # val and test, to the last bit
    on_disk = json.loads((runs[name] / "eval/digits_test/metrics.json").read_text())
    # which checkpoint, and its epoch as the checkpoint file records it
    assert on_disk == {**metrics["best"]["test"], "checkpoint": "best",
                       "epoch": metrics["best_epoch"]}
    assert (runs[name] / "eval/digits_test/confusion.png").stat().st_size > 5000
    card = (runs[name] / "model_card.md").read_text()
    assert "## vbench-eval: best checkpoint on digits" in card
    assert f"The best checkpoint, saved at epoch {metrics['best_epoch']}." in card


def test_eval_final_checkpoint_reproduces_final_in_its_own_folder(runs):
    evaluate_run(runs["mlp"], [])
    best_file = runs["mlp"] / "eval/digits_test/metrics.json"
    best_text = best_file.read_text()
    results = evaluate_run(runs["mlp"], [], "final")
    metrics = json.loads((runs["mlp"] / "metrics.json").read_text())
    assert results == metrics["final"]
    assert best_file.read_text() == best_text  # the best checkpoint's folder is left alone
    final = json.loads((runs["mlp"] / "eval/digits_test_final/metrics.json").read_text())
    assert final == {**metrics["final"]["test"], "checkpoint": "final",
                     "epoch": metrics["epochs_run"]}
    assert (runs["mlp"] / "eval/digits_val_final/confusion.png").exists()
    assert (f"The final checkpoint, saved at epoch {metrics['epochs_run']}."
            in (runs["mlp"] / "model_card.md").read_text())


def test_eval_on_another_dataset_of_the_same_shape(runs):
    eval_main([str(runs["cnn"]), "dataset=fake", "dataset.image_size=8",
               "dataset.in_channels=1", "dataset.subset_per_class=20"])
    metrics = json.loads((runs["cnn"] / "eval/fake_test/metrics.json").read_text())
    assert set(metrics) == {"loss", "accuracy", "macro_f1", "weighted_f1", "checkpoint", "epoch"}
    assert (runs["cnn"] / "eval/fake_test/confusion.png").exists()
    card = (runs["cnn"] / "model_card.md").read_text()
    # The dataset and its overrides in words, not a Python dict.
    assert "## vbench-eval: best checkpoint on fake, another dataset (trained on digits)\n" in card
    assert ("evaluated on fake with image size 8, in channels 1 and subset per class 20 "
            "(overrides: `dataset=fake dataset.image_size=8 dataset.in_channels=1 "
            "dataset.subset_per_class=20`).") in card
    assert "{'" not in card


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


# ---- checked before any work, one writer per run directory, the run's records kept --------

@pytest.mark.parametrize("overrides,message", [
    (["trainer.eval_batch_size=0"], "trainer.eval_batch_size=0 is not valid; it must be"),
    # rules the schema owns (data/registry.py no longer checks them again)
    (["dataset=fake", "dataset.augment=mixup"], "dataset.augment='mixup' is not valid; it must"),
    (["dataset=fake", "dataset.mean=[0.5]"], "dataset.mean=[0.5] and dataset.std=null go"),
    (["dataset=fake", "dataset.mean=[0.5]", "dataset.std=[0]"],
     "dataset.std=[0.0] is not valid; it must be"),
])
def test_eval_overrides_pass_the_schema_first(runs, overrides, message, capsys):
    before = sorted((runs["cnn"]).rglob("*"))
    err = _exits_with_one_line(eval_main, [runs["cnn"], *overrides], capsys)
    assert err.startswith("vbench-eval: error: ") and message in err
    assert sorted((runs["cnn"]).rglob("*")) == before  # nothing read into or written


HOLD_LOCK = """import sys
from vbench.core.rundir import exclusive
with exclusive(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def held(runs):
    """runs["mlp"]'s lock, held by another process (as a training running there would)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(runs["mlp"])],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield runs["mlp"]
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_a_second_writer_stops_at_once(held, tmp_path, capsys):
    image = _write_images(tmp_path / "images")[0]
    for main, argv in [(eval_main, [held]),
                       (export_main, [held, "--format", "torchscript"]),  # into RUN/export/
                       (predict_main, [held, image, "--csv", held / "predictions.csv"])]:
        err = _exits_with_one_line(main, argv, capsys)
        assert "is in use by another vbench process (pid" in err and "run vbench-" in err
    assert not (held / "export").exists() and not (held / "predictions.csv").exists()
    # writing outside the run directory needs no lock: the run is only read
    export_main([str(held), "--format", "torchscript", "--out", str(tmp_path / "m.pt")])
    assert (tmp_path / "m.pt").exists()


def _records_cases(run: Path, tmp_path: Path) -> list[tuple[str, list, Path]]:
    """(tool, arguments after the run dir, the record they aim at) for both writers."""
    (tmp_path / "link.csv").symlink_to(run / "history.csv")
    return [
        ("predict", ["--csv", run / "checkpoints/best.pt"], run / "checkpoints/best.pt"),
        ("predict", ["--csv", run / "plots/../metrics.json"], run / "metrics.json"),
        ("predict", ["--csv", tmp_path / "link.csv"], run / "history.csv"),
        ("export", ["--format", "torchscript", "--out", run / "checkpoints/best.pt"],
         run / "checkpoints/best.pt"),
        ("export", ["--format", "safetensors", "--out", run / "checkpoints/../model_card.md"],
         run / "model_card.md"),
        # the JSON that travels beside the file would land on metrics.json
        ("export", ["--format", "torchscript", "--out", run / "metrics"], run / "metrics.json"),
    ]


def test_no_tool_writes_over_the_runs_records(runs, tmp_path, capsys):
    run = runs["cnn"]
    image = _write_images(tmp_path / "images")[0]
    for tool, args, record in _records_cases(run, tmp_path):
        content, stamp = record.read_bytes(), record.stat().st_mtime_ns
        main, before = {"predict": (predict_main, [image]), "export": (export_main, [])}[tool]
        err = _exits_with_one_line(main, [run, *before, *args], capsys)
        option, given = args[-2:]
        assert f"{option} {given} is the run's own {record.relative_to(run)}," in err, err
        assert f"give {option} a path outside them" in err
        assert record.read_bytes() == content and record.stat().st_mtime_ns == stamp
    assert not (run / "metrics").exists()


def test_the_records_are_declared_once():
    from vbench.core.rundir import RECORDS, own_record

    assert {"checkpoints", "metrics.json", "history.csv", ".hydra", "vbench.log"} <= set(RECORDS)
    run = Path("/runs/a")
    assert own_record(run, run / ".hydra/config.yaml") == Path(".hydra/config.yaml")
    assert own_record(run, run / "vbench.log") == Path("vbench.log")
    assert own_record(run, run / "eval/x.csv") is None
    assert own_record(run, Path("/elsewhere/metrics.json")) is None


def test_one_image_decoder(tmp_path, monkeypatch):
    """vbench-predict decodes with the imagefolder reader's load_image: same conversion, crop
    and resize, same size limit, each failure one line."""
    from PIL import Image as PILImage

    from vbench.core.errors import VBenchError
    from vbench.data import imagefolder
    from vbench.inference import predict

    assert predict.load_image is imagefolder.load_image
    paths = _write_images(tmp_path / "images")
    assert imagefolder.load_image(paths[1], 8, 3).shape == (8, 8, 3)  # grey 30x20 -> RGB 8x8
    assert imagefolder.load_image(paths[3], (6, 4), 1).shape == (6, 4, 1)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)  # 64x48 is then a bomb
    with pytest.raises(PILImage.DecompressionBombError):
        imagefolder.load_image(paths[3], 8, 3)
    with pytest.raises(VBenchError, match="DecompressionBombError") as error:
        imagefolder._read(paths[3], 8, 3, make_cfg("dataset=imagefolder").dataset)
    assert len(str(error.value).splitlines()) == 1


def test_predict_device_names_its_own_flag(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    image = _write_images(tmp_path / "images")[0]
    err = _exits_with_one_line(predict_main, [runs["cnn"], image, "--device", "cuda"], capsys)
    assert "--device cuda but CUDA is not available" in err and "use --device auto" in err
    assert "trainer.device" not in err


def test_predict_that_classifies_nothing_fails(runs, tmp_path, capsys):
    (tmp_path / "empty" / ".hidden").mkdir(parents=True)
    err = _exits_with_one_line(predict_main, [runs["cnn"], tmp_path / "empty"], capsys)
    assert "no files to classify" in err
    (tmp_path / "broken").mkdir()
    for name in ("a.png", "b.jpg"):
        (tmp_path / "broken" / name).write_bytes(b"not an image")
    with pytest.raises(SystemExit) as stop:
        predict_main([str(runs["cnn"]), str(tmp_path / "broken"), "--csv",
                      str(tmp_path / "out.csv")])
    assert stop.value.code == 2
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 2 and all("not an image" in line
                                                      for line in out.splitlines())
    assert len(err.strip().splitlines()) == 1 and "classified nothing" in err
    assert not (tmp_path / "out.csv").exists()
