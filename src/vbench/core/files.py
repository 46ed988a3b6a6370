"""Atomic file writes: a reader never sees a half-written metrics.json or checkpoint."""

import json
import os
import re
import tempfile
import zipfile
from pathlib import Path

from .pause import pause_at


def _atomic(path: Path, write, pause_point: str | None = None) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        # mkstemp makes the file private (0600); the result is the user's to share, as any
        # file they create: 0644 under umask 022
        os.fchmod(fd, 0o666 & ~_umask())
    except OSError as e:
        raise _unwritable(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if pause_point:
            pause_at(pause_point)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # a full disk, a file system gone read-only
        # torch.save reports a full disk as a RuntimeError of its zip writer
        full = isinstance(e, RuntimeError) and _no_space_left(path.parent)
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, RuntimeError) and not full:
            raise
        raise _unwritable(path, OSError(28, "No space left on device") if full else e) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """This process's umask: read from /proc where it is there, since os.umask can only
    read it by setting it (a moment another thread could create a file under)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _no_space_left(folder: Path) -> bool:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize < 1 << 20  # under 1 MiB free


def _unwritable(path: Path, error: OSError):
    from .errors import VBenchError

    return VBenchError(f"cannot write {path}: {error.strerror or error}; free some space or "
                       "choose another output directory (hydra.run.dir)")


def write_text(path: Path, text: str) -> None:
    _atomic(path, lambda f: f.write(text.encode()))


def write_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda f: f.write(data))


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")


def save_torch(path: Path, obj) -> None:
    import torch

    _atomic(path, lambda f: torch.save(obj, f), "checkpoint-write")


def why_unreadable(error: Exception) -> str:
    """Why torch.load (weights_only=True) or safetensors refused a file, in a few words."""
    # torch's own message advises switching its weights-only safeguard off, which would run
    # the file's code: say what is wrong instead.
    text = str(error)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return f"it is a pickle that calls {found.group(1)}, which a weights file never needs"
    if "zip archive" in text or isinstance(error, (EOFError, zipfile.BadZipFile)):
        return "it is truncated or not a torch zip file"
    if "safetensor" in type(error).__name__.lower():
        return f"a bad .safetensors file ({text.splitlines()[0][:160] if text else 'no detail'})"
    # Random bytes fail anywhere in the unpickler (UnpicklingError, IndexError, ValueError, ...)
    return "it is not a torch weights file"


def load_torch(path: Path, map_location="cpu"):
    """Load a checkpoint with weights_only=True; a truncated or corrupt file is a clear error,
    never a half-loaded state."""
    import torch

    from .errors import VBenchError

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise VBenchError(f"checkpoint {path} cannot be read ({why_unreadable(e)}): it is cut "
                          "off or damaged, and vbench never uses part of one; train the run "
                          "again (trainer.resume=false trains it anew in its directory)") from e
