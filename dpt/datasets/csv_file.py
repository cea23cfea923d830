"""CSV: your own images listed in a CSV file (DATASET.CSV, relative to DATASET.ROOT).

Columns (header row, any order, other columns ignored): ``path`` (relative to the CSV's folder, which
it may not leave), ``label`` and/or ``classname``, optionally ``split`` (train / val / test on every
row). The class is the label (with a classname column: its name) else the classname; classes are ordered
numerically when every label is an integer, else by name. Without a split column the images are split
50/20/30 per class with a fixed seed (see ``custom_dataset.py``). Caches (``split.json``,
``split_fewshot/``, ``image_cache/``) go to ``<csv stem>_cache/`` beside the CSV, so two CSV files over
the same images never share a few-shot subset.
"""
from __future__ import annotations

import csv
import io
import os
from typing import Dict, List, Tuple

from yacs.config import CfgNode

from dpt.data.custom_dataset import ClassKey, CustomDataset, Listed
from dpt.data.splits import SPLIT_NAMES
from dpt.registry import DATASET_REGISTRY


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _read_rows(csv_path: str) -> Tuple[List[str], List[Tuple[int, Dict[str, str]]]]:
    """(lower-cased header, [(line number, {column: stripped value})]) of the non-blank rows."""
    with open(csv_path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValueError(f"{csv_path} line {line}: not UTF-8 text ({err.reason}); save the file as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: List[Tuple[int, Dict[str, str]]] = []
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        if "path" not in header or not {"label", "classname"} & set(header):
            raise ValueError(f"{csv_path} line 1: expected a header with path and label or classname "
                             f"(and optionally split), got {','.join(header) or 'an empty file'}")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise ValueError(f"{csv_path} line {reader.line_num}: expected {len(header)} fields "
                                 f"({','.join(header)}), got {len(row)}")
            rows.append((reader.line_num, {h: cell.strip() for h, cell in zip(header, row)}))
    except csv.Error as err:
        raise ValueError(f"{csv_path} line {reader.line_num}: unreadable row ({err})") from None
    return header, rows


def read_listing(csv_path: str) -> Tuple[List[Listed], Dict[ClassKey, str]]:
    """The rows of ``csv_path`` as Listed entries (where = "<file> line N") and the class names by key."""
    folder = os.path.dirname(csv_path)
    header, rows = _read_rows(csv_path)
    class_column = "label" if "label" in header else "classname"
    numeric = all(_is_int(values[class_column]) for _, values in rows)
    listed: List[Listed] = []
    names: Dict[ClassKey, str] = {}
    named_at: Dict[ClassKey, int] = {}
    path_at: Dict[str, int] = {}
    for line, values in rows:
        where = f"{csv_path} line {line}"
        empty = [h for h in ("path", "label", "classname", "split") if h in values and not values[h]]
        if empty:
            raise ValueError(f"{where}: empty {empty[0]}")
        split = values.get("split", "")
        if split and split not in SPLIT_NAMES:
            raise ValueError(f"{where}: split {split!r}; expected train, val or test")
        path = os.path.normpath(os.path.join(folder, values["path"]))
        if not path.startswith(folder + os.sep):
            raise ValueError(f"{where}: path {values['path']!r} is outside {folder} (paths are relative to the "
                             f"CSV file's folder and must stay inside it)")
        if path in path_at:
            raise ValueError(f"{where}: path {values['path']!r} is listed again (first on line {path_at[path]})")
        path_at[path] = line
        key: ClassKey = int(values[class_column]) if numeric else values[class_column]
        if "classname" in values and class_column == "label":
            if key in names and names[key] != values["classname"]:
                raise ValueError(f"{where}: label {key!r} is named {values['classname']!r} here but "
                                 f"{names[key]!r} on line {named_at[key]}")
            names[key], named_at[key] = values["classname"], line
        listed.append(Listed(path, key, split, where))
    return listed, names


@DATASET_REGISTRY.register()
class CSV(CustomDataset):
    """Config keys read: DATASET.CSV, DATASET.ROOT, NUM_SHOTS, SUBSAMPLE_CLASSES, SEED."""

    layout = "a CSV file with the columns path,label (or path,classname) and optionally split"

    def locate(self, cfg: CfgNode) -> Tuple[str, str]:
        if not cfg.DATASET.CSV:
            raise FileNotFoundError(f"DATASET.CSV is empty; dataset {self.name} expects {self.layout}")
        path = os.path.expanduser(cfg.DATASET.CSV)
        if cfg.DATASET.ROOT:
            path = os.path.join(os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT)), path)
        path = os.path.abspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"DATASET.CSV: file not found: {path}; expected {self.layout} "
                                    f"(DATASET.CSV is relative to DATASET.ROOT)")
        self.source = path
        folder = os.path.dirname(path)
        return os.path.join(folder, os.path.splitext(os.path.basename(path))[0] + "_cache"), folder

    def list_images(self, image_dir: str) -> Tuple[List[Listed], Dict[ClassKey, str]]:
        return read_listing(self.source)
