"""Which device to train on and in which precision."""

import contextlib
import os

import torch

from .errors import VBenchError, choices_error
from .schema import PRECISIONS


def resolve_device(name: str) -> torch.device:
    """auto = cuda > mps > cpu; an explicit device that is not there is an error, not a fallback."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise VBenchError("trainer.device=mps but MPS is not available on this machine; "
                              "use trainer.device=auto or trainer.device=cpu")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name[5:]) if name[5:].isdigit() else 0
        if count == 0:
            raise VBenchError(f"trainer.device={name} but CUDA is not available on this machine; "
                              "use trainer.device=auto or trainer.device=cpu")
        if index >= count:
            raise VBenchError(f"trainer.device={name} but this machine has {count} CUDA device(s)")
        return torch.device(name)
    raise choices_error("trainer.device", name, ["auto", "cpu", "cuda", "cuda:N", "mps"])


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`; None means plain float32."""
    precision = str(precision)
    if precision not in PRECISIONS:
        raise choices_error("trainer.precision", precision, PRECISIONS)
    if precision == "auto":
        return None  # the model decides (auto_precision), once it is built
    if precision == "16-mixed" and device.type == "cpu":
        raise VBenchError("trainer.precision=16-mixed needs a GPU; on CPU use bf16-mixed or 32")
    if precision == "bf16-mixed" and device.type == "cpu" and not _cpu_has_bf16():
        raise VBenchError("trainer.precision=bf16-mixed: this CPU has no native bfloat16 "
                          "(avx512_bf16 / AMX), where it runs slower than float32; use "
                          "trainer.precision=32")
    if precision == "bf16-mixed" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise VBenchError("trainer.precision=bf16-mixed: this GPU does not support bfloat16; "
                          "use trainer.precision=16-mixed or 32")
    return {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}[precision]


# trainer.precision=auto: bf16 autocast only for models large enough that tensor-core matmuls
# outweigh the casts. Measured on an H200 (torch 2.11, batch 128, Fashion-MNIST shapes), bf16
# was slower than float32 for the seeds' models: an MLP 2x128 0.766 vs 0.745 s per epoch, the
# CNN 1.253 vs 1.021. ResNet-18 (11.7 M) and up are where bf16 pays on such GPUs.
AUTO_BF16_MIN_PARAMS = 5_000_000


def auto_precision(device: torch.device, params: int) -> tuple[torch.dtype | None, str]:
    """trainer.precision=auto for a model of `params` parameters on `device`: the autocast
    dtype (None: float32) and the reason, which metrics.json records."""
    if device.type != "cuda":
        return None, f"auto: float32 on {device.type} (bf16-mixed is opt-in there)"
    if not torch.cuda.is_bf16_supported():
        return None, "auto: float32 (this GPU has no bfloat16)"
    if params < AUTO_BF16_MIN_PARAMS:
        return None, (f"auto: float32 ({params:,} parameters < {AUTO_BF16_MIN_PARAMS:,}: bf16 "
                      "autocast costs more than it saves on models this small)")
    return torch.bfloat16, (f"auto: bf16-mixed ({params:,} parameters >= "
                            f"{AUTO_BF16_MIN_PARAMS:,}, GPU with bfloat16)")


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _cpu_has_bf16() -> bool:
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def configure_determinism(deterministic: bool, device: torch.device) -> None:
    """Deterministic kernels when asked (bit-identical GPU reruns, slower); otherwise let cuDNN
    pick the fastest convolution algorithms. CPU runs with a fixed seed repeat either way."""
    if device.type == "cuda":
        # Touched only on CUDA: on a CPU-only machine the first access to torch.backends.cudnn
        # loads the cuDNN library (2 s of start-up for nothing).
        torch.backends.cudnn.benchmark = not deterministic
        if deterministic:  # cuBLAS needs this workspace setting before its first use
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if torch.are_deterministic_algorithms_enabled() != deterministic:
        # Only on a change: the call imports ~2.5 s of torch machinery.
        torch.use_deterministic_algorithms(deterministic)
