"""WebDataset tar shards (`dataset=webdataset dataset.urls=...`): data kept as shards so that
every rank of a multi-node job streams its own.

A sample is the tar members sharing a key: `<key>.jpg` (or png, ...: `dataset.image_key`)
and `<key>.cls` (`dataset.label_key`: an integer, or a class name of `dataset.classes`). The
train shards are streamed every epoch (stream.ShardStream): each torchrun rank reads every
world-th shard of the epoch's shuffled shard order, each DataLoader worker every n-th of
those, and the samples are shuffled within a buffer (`dataset.shuffle_buffer`), as
webdataset's `split_by_node`, `split_by_worker` and `shuffle` do. The epoch's shard order and
buffer draws come from the run's batch-order generator, whose state last.pt keeps, so a run
resumed at an epoch boundary reads the epoch it would have read.

How many images an epoch holds is counted before training from the local shards' tar headers
(no image is read), or given as `dataset.epoch_size` (needed for http(s) shards). The val and
test shards are small: they are read once, decoded into memory and cached like every other
dataset; without `dataset.val_urls` the train samples whose key hashes below
`dataset.val_size` are held out as val (one read of the train shards, cached).

Images are decoded as imagefolder decodes files (centre-crop, resize, grey or RGB).
"""

import hashlib
import io
import tarfile
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..core.errors import VBenchError
from .imagefolder import fit_image
from .registry import RawData, register_dataset
from .source import cached, reading
from .stream import ShardStream

NAME = "webdataset"


def import_webdataset():
    try:
        import webdataset
    except ImportError:
        raise VBenchError('dataset=webdataset needs the webdataset library: pip install -e '
                          '".[webdataset]" (or pip install "vbench[webdataset]")') from None
    return webdataset


def check(cfg) -> None:
    """What a stream needs from the config: shards, the classes (a stream cannot be counted
    or listed before it is read), and a held-out val split given as a share."""
    if cfg.urls is None:
        raise VBenchError("dataset=webdataset needs the train shards: dataset.urls=<brace "
                          "pattern>, quoted on the command line: 'dataset.urls=\"shards/"
                          "train-{000000..000099}.tar\"'")
    classes, count = cfg.classes, cfg.num_classes
    if classes is None and count is None:
        raise VBenchError("dataset=webdataset needs the classes: set dataset.classes=[a,b,...] "
                          "(names in label order) or dataset.num_classes=N, since a stream "
                          "cannot be counted before it is read")
    if classes is not None and count is not None and len(classes) != count:
        raise VBenchError(f"dataset.classes names {len(classes)} classes but "
                          f"dataset.num_classes={count}; give one of them")
    if cfg.val_urls is None and not isinstance(cfg.val_size, float):
        raise VBenchError(f"dataset.val_size={cfg.val_size} is a count, but val is held out of "
                          "a stream by key hash: give a fraction (dataset.val_size=0.1) or val "
                          "shards (dataset.val_urls=...)")


@register_dataset(NAME)
def read_webdataset(cfg) -> RawData:
    check(cfg)
    import_webdataset()
    classes = (list(map(str, cfg.classes)) if cfg.classes is not None
               else [str(i) for i in range(cfg.num_classes)])
    train = expand(cfg.urls, "urls")
    val = expand(cfg.val_urls, "val_urls") if cfg.val_urls is not None else None
    test = expand(cfg.test_urls, "test_urls") if cfg.test_urls is not None else None
    shape = (cfg.in_channels, cfg.image_size, cfg.image_size)
    holdout = None if val is not None else (float(cfg.val_size), cfg.split_seed)
    count = cfg.epoch_size
    if count is None:
        remote = [url for url in train if is_remote(url)]
        if remote:
            raise VBenchError(f"dataset.urls: {remote[0]} is not a local file, so its images "
                              "cannot be counted before they are read; give the images of one "
                              "epoch as dataset.epoch_size=N")
        count = sum(_count(url, cfg, holdout) for url in train)
        if count == 0:
            raise VBenchError(f"dataset.urls: the train shards hold no samples with an image "
                              f"member ({cfg.image_key}); check dataset.image_key")
    samples = partial(decoded_samples, cfg=cfg, classes=classes, holdout=holdout, keep_val=False)
    stream = ShardStream(train, count, shape, samples, cfg.shuffle_buffer, cfg.num_workers,
                         exact=cfg.epoch_size is None)
    in_memory = {}
    if val is None:
        in_memory["val"] = _in_memory(cfg, train, classes, holdout, keep_val=True)
    for name, urls in (("val", val), ("test", test)):
        if urls is not None:
            in_memory[name] = _in_memory(cfg, urls, classes, None, keep_val=False)
    val_x, val_y = in_memory["val"]
    if len(val_y) == 0:
        raise VBenchError(f"dataset.val_size={cfg.val_size} held out no train sample as val; "
                          "give a larger share or val shards (dataset.val_urls)")
    test_x, test_y = in_memory.get("test", (None, None))
    return RawData(stream, torch.zeros(0, dtype=torch.int64), test_x, test_y, classes,
                   val_x=val_x, val_y=val_y)


def expand(pattern: str, key: str) -> list[str]:
    """The shard URLs of a brace pattern (several patterns joined by `::`, as webdataset);
    a local shard that does not exist is one line naming it."""
    from braceexpand import braceexpand  # a dependency of webdataset

    urls = [url for part in str(pattern).split("::") for url in braceexpand(part.strip())]
    missing = [url for url in urls if not is_remote(url) and not Path(url).expanduser().is_file()]
    if missing:
        raise VBenchError(f"dataset.{key}: shard {Path(missing[0]).expanduser().resolve()} not "
                          f"found ({len(missing)} of {len(urls)} shards missing); check the "
                          f"pattern (on the command line quote braces: 'dataset.{key}=\""
                          "shards/train-{000000..000009}.tar\"')")
    return [url if is_remote(url) else str(Path(url).expanduser().resolve()) for url in urls]


def is_remote(url: str) -> bool:
    return "://" in url or url.startswith("pipe:")


def held_out(key: str, holdout: tuple[float, int] | None) -> bool:
    """A train sample held out as val: its key's hash (seeded by dataset.split_seed) falls
    below the share. The same key is held out on every rank, in every worker and epoch."""
    if holdout is None:
        return False
    share, seed = holdout
    digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _image_suffixes(cfg) -> list[str]:
    return [s.strip().lower().lstrip(".") for s in cfg.image_key.split(";") if s.strip()]


def _count(url: str, cfg, holdout) -> int:
    """Samples of a local shard with an image member (train ones only), from its tar headers:
    tarfile seeks past every member's data."""
    from webdataset.tariterators import base_plus_ext

    suffixes, keys = set(_image_suffixes(cfg)), set()
    try:
        with tarfile.open(url, "r:*") as tar:
            for member in tar:
                prefix, suffix = base_plus_ext(member.name)
                if member.isfile() and suffix is not None and suffix.lower() in suffixes:
                    keys.add(prefix)
    except (OSError, tarfile.TarError, EOFError) as e:
        raise _damaged(url, e) from None
    return sum(not held_out(key, holdout) for key in keys)


def _damaged(url: str, e: Exception) -> VBenchError:
    why = " ".join(f"{type(e).__name__}: {e}".split())[:200]
    return VBenchError(f"dataset={NAME}: cannot read shard {url} ({why}); it is damaged or not "
                       "a tar file: write it again or leave it out of the pattern")


def raw_samples(url: str, cfg, classes: list[str], holdout, keep_val: bool):
    """(key, image bytes, image suffix, label) of a shard's samples in order: the train ones
    (keep_val false) or the held-out ones (true)."""
    from webdataset.tariterators import tarfile_samples

    suffixes = _image_suffixes(cfg)
    label_key = cfg.label_key.lower().lstrip(".")
    lookup = {name: i for i, name in enumerate(classes)}
    try:
        for sample in tarfile_samples([{"url": url}]):
            key = sample["__key__"]
            if held_out(key, holdout) != keep_val:
                continue
            suffix = next((s for s in suffixes if s in sample), None)
            if suffix is None:
                raise VBenchError(f"dataset={NAME}: shard {url} sample {key} has no image "
                                  f"member ({', '.join('.' + s for s in suffixes)}; it has "
                                  f"{', '.join(k for k in sample if not k.startswith('__'))}); "
                                  "set dataset.image_key or fix the shard")
            if label_key not in sample:
                raise VBenchError(f"dataset={NAME}: shard {url} sample {key} has no .{label_key} "
                                  "member; set dataset.label_key or fix the shard")
            yield key, sample[suffix], suffix, _label(sample[label_key], lookup, url, key)
    except VBenchError:
        raise
    except Exception as e:  # noqa: BLE001 - tarfile, gzip and the URL opener raise many types
        raise _damaged(url, e) from None


def _label(value: bytes, lookup: dict, url: str, key: str) -> int:
    text = value.decode("utf-8", "replace").strip()
    label = int(text) if text.lstrip("-").isdigit() else lookup.get(text, -1)
    if not 0 <= label < len(lookup):
        raise VBenchError(f"dataset={NAME}: shard {url} sample {key}: label {text!r} is not one "
                          f"of the {len(lookup)} classes (dataset.classes / dataset.num_classes);"
                          " fix the shard or the classes")
    return label


def _decode(url: str, key: str, data: bytes, suffix: str, cfg) -> np.ndarray:
    with (reading(Path(f"{url}:{key}.{suffix}"), cfg, fix="write the shard again"),
          Image.open(io.BytesIO(data)) as image):
        return fit_image(image, cfg.image_size, cfg.in_channels)


def decoded_samples(url: str, cfg, classes: list[str], holdout, keep_val: bool):
    """(key, HWC uint8 image, label) of a shard, decoded: what a stream's workers read."""
    for key, data, suffix, label in raw_samples(url, cfg, classes, holdout, keep_val):
        yield key, _decode(url, key, data, suffix, cfg), label


def _in_memory(cfg, urls: list[str], classes: list[str], holdout, keep_val: bool):
    """(uint8 images, labels) of shards read once (val, test; or the held-out train samples),
    cached beside the shards when they are local files."""
    def decode() -> RawData:
        items = [item for url in urls
                 for item in ((url, *rest) for rest in
                              raw_samples(url, cfg, classes, holdout, keep_val))]
        shape = (cfg.in_channels, cfg.image_size, cfg.image_size)
        with ThreadPoolExecutor() as pool:  # PIL releases the GIL while decoding
            images = list(pool.map(lambda i: _decode(i[0], i[1], i[2], i[3], cfg), items))
        x = (torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous() if images
             else torch.zeros((0, *shape), dtype=torch.uint8))
        y = torch.tensor([item[4] for item in items], dtype=torch.int64)
        return RawData(x, y, None, None, classes)

    options = {"urls": urls, "holdout": holdout if keep_val else None, "classes": classes,
               "image_size": cfg.image_size, "in_channels": cfg.in_channels,
               "image_key": cfg.image_key, "label_key": cfg.label_key}
    if any(is_remote(url) for url in urls):
        raw = decode()
    else:
        raw = cached(cfg, [Path(url) for url in urls], options, decode,
                     folder=Path(urls[0]).parent)
    return raw.train_x, raw.train_y
