"""Atomic file writes: a reader never sees a half-written metrics.json or checkpoint."""

import json
import os
import tempfile
from pathlib import Path


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    _atomic(path, lambda f: f.write(text.encode()))


def write_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda f: f.write(data))


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")


def save_torch(path: Path, obj) -> None:
    import torch

    _atomic(path, lambda f: torch.save(obj, f))


def load_torch(path: Path, map_location="cpu"):
    """Load a checkpoint with weights_only=True; a truncated or corrupt file is a clear error,
    never a half-loaded state."""
    import pickle
    import zipfile

    import torch

    from .errors import VBenchError

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        raise VBenchError(f"checkpoint {path} cannot be read (truncated or corrupt: "
                          f"{str(e).splitlines()[0]}); delete it to start over") from e
