"""vbench-export's work: a run's model as a self-contained file that takes raw uint8 images
(N, C, H, W) at the run's size and returns logits, with the run's normalization inside (and,
for torchvision/timm models, their grey->RGB and resize adapter, which is part of the model).

ONNX is written by torch.onnx's TorchScript-based exporter (dynamo=False): it works offline
with onnx alone, where the dynamo exporter also needs onnxscript. Each export is checked
against PyTorch on the run's test images; above TOLERANCE it fails.
"""

import io
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from ..core import files
from ..core.errors import VBenchError
from ..training.checkpoint import RunModel, build_run_model

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
TOLERANCE = 1e-3  # max |exported - PyTorch| of the logits, float32 on CPU
OPSET = 17


class RawImageClassifier(nn.Module):
    """uint8 images in, logits out: the run's normalization in front of its model."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images.float() / 255.0 - self.mean) / self.std)


def about(run: RunModel) -> dict:
    """What travels with the exported file: enough to feed it and name its outputs."""
    return {"classes": run.classes, "input": {"dtype": "uint8", "layout": "NCHW",
                                              "channels": run.channels, "size": list(run.size)},
            "mean": run.mean, "std": run.std, "model": run.cfg.model.name,
            "dataset": run.cfg.dataset.name}


def export(run: RunModel, fmt: str, out: Path, images: torch.Tensor) -> float:
    """Write `run` as `fmt` to `out` and return the max abs logit difference to PyTorch on
    `images` (uint8); raises when it exceeds TOLERANCE."""
    if fmt not in FORMATS:
        raise VBenchError(f"--format {fmt!r} is not valid; choose one of: {', '.join(FORMATS)}")
    if not isinstance(run.model, nn.Module) or hasattr(run.model, "estimator"):
        raise VBenchError("scikit-learn baselines cannot be exported (the estimator is not a "
                          "torch graph); vbench-eval and vbench-predict work on them")
    wrapped = RawImageClassifier(run.model, run.mean, run.std).eval()
    with torch.no_grad():
        expected = wrapped(images)
    out.parent.mkdir(parents=True, exist_ok=True)
    got = {"onnx": _onnx, "torchscript": _torchscript, "safetensors": _safetensors}[fmt](
        wrapped, run, out, images)
    diff = (got - expected).abs().max().item()
    if not diff <= TOLERANCE:
        raise VBenchError(f"{fmt} export {out} differs from PyTorch by {diff:.3g} on the test "
                          f"images (tolerance {TOLERANCE}); the file is there for inspection")
    return diff


def _onnx(wrapped, run: RunModel, out: Path, images: torch.Tensor) -> torch.Tensor:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise VBenchError("--format onnx needs onnx and onnxruntime: pip install "
                          "'vbench[export]'") from None
    tmp = out.with_name(f".{out.name}.tmp")  # metadata is added before the atomic write
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter: see top
            torch.onnx.export(wrapped, (images[:1],), str(tmp), dynamo=False,
                              opset_version=OPSET, input_names=["images"],
                              output_names=["logits"],
                              dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
        proto = onnx.load(str(tmp))
    finally:
        tmp.unlink(missing_ok=True)
    for key, value in about(run).items():  # values are JSON: classes is a list
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    files.write_bytes(out, proto.SerializeToString())
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(["logits"], {"images": images.numpy()})[0])


def _torchscript(wrapped, run: RunModel, out: Path, images: torch.Tensor) -> torch.Tensor:
    # Tracing follows the forward pre-hook of the zoo models' input adapter; scripting would not.
    # torch 2.9+ marks TorchScript deprecated in favour of torch.export, whose files need
    # torch to load; TorchScript is what C++ and older torch read, so we keep it, quietly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(wrapped, images[:1], check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={"vbench.json": json.dumps(about(run))})
        files.write_bytes(out, buffer.getvalue())
        _write_about(run, out)
        with torch.no_grad():
            return torch.jit.load(str(out))(images)


def _safetensors(wrapped, run: RunModel, out: Path, images: torch.Tensor) -> torch.Tensor:
    """The wrapper's state_dict (model.* plus mean and std); the model is rebuilt from the
    JSON beside it (its config), so the parity check loads the file into a fresh model."""
    from safetensors.torch import load_file, save

    state = {k: v.detach().contiguous() for k, v in wrapped.state_dict().items()}
    files.write_bytes(out, save(state, metadata={"vbench": json.dumps(about(run))}))
    _write_about(run, out, config=True)
    fresh = RawImageClassifier(build_run_model(run.cfg.model, run.spec, run.path), run.mean,
                               run.std)
    fresh.load_state_dict(load_file(str(out)))
    with torch.no_grad():
        return fresh.eval()(images)


def _write_about(run: RunModel, out: Path, config: bool = False) -> None:
    from ..training.checkpoint import config_fingerprint

    info = about(run)
    if config:
        info["config"] = config_fingerprint(run.cfg)  # as the checkpoint stores it
    files.write_json(about_path(out), info)


def written(fmt: str, out: Path) -> list[Path]:
    """The files an export of `fmt` to `out` writes: `out`, and for TorchScript and safetensors
    the JSON beside it (ONNX carries its metadata inside)."""
    return [out] if fmt == "onnx" else [out, about_path(out)]


def about_path(out: Path) -> Path:
    """The JSON beside an exported file: model.pt -> model.pt.json."""
    return out.with_name(out.name + ".json")
