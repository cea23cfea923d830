"""Train/val/test splits: CoOp's ``split_zhou_<Name>.json`` files, the fallback splitters, class subsets.

Behaviour follows docs/reference.md 2.2-2.3 and 2.1 (``subsample_classes``). The fallback splitters consume
Python's global ``random`` exactly as CoOp's do (per-class ``random.shuffle``, ``round()`` counts),
so a fallback split changes the few-shot subset drawn afterwards; use the shipped JSONs to compare
numbers with published ones.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
from collections import OrderedDict
from types import ModuleType
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from dpt.cache.atomic import write_json_atomic
from dpt.cache.kinds import FALLBACK_SPLIT
from dpt.data.datum import Datum

Split = List[Datum]
Entry = List[Any]

SPLIT_NAMES = ("train", "val", "test")
# Recorded in split files the fallback writes; bump when a fallback splitter changes which images go where.
SPLITTER_VERSION = 1


def load_json(path: str, what: str) -> Any:
    """Parse a JSON file; a syntax error names the file and what it should hold."""
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: corrupt {what} ({err}); delete or replace the file") from err


def items_from_entries(entries: Any, image_dir: str, source: str) -> Split:
    """Turn ``[relative_path, label, classname]`` entries into Datums under ``image_dir``.

    A malformed entry raises ValueError, a missing image FileNotFoundError, both naming ``source``.
    """
    if not isinstance(entries, list):
        raise ValueError(f"{source}: expected a list of [path, label, classname], got {type(entries).__name__}")
    items = []
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)):
            raise ValueError(f"{source}: expected entries [path, label, classname], got {entry!r}")
        relpath, label, classname = entry
        items.append(Datum(os.path.join(image_dir, relpath), int(label), classname=classname, source=source))
    return items


def _relative(path: str, folder: str, prefix: str) -> str:
    """``path`` relative to ``folder``; ``prefix`` is ``folder`` + separator (computed once per list: ImageNet)."""
    return path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, folder)


def entries_from_items(items: Iterable[Datum], image_dir: str) -> List[Entry]:
    """Datums -> ``[path relative to image_dir, label, classname]`` lists (the JSON layout)."""
    prefix = os.path.join(image_dir, "")
    return [[_relative(item.impath, image_dir, prefix), item.label, item.classname] for item in items]


def items_sha256(items: Iterable[Datum], image_dir: str) -> str:
    """SHA-256 of the items' (path relative to image_dir, label, classname), in order.

    Why relative paths: a cache made from a list stays valid when the data folder moves.
    """
    prefix = os.path.join(image_dir, "")
    text = "".join(f"{_relative(i.impath, image_dir, prefix)}\t{i.label}\t{i.classname}\n" for i in items)
    return hashlib.sha256(text.encode()).hexdigest()


def load_split_file(split_path: str) -> Dict[str, Any]:
    """Parse a split JSON and check it has the keys train, val and test (extra keys are allowed)."""
    split = load_json(split_path, "split file")
    if not isinstance(split, dict) or any(name not in split for name in SPLIT_NAMES):
        found = sorted(split) if isinstance(split, dict) else type(split).__name__
        raise ValueError(f"{split_path}: expected keys train, val, test; found {found}")
    return split


def split_items(split: Mapping[str, Any], split_path: str, image_dir: str, dataset: str) -> Tuple[Split, Split, Split]:
    """The train, val and test Datums of a parsed split file."""
    return tuple(  # type: ignore[return-value]
        items_from_entries(split[name], image_dir, f"{split_path} [{name}] of dataset {dataset}")
        for name in SPLIT_NAMES
    )


def read_split(split_path: str, image_dir: str, dataset: str) -> Tuple[Split, Split, Split]:
    """Read a ``split_zhou_<Name>.json`` (docs/reference.md 2.3) into train, val and test Datums."""
    print(f"Reading split from {split_path}")
    return split_items(load_split_file(split_path), split_path, image_dir, dataset)


def fallback_source(train: Split, val: Split, test: Split, image_dir: str) -> Dict[str, Any]:
    """What a fallback split was made from: the splitter version and a digest of every image it divided.

    The images are digested in sorted order, so the record does not depend on the random division and can
    be recomputed by running the fallback again with any RNG state.
    """
    everything = sorted([*train, *val, *test], key=lambda item: (item.impath, item.label, item.classname))
    return {"splitter": SPLITTER_VERSION, "images_sha256": items_sha256(everything, image_dir)}


def save_split(
    train: Split, val: Split, test: Split, split_path: str, image_dir: str, source: Optional[Dict[str, Any]] = None
) -> None:
    """Write the split as CoOp does after a fallback, so later runs reuse the same split.

    ``source`` (``fallback_source``) is stored under the extra key "source" (``FALLBACK_SPLIT.marker``); CoOp's
    readers ignore it, ours compare it with the original files on each use, and ``dpt-cache`` knows the file by it.
    """
    split: Dict[str, Any] = {
        name: entries_from_items(items, image_dir) for name, items in zip(SPLIT_NAMES, (train, val, test))
    }
    if source is not None:
        split[FALLBACK_SPLIT.marker] = source
    write_json_atomic(split, split_path)
    print(f"Saved split to {split_path}")


def group_by_label(items: Iterable[Datum]) -> "OrderedDict[int, List[Datum]]":
    """Label -> items, labels in order of first appearance, items in list order."""
    groups: "OrderedDict[int, List[Datum]]" = OrderedDict()
    for item in items:
        groups.setdefault(item.label, []).append(item)
    return groups


def split_trainval(trainval: Split, p_val: float = 0.2) -> Tuple[Split, Split]:
    """Per class (first-appearance order): shuffle, the first ``round(n * p_val)`` go to val."""
    print(f"Splitting trainval into {1 - p_val:.0%} train and {p_val:.0%} val")
    train, val = [], []
    for label, items in group_by_label(trainval).items():
        n_val = round(len(items) * p_val)
        if n_val <= 0:
            raise ValueError(
                f"class {label} ({items[0].classname!r}) has {len(items)} trainval images: too few for a val split"
            )
        order = list(range(len(items)))
        random.shuffle(order)
        for n, idx in enumerate(order):
            (val if n < n_val else train).append(items[idx])
    return train, val


def split_groups(
    groups: Iterable[Tuple[int, str, List[str]]], p_trn: float = 0.5, p_val: float = 0.2,
    rng: Union[random.Random, ModuleType] = random,
) -> Tuple[Split, Split, Split]:
    """Split each class's image paths by shuffling and ``round()``-ed proportions.

    Args:
        groups: ``(label, classname, image paths)`` per class, in the order classes are processed
            (the order fixes the RNG stream).
        p_trn, p_val: train and val fractions; test gets the rest.
        rng: what shuffles: Python's global ``random`` (CoOp's fallbacks) or a private seeded
            ``random.Random`` (a split that does not depend on, nor change, the run's RNG state).
    """
    print(f"Splitting into {p_trn:.0%} train, {p_val:.0%} val, and {1 - p_trn - p_val:.0%} test")
    train, val, test = [], [], []
    for label, classname, paths in groups:
        paths = list(paths)
        rng.shuffle(paths)
        n_train, n_val = round(len(paths) * p_trn), round(len(paths) * p_val)
        if min(n_train, n_val, len(paths) - n_train - n_val) <= 0:
            raise ValueError(
                f"class {label} ({classname!r}) has {len(paths)} images: too few for a train/val/test split"
            )
        chunks = (paths[:n_train], paths[n_train : n_train + n_val], paths[n_train + n_val :])
        for split, chunk in zip((train, val, test), chunks):
            split.extend(Datum(path, label, classname=classname) for path in chunk)
    return train, val, test


def list_image_folders(image_dir: str, ignored: Sequence[str] = ()) -> List[str]:
    """Sorted, non-hidden sub-folders of ``image_dir`` minus ``ignored``."""
    return sorted(
        e.name for e in os.scandir(image_dir) if e.is_dir() and not e.name.startswith(".") and e.name not in ignored
    )


def list_images(folder: str) -> List[str]:
    """Sorted absolute paths of the non-hidden files in ``folder``."""
    names = (e.name for e in os.scandir(folder) if e.is_file() and not e.name.startswith("."))
    return sorted(os.path.join(folder, name) for name in names)


def read_and_split_data(
    image_dir: str,
    p_trn: float = 0.5,
    p_val: float = 0.2,
    ignored: Sequence[str] = (),
    new_cnames: Optional[Mapping[str, str]] = None,
) -> Tuple[Split, Split, Split]:
    """The DTD-style fallback: one folder per class, label = index in sorted folder order.

    Files inside a class folder are sorted before shuffling (CoOp shuffles the unsorted
    ``os.listdir`` order, which depends on the file system), so our fallback is reproducible.
    """
    new_cnames = new_cnames or {}
    groups = (
        (label, new_cnames.get(name, name), list_images(os.path.join(image_dir, name)))
        for label, name in enumerate(list_image_folders(image_dir, ignored))
    )
    return split_groups(groups, p_trn, p_val)


def subsample_classes(*splits: Split, subsample: str = "all") -> Tuple[Split, ...]:
    """Keep the base (first ``ceil(n/2)`` labels of the first split) or new classes, relabelled from 0."""
    if subsample not in ("all", "base", "new"):
        raise ValueError(f"DATASET.SUBSAMPLE_CLASSES: expected all, base or new, got {subsample!r}")
    if subsample == "all":
        return splits
    labels = sorted({item.label for item in splits[0]})
    m = math.ceil(len(labels) / 2)
    print(f"SUBSAMPLE {subsample.upper()} CLASSES!")
    selected = labels[:m] if subsample == "base" else labels[m:]
    relabel: Dict[int, int] = {y: new for new, y in enumerate(selected)}
    return tuple(
        [Datum(i.impath, relabel[i.label], i.domain, i.classname) for i in split if i.label in relabel]
        for split in splits
    )
