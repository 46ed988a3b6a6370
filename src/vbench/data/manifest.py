"""A CSV or TSV manifest (`dataset=csv`): one row per image, its path and its label, as Kaggle
ships image datasets (a folder of images and a `labels.csv`).

Paths are relative to the file (or `dataset.image_dir`); labels are class names or integers;
an optional split column sends rows to train, val or test. The images are then ImageFolder's:
decoded once (centre-crop, resize, grey or RGB), cached, or streamed when they would not fit
(imagefolder.from_files), with the same one-line errors for a damaged image.
"""

import csv
from pathlib import Path

from ..core.errors import VBenchError
from .imagefolder import from_files
from .registry import RawData, register_dataset

IMAGE_COLUMNS = ("image", "path", "file", "filename", "file_name", "image_path", "id",
                 "image_id")
LABEL_COLUMNS = ("label", "class", "category", "target")
SPLITS = {"train": "train", "val": "val", "validation": "val", "valid": "val", "dev": "val",
          "test": "test"}


@register_dataset("csv")
def read_csv(cfg) -> RawData:
    file = Path(str(cfg.file)).expanduser().resolve()
    if not file.is_file():
        raise VBenchError(f"dataset=csv: data not found: {file} does not exist; set "
                          "dataset.file to your CSV of image paths and labels")
    header, rows = _rows(file)
    image_col = _column(file, header, cfg.image_column, "image_column", IMAGE_COLUMNS,
                        "image-path")
    label_col = _column(file, header, cfg.label_column, "label_column", LABEL_COLUMNS, "label")
    split_col = _column(file, header, cfg.split_column, "split_column", ("split",), "split",
                        required=False)
    base = file.parent if cfg.image_dir is None else Path(cfg.image_dir).expanduser().resolve()

    listed: dict[str, list[tuple[int, Path, str]]] = {"train": [], "val": [], "test": []}
    for line, row in rows:
        where = f"dataset=csv: {file} line {line}"
        value = {c: (row.get(c) or "").strip() for c in (image_col, label_col)}
        for column, text in value.items():
            if not text:
                raise VBenchError(f"{where}: column {column!r} is empty; fill it or remove "
                                  "the row")
        split = "train"
        if split_col is not None:
            split = SPLITS.get((row.get(split_col) or "").strip().lower())
            if split is None:
                raise VBenchError(f"{where}: {split_col}={row.get(split_col)!r} is not train, "
                                  "val (validation, valid) or test; fix the row")
        path = base / (value[image_col] + cfg.suffix)
        if not path.is_file():
            raise VBenchError(f"{where}: image {path} not found; fix the path (relative to "
                              f"{base}) or set dataset.image_dir / dataset.suffix")
        listed[split].append((line, path, value[label_col]))
    if not listed["train"]:
        raise VBenchError(f"dataset=csv: {file} has no train rows; a run needs them "
                          f"({split_col or 'without a split column every row'} is train)")
    classes, index = _classes(file, cfg, listed, label_col)
    splits = {name: ([path for _, path, _ in items], [index(line, label) for line, _, label in
                                                      items])
              for name, items in listed.items() if items}
    fix = f"fix it or remove its row from {file}"
    options = {"columns": [image_col, label_col, split_col], "base": str(base),
               "suffix": cfg.suffix, "classes": None if cfg.classes is None else list(cfg.classes)}
    return from_files(cfg, splits, classes, base, fix, sources=(file,), options=options)


def _rows(file: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """The header and (line number, row) of a CSV, or a TSV by its extension."""
    delimiter = "\t" if file.suffix.lower() in (".tsv", ".tab") else ","
    try:
        with open(file, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            rows = [(reader.line_num, row) for row in reader]
            header = reader.fieldnames
    except (UnicodeDecodeError, csv.Error) as e:
        raise VBenchError(f"dataset=csv: cannot read {file} ({type(e).__name__}: {e}); it must "
                          "be a UTF-8 CSV (or .tsv) with a header row") from None
    if not header or not rows:
        raise VBenchError(f"dataset=csv: {file} has no rows under a header; its first line "
                          "names the columns (e.g. image,label), then one row per image")
    return [h.strip() for h in header], rows


def _column(file: Path, header: list[str], chosen: str | None, key: str, known: tuple,
            what: str, required: bool = True) -> str | None:
    """The column `dataset.<key>` names, else the first of `known` (any case) in `header`."""
    if chosen is not None:
        if chosen not in header:
            raise VBenchError(f"dataset.{key}={chosen!r}: {file} has no such column; its "
                              f"columns: {', '.join(header)}")
        return chosen
    found = next((h for k in known for h in header if h.lower() == k), None)
    if found is None and required:
        raise VBenchError(f"dataset=csv: {file} has no {what} column (one of {', '.join(known)});"
                          f" name it with dataset.{key}=<column> (its columns: "
                          f"{', '.join(header)})")
    return found


def _classes(file: Path, cfg, listed: dict, column: str):
    """(class names, label -> index): names given, or integer labels 0..max, or the sorted
    names of the train rows; a label outside them is one line naming its row."""
    labels = [label for items in listed.values() for _, _, label in items]
    integers = all(label.lstrip("-").isdigit() for label in labels)
    if cfg.classes is not None:
        classes = [str(c) for c in cfg.classes]
    elif integers:
        classes = [str(i) for i in range(max(int(label) for label in labels) + 1)]
    else:
        classes = sorted({label for _, _, label in listed["train"]})
    if len(classes) < 2:
        raise VBenchError(f"dataset=csv: {file} has {len(classes)} class(es) {classes} in its "
                          "train rows; a classifier needs at least two")
    lookup = {name: i for i, name in enumerate(classes)}

    def index(line: int, label: str) -> int:
        if label in lookup:
            return lookup[label]
        if integers and cfg.classes is not None and 0 <= int(label) < len(classes):
            return int(label)
        raise VBenchError(f"dataset=csv: {file} line {line}: {column}={label!r} is not a class "
                          f"({_shown(classes)}); fix the row or list it in dataset.classes")

    return classes, index


def _shown(classes: list[str], limit: int = 10) -> str:
    more = f", ... ({len(classes)} in all)" if len(classes) > limit else ""
    return ", ".join(classes[:limit]) + more
