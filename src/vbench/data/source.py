"""What every on-disk reader shares: where the files lie, the one error when they are missing
or unreadable, torchvision's downloaders, and the cache of decoded arrays.

Decoding (gunzip, unpickle, PNG) is the slow part of loading a dataset, so a reader's result is
saved once as uint8 tensors under `<root>/.vbench_cache/` and later runs load that file. The
cache key hashes the source files' paths, sizes and modification times plus the reader's
options, so a changed or replaced source file is decoded again.
"""

import contextlib
import contextvars
import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from ..core import files
from ..core.errors import VBenchError
from .registry import RawData

CACHE_DIR = ".vbench_cache"
_CACHE_FORMAT = 1  # bump when the cached layout changes, so old caches are ignored

_FIELDS = ("train_x", "train_y", "test_x", "test_y", "val_x", "val_y")


def data_root(cfg) -> Path:
    return Path(str(cfg.root)).expanduser().resolve()


def missing_error(cfg, folder: Path, missing: Iterable[str], where: str) -> VBenchError:
    """The one message for data that is not there: the exact paths, and how to get them."""
    how = where
    if _downloadable(cfg):
        how = f"run once with dataset.download=true (needs a network), or {where}"
    return VBenchError(f"dataset={cfg.name}: data not found: looked in {folder} for "
                       f"{', '.join(missing)}; {how} (dataset.root or $VBENCH_DATA sets the "
                       "folder)")


@contextlib.contextmanager
def reading(path: Path, cfg, fix: str | None = None):
    """Turns any failure to decode `path` into one clear error naming the file; `fix` says
    what to do about a damaged file (default: download it again, or replace it).

    Truncated archives, bad pickles and broken images raise many exception types (OSError,
    EOFError, zlib.error, UnpicklingError, ValueError, ...); to the user they all mean the same:
    this file is damaged and must be replaced. A file that is gone was there when the data was
    listed: something removed it while the run read it.
    """
    try:
        yield
    except VBenchError:
        raise
    except FileNotFoundError as e:
        raise VBenchError(f"dataset={cfg.name}: cannot read {path}: it is gone (it was there "
                          "when the run listed the data); put it back and start the run again") from e
    except Exception as e:
        if fix is None:
            fix = ("delete it and run with dataset.download=true" if _downloadable(cfg)
                   else "replace it")
        why = _one_line(f"{type(e).__name__}: {e}")
        raise VBenchError(f"dataset={cfg.name}: cannot read {path} ({why}); the file is "
                          f"damaged or not in the expected format: {fix}") from e


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _downloadable(cfg) -> bool:
    return hasattr(cfg, "download")  # the kind of datasets torchvision can fetch has the flag


def download(cfg, fetch: Callable[[str], None]) -> None:
    """Runs torchvision's downloader `fetch(root)`; without a network that is a clear error."""
    root = data_root(cfg)
    try:
        fetch(str(root))
    except Exception as e:
        raise VBenchError(f"dataset={cfg.name}: dataset.download=true failed "
                          f"({type(e).__name__}: {e}); download the files by hand into {root}"
                          ) from e


class FilesFound(Exception):
    """A reader reached its decoding in `files_only` mode: every file it needs is there."""


_FILES_ONLY = contextvars.ContextVar("files_only", default=False)


@contextlib.contextmanager
def files_only():
    """Readers look for their files (a missing one is their usual VBenchError) and stop before
    reading them: `cached` raises FilesFound instead of loading or decoding."""
    token = _FILES_ONLY.set(True)
    try:
        yield
    finally:
        _FILES_ONLY.reset(token)


def reads_no_files() -> None:
    """What a reader that reads no files (synthetic images) calls first: while a sweep's
    files are checked there is nothing of it to look for, and nothing to generate."""
    if _FILES_ONLY.get():
        raise FilesFound


def check_files(cfg) -> None:
    """The dataset's files are where `cfg` says (raises the reader's one-line VBenchError when
    one is missing), without reading them: what a sweep checks of every job before its first.
    A dataset that dataset.download=true would fetch is not checked."""
    from .registry import reader

    if hasattr(cfg, "download") and cfg.download:
        return
    with files_only():
        try:
            reader(cfg.name)(cfg)
        except FilesFound:
            pass


def cached(cfg, sources: list[Path], options: dict, decode: Callable[[], RawData],
           folder: Path | None = None) -> RawData:
    """decode() once; afterwards load the saved tensors while the sources are unchanged. The
    cache lies in `folder`/.vbench_cache (default: the dataset's root); `options` holds
    whatever else decides the arrays (a Hugging Face dataset's fingerprints, URLs)."""
    if _FILES_ONLY.get():
        raise FilesFound
    folder = data_root(cfg) if folder is None else folder
    path = folder / CACHE_DIR / f"{cfg.name}-{_cache_key(sources, options)}.pt"
    if path.is_file():
        with contextlib.suppress(Exception):  # a damaged cache is rebuilt, not an error
            saved = files.load_torch(path)
            return RawData(classes=saved.pop("classes"), **saved)
    raw = decode()
    _check(cfg, raw, folder)
    saved = {f: getattr(raw, f) for f in _FIELDS} | {"classes": list(raw.classes)}
    # A read-only data folder (shared datasets on a cluster) only costs the speed-up.
    with contextlib.suppress(OSError, VBenchError):
        files.save_torch(path, saved)
    return raw


def _check(cfg, raw: RawData, folder: Path) -> None:
    """Files that decode but do not belong together (say, 100 images and 99 labels)."""
    for split in ("train", "val", "test"):
        x, y = getattr(raw, f"{split}_x"), getattr(raw, f"{split}_y")
        if x is None:
            continue
        if len(x) != len(y):
            raise VBenchError(f"dataset={cfg.name}: the {split} files hold {len(x)} images but "
                              f"{len(y)} labels under {folder}; replace them")
        if len(y) and not 0 <= int(y.min()) <= int(y.max()) < len(raw.classes):
            raise VBenchError(f"dataset={cfg.name}: the {split} labels under {folder} "
                              f"are outside 0..{len(raw.classes) - 1}; replace the files")


def _cache_key(sources: list[Path], options: dict) -> str:
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(sources)]
    blob = json.dumps([_CACHE_FORMAT, options, stats])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
