"""Whether the installed packages work together, found before any work rather than inside the
first model: the classic broken install is a torchvision built for another torch (torch from
one index, torchvision from another), which imports only as far as its first operator."""

from importlib import metadata

from .errors import VBenchError


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def check_torchvision() -> None:
    """One line naming both versions and the fix when torchvision does not load beside torch."""
    try:
        import torchvision  # noqa: F401
    except (RuntimeError, ImportError, OSError) as e:  # operator torchvision::nms does not exist
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise VBenchError(
            f"torchvision {version('torchvision')} does not load with torch {version('torch')} "
            f"({first}); install the two from one place so that they match, as the README's "
            "Install says: pip install --force-reinstall torch torchvision (or both from "
            "PyTorch's CPU index)") from None
