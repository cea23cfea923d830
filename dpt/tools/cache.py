"""``dpt-cache list|clear [ROOT] [--cache-dir DIR] [--older-than DAYS] [--kind KIND]``: the caches runs keep.

Why: caches are never used for other sources (their name or their record says what they were made from), so
the ones made from older images, splits or settings only take space, and an ImageNet test-image cache is
~7.5 GB. Found under every dataset folder of ROOT (``split_fewshot/``, ``image_cache/``) and in each
``--cache-dir`` (DATALOADER.CACHE_DIR), recognised by the table the writers name their files with
(``dpt.cache.kinds``):

- fewshot: ``shot_N-seed_S.json`` few-shot subsets (cleared ones are drawn again, the same for the same split);
- images: ``<Dataset>_<digest>.npy`` resized test images (DATALOADER.CACHE_TEST);
- selector: ``selector_<Dataset>_<split>_<digest>.pt`` DPT's zero-shot image features;
- clip_features: ``clip_features_<Dataset>_<split>_<digest>.pt`` the linear probe's image features;
- fallback_split: ``split_zhou_<Dataset>.json`` in a dataset folder when the fallback built it from the original
  files (its JSON holds a "source" record; CoOp's downloaded split files have none and are never listed). The
  next run builds a cleared one again: a random division, so its few-shot subsets are drawn again too;
- temporary: ``.<name>.<random>.tmp`` files and ``.<name>.replacing-<inode>`` claims of writers.

A cache's age counts from its last use (each run that reads it refreshes its modification time). ``clear``
removes what ``list`` shows for the same options and prints it, except that a temporary file is only removed
once untouched for a day (or DAYS, if longer): a younger one may be a running job's file being written. Nor
does it remove a cache that a live run holds (``dpt/cache/in_use.py``: a run locks its dataset folder and
DATALOADER.CACHE_DIR while it runs; a running job reads its memory-mapped test images until it ends): it names
the run and skips its caches. The lock of a killed run is stale; ``clear`` removes it.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from tabulate import tabulate

from dpt.cache.kinds import CACHE_FOLDERS, DATASET_FOLDER, KIND_NAMES, TEMPORARY, kind_of
from dpt.errors import ArgumentParser, cli_main
from dpt.cache.in_use import Holder, holders, is_live, lock_folder
from dpt.registry import DATASET_REGISTRY

TEMPORARY_MIN_AGE_DAYS = 1.0
DAY_S = 86400.0


@dataclass
class CacheFile:
    """One cache (or temporary) file: its kind, the dataset it belongs to, path, size in bytes, mtime."""

    kind: str
    dataset: str
    path: str
    size: int
    mtime: float

    def age_days(self, now: float) -> float:
        return max(0.0, now - self.mtime) / DAY_S


def _folders(root: Optional[str], cache_dirs: Sequence[str]) -> List[tuple]:
    """``(folder, dataset name or "", role for kind_of)`` to scan, each once: every dataset folder of ROOT itself
    (``DATASET_FOLDER``) and its cache folders, then ``cache_dirs``; a dataset folder is named as DATASET.NAME
    spells it."""
    names = {DATASET_REGISTRY.get(n).folder_name: n for n in DATASET_REGISTRY.names()}
    folders = []
    if root:
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if entry.is_dir():
                dataset = names.get(entry.name, entry.name)
                folders.append((entry.path, dataset, DATASET_FOLDER))
                folders += [(os.path.join(entry.path, sub), dataset, sub) for sub in CACHE_FOLDERS]
    folders += [(os.path.abspath(d), "", "") for d in cache_dirs]
    seen, unique = set(), []
    for folder, dataset, role in folders:
        key = (os.path.realpath(folder), role == DATASET_FOLDER)  # a cache folder also given as --cache-dir: once
        if os.path.isdir(folder) and key not in seen:
            seen.add(key)
            unique.append((folder, dataset, role))
    return unique


def find_caches(root: Optional[str], cache_dirs: Sequence[str] = ()) -> List[CacheFile]:
    """Every cache and temporary file under ROOT's dataset folders and in ``cache_dirs``, sorted by path."""
    found = []
    for folder, dataset_name, role in _folders(root, cache_dirs):
        for entry in os.scandir(folder):
            if not entry.is_file():
                continue
            kind = kind_of(entry.name, role)
            if kind is not None and kind.owns(entry.path):
                dataset = kind.match(entry.name).get("dataset") or dataset_name
                stat = entry.stat()
                found.append(CacheFile(kind.name, dataset, entry.path, stat.st_size, stat.st_mtime))
    return sorted(found, key=lambda c: c.path)


def select(caches: Sequence[CacheFile], older_than: Optional[float], kinds: Sequence[str], now: float,
           clearing: bool = False) -> List[CacheFile]:
    """The caches of ``kinds`` unused for more than ``older_than`` days (temporaries: at least a day when clearing)."""
    chosen = []
    for cache in caches:
        min_age = older_than or 0.0
        if clearing and cache.kind == TEMPORARY.name:
            min_age = max(min_age, TEMPORARY_MIN_AGE_DAYS)
        if cache.kind in kinds and cache.age_days(now) >= min_age:
            chosen.append(cache)
    return chosen


def split_held(caches: Sequence[CacheFile]) -> tuple:
    """``(free caches, {cache path: live holders}, stale lock files)`` for the folders of ``caches``."""
    live: Dict[str, List[Holder]] = {}
    stale: List[str] = []
    for folder in sorted({lock_folder(os.path.dirname(c.path)) for c in caches}):
        for holder in holders(folder):
            if is_live(holder):
                live.setdefault(folder, []).append(holder)
            else:
                stale.append(holder.path)
    held = {c.path: live[lock_folder(os.path.dirname(c.path))] for c in caches
            if lock_folder(os.path.dirname(c.path)) in live}
    return [c for c in caches if c.path not in held], held, stale


def human_size(n_bytes: float) -> str:
    """1234567 -> "1.2 MB" (decimal units)."""
    if n_bytes < 1000:
        return f"{n_bytes:.0f} B"
    for unit in ("KB", "MB"):
        n_bytes /= 1000
        if n_bytes < 1000:
            return f"{n_bytes:.1f} {unit}"
    return f"{n_bytes / 1000:.1f} GB"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="dpt-cache", description="List or clear the caches runs keep")
    parser.add_argument("command", choices=("list", "clear"))
    parser.add_argument("root", nargs="?", default=None,
                        help="DATASET.ROOT, the folder holding the dataset folders (default: $DATA or ./data)")
    parser.add_argument("--cache-dir", action="append", default=[], metavar="DIR",
                        help="also scan this folder (DATALOADER.CACHE_DIR); may be repeated")
    parser.add_argument("--older-than", type=float, default=None, metavar="DAYS",
                        help="only caches not used for more than DAYS days")
    parser.add_argument("--kind", action="append", choices=KIND_NAMES, default=None,
                        help="only this kind (may be repeated; default: all)")
    return parser


def _checked_root(args: argparse.Namespace) -> Optional[str]:
    """ROOT to scan (None: only ``--cache-dir``); raises on a bad argument."""
    root = args.root if args.root is not None else os.environ.get("DATA", "./data")
    if args.older_than is not None and args.older_than < 0:
        raise ValueError(f"--older-than {args.older_than}: expected a number of days >= 0")
    missing = [d for d in args.cache_dir if not os.path.isdir(d)]
    if missing:
        raise FileNotFoundError(f"--cache-dir {missing[0]}: folder not found")
    if not os.path.isdir(root):
        if args.root is not None or not args.cache_dir:
            raise FileNotFoundError(f"{root}: folder not found (pass ROOT, set $DATA, or use --cache-dir)")
        return None
    return root


@cli_main(build_parser)
def main(args: argparse.Namespace) -> None:
    """List (or clear) the selected caches with size and age."""
    root = _checked_root(args)
    now = time.time()
    chosen = select(find_caches(root, args.cache_dir), args.older_than, args.kind or KIND_NAMES, now,
                    clearing=args.command == "clear")
    rows = [[c.kind, c.dataset, human_size(c.size), f"{c.age_days(now):.1f}", c.path] for c in chosen]
    if rows:
        print(tabulate(rows, headers=["kind", "dataset", "size", "unused (days)", "path"], disable_numparse=True))
    total = human_size(sum(c.size for c in chosen))
    if args.command == "list":
        print(f"{len(chosen)} cache file(s), {total}")
        return
    free, held, stale = split_held(chosen)
    for path, runs in held.items():
        print(f"skipped {path}: in use by {'; '.join(h.describe() for h in runs)}")
    for lock in stale:
        with contextlib.suppress(FileNotFoundError):
            os.remove(lock)
        print(f"removed the stale lock {lock} (its run has ended)")
    for cache in free:
        try:
            os.remove(cache.path)
        except FileNotFoundError:  # removed meanwhile (another clear, or a writer renamed its temporary)
            pass
    kept = f", skipped {len(held)} in use by a live run" if held else ""
    print(f"removed {len(free)} cache file(s), {human_size(sum(c.size for c in free))}{kept}")


if __name__ == "__main__":
    sys.exit(main())
