"""Datasets of one's own images (ImageFolder, CSV): listed images -> checked classes -> train/val/test.

Why one base: both readers only list (image, class, split) entries; the class order and names, the
checks on bad input and the seeded 50/20/30 split that is saved once and then reused are shared.
Classes are ordered by their key (folder name, CSV label: numerically when every label is an integer)
and labelled 0..n-1 in that order; names turn "_" into spaces. Without a given split, each class's
sorted images are shuffled by a private ``random.Random(SPLIT_SEED)`` and cut 50/20/30 as CoOp's
fallback does (``split_groups``), so the split is the same whichever run or seed creates it and does
not move the run's RNG; it is written as a split JSON and reused while the listing is unchanged.
"""
from __future__ import annotations

import os
import random
from typing import ClassVar, Dict, List, NamedTuple, Sequence, Tuple, Union

from dpt.cache.atomic import write_json_once
from dpt.data.dataset_base import SplitDataset
from dpt.data.datum import Datum
from dpt.data.splits import SPLIT_NAMES, load_json, split_groups

SPLIT_SEED = 0
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

ClassKey = Union[int, str]


class Listed(NamedTuple):
    """One image as its reader lists it: absolute path, class key, split ("" = not given), where listed."""

    path: str
    key: ClassKey
    split: str
    where: str


class Labelled(NamedTuple):
    """One image with its final label and class name."""

    path: str
    label: int
    classname: str
    where: str


Splits = Dict[str, List[Labelled]]


def pretty_name(key: ClassKey) -> str:
    return str(key).replace("_", " ")


def class_table(listed: Sequence[Listed], names: Dict[ClassKey, str], source: str) -> Dict[ClassKey, Tuple[int, str]]:
    """Class key -> (label, name): keys sorted, at least two classes, names unique after "_" -> " ".

    Args:
        names: a class name per key where the reader has one (CSV classname column), else the key's text.
        source: the folder or file, for the messages.
    """
    keys = sorted({item.key for item in listed if item.split in ("", "train")})
    if len(keys) < 2:
        found = f"1 class ({keys[0]!r})" if keys else "no images"
        raise ValueError(f"{source}: found {found}; a classifier needs at least 2 classes")
    table: Dict[ClassKey, Tuple[int, str]] = {}
    owner: Dict[str, ClassKey] = {}
    for label, key in enumerate(keys):
        name = pretty_name(names.get(key, key))
        if name in owner:
            raise ValueError(
                f"{source}: classes {owner[name]!r} and {key!r} both become the class name {name!r} "
                f"('_' reads as a space); rename one"
            )
        owner[name] = key
        table[key] = (label, name)
    for item in listed:
        if item.key not in table:
            raise ValueError(
                f"{source}: class {item.key!r} has {item.split} images ({item.where}) but no training images"
            )
    return table


class CustomDataset(SplitDataset):
    """A dataset listed by ``list_images`` (a folder tree or a CSV file) instead of a CoOp split file.

    Subclasses implement ``locate`` (dataset folder for the caches, folder the paths start from),
    ``list_images`` and set ``source`` (what the user pointed at, named in messages). Config keys read:
    DATASET.ROOT (and the subclass's), NUM_SHOTS, SUBSAMPLE_CLASSES, SEED.
    """

    split_file: ClassVar[str] = "split.json"
    source: str = ""

    def split_path(self, dataset_dir: str) -> str:
        return os.path.join(dataset_dir, self.split_file)

    def list_images(self, image_dir: str) -> Tuple[List[Listed], Dict[ClassKey, str]]:
        """Every image with its class key and given split, plus class names for keys that have one."""
        raise NotImplementedError

    def labelled_splits(self, dataset_dir: str, image_dir: str, save: bool = True) -> Splits:
        """Train/val/test entries from the given split, the saved split JSON, or a new seeded split.

        A listed image that does not exist stops the read before any split is drawn or saved. ``save=False``
        (dpt-check-data) neither writes the split nor stops there: the checker lists every missing image.
        """
        listed, names = self.list_images(image_dir)
        absent = next((item for item in listed if not os.path.isfile(item.path)), None) if save else None
        if absent is not None:
            raise FileNotFoundError(f"image not found: {absent.path} (listed in {absent.where})")
        table = class_table(listed, names, self.source)
        entries = [Labelled(item.path, *table[item.key], item.where) for item in listed]
        if any(item.split for item in listed):
            return {name: [e for e, item in zip(entries, listed) if item.split == name] for name in SPLIT_NAMES}
        split_path = self.split_path(dataset_dir)
        if os.path.exists(split_path):
            return self._reuse_split(split_path, entries, image_dir)
        by_label: Dict[int, List[Labelled]] = {}
        for entry in entries:
            by_label.setdefault(entry.label, []).append(entry)
        groups = [(label, group[0].classname, sorted(e.path for e in group))
                  for label, group in sorted(by_label.items())]
        try:
            drawn = split_groups(groups, rng=random.Random(SPLIT_SEED))
        except ValueError as err:
            raise ValueError(f"{self.source}: {err}; add images or give the split yourself (see README)") from None
        where = {e.path: e.where for e in entries}
        splits = {name: [Labelled(d.impath, d.label, d.classname, where[d.impath]) for d in items]
                  for name, items in zip(SPLIT_NAMES, drawn)}
        if save:
            json_splits = {name: [[os.path.relpath(e.path, image_dir), e.label, e.classname] for e in splits[name]]
                           for name in SPLIT_NAMES}
            if write_json_once(json_splits, split_path):
                print(f"Saved split to {split_path}")
        return splits

    def _reuse_split(self, split_path: str, entries: List[Labelled], image_dir: str) -> Splits:
        """The saved split, after checking it lists exactly the images and classes listed now."""
        print(f"Reading split from {split_path}")
        split = load_json(split_path, "split file")
        if not isinstance(split, dict) or any(not isinstance(split.get(n), list) for n in SPLIT_NAMES):
            raise ValueError(f"{split_path}: expected lists under train, val, test; delete it to split again")
        current = {(os.path.relpath(e.path, image_dir), e.label, e.classname): e for e in entries}
        saved: Dict[str, list] = {}
        for name in SPLIT_NAMES:
            bad = [x for x in split[name] if not (isinstance(x, list) and len(x) == 3 and isinstance(x[0], str)
                                                  and isinstance(x[1], int) and isinstance(x[2], str))]
            if bad:
                raise ValueError(f"{split_path} [{name}]: expected entries [path, label, classname], got {bad[0]!r}")
            saved[name] = [tuple(x) for x in split[name]]
        listed = [x for name in SPLIT_NAMES for x in saved[name]]
        added = sorted(set(current) - set(listed), key=str)
        gone = sorted(set(listed) - set(current), key=str)
        if added or gone:
            change = f"{len(added)} listed image(s) not in it (e.g. {added[0][0]})" if added else (
                f"{len(gone)} of its entries no longer listed (e.g. {gone[0][0]} as {gone[0][2]!r})")
            raise ValueError(
                f"{split_path} does not match {self.source}: {change}; delete it and "
                f"{os.path.join(os.path.dirname(split_path), 'split_fewshot')} to split again"
            )
        return {name: [current[x] for x in saved[name]] for name in SPLIT_NAMES}

    def read_full_split(self, dataset_dir: str, image_dir: str) -> Tuple[list, list, list]:
        splits = self.labelled_splits(dataset_dir, image_dir)
        return tuple(  # type: ignore[return-value]
            [Datum(e.path, e.label, classname=e.classname, source=e.where) for e in splits[name]]
            for name in SPLIT_NAMES
        )


def image_files(folder: str) -> List[str]:
    """Sorted absolute paths of the image files (by extension) under ``folder``, sub-folders included;
    hidden files and folders are skipped."""
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(parent, f) for f in files
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)
