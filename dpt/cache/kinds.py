"""The table of cache kinds: where each cache lives, how its file is named, and which module writes it.

Why: the writers build their paths from this table and ``dpt-cache`` recognises files with the same
entries, so a new cache kind is one row here and both sides follow (a cache the tool cannot see is
never cleared). A row's ``file_name`` is a format string; each ``{field}`` has a pattern in
``FIELD_PATTERNS``, from which the row's regular expression is built. A file whose name it shares with files
we must never remove (a split file written by the fallback and CoOp's downloaded one) is ours only when its
JSON holds the row's ``marker`` key.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Dict, Optional

# Folders under a dataset folder (or DATALOADER.CACHE_DIR for ``IMAGE_CACHE``) that hold caches.
FEWSHOT_FOLDER = "split_fewshot"
IMAGE_CACHE = "image_cache"
# The dataset folder itself: only the rows that name it are looked for there (it holds the user's data).
DATASET_FOLDER = "."

FIELD_PATTERNS = {
    "shots": r"\d+",
    "seed": r"-?\d+",
    "dataset": r".+",
    "split": r"[a-z]+",
    # 24 digits: feature caches named before the digest was shared (dpt.cache.digest); still listed and cleared
    "digest": r"[0-9a-f]{20}(?:[0-9a-f]{4})?",
    "target": r".+",
    "random": r"[A-Za-z0-9_]+",
    "inode": r"\d+",
}


@dataclass(frozen=True)
class CacheKind:
    """One kind of cache file.

    Args:
        name: the ``dpt-cache --kind`` value.
        folder: the folder it lives in (``FEWSHOT_FOLDER``, ``IMAGE_CACHE``, ``DATASET_FOLDER``) or "" for any
            scanned cache folder.
        file_name: format string of its file name (fields in ``FIELD_PATTERNS``).
        writer: the module that writes it.
        marker: a top-level JSON key only our writer puts in the file ("": the name alone says it is ours).
    """

    name: str
    folder: str
    file_name: str
    writer: str
    marker: str = ""

    @property
    def pattern(self) -> "re.Pattern[str]":
        parts = re.split(r"\{(\w+)\}", self.file_name)  # literal, field, literal, field, ...
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>{FIELD_PATTERNS[p]})" for i, p in enumerate(parts))
        return re.compile(regex)

    def match(self, file_name: str) -> Optional[Dict[str, str]]:
        """The fields of ``file_name`` if it is a file of this kind, else None."""
        found = self.pattern.fullmatch(file_name)
        return found.groupdict() if found else None

    def path(self, folder: str, **fields: object) -> str:
        """``<folder>/<file_name with fields>``."""
        return os.path.join(folder, self.file_name.format(**fields))

    def owns(self, path: str) -> bool:
        """Whether the file at ``path`` (a name of this kind) is ours: no marker, or a JSON object holding it.

        An unreadable or corrupt file is not ours: ``dpt-cache`` never removes what it cannot tell.
        """
        if not self.marker:
            return True
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and self.marker in data


FEWSHOT = CacheKind("fewshot", FEWSHOT_FOLDER, "shot_{shots}-seed_{seed}.json", "dpt.data.fewshot")
TEST_IMAGES = CacheKind("images", IMAGE_CACHE, "{dataset}_{digest}.npy", "dpt.data.image_cache")
SELECTOR = CacheKind("selector", IMAGE_CACHE, "selector_{dataset}_{split}_{digest}.pt", "dpt.trainers.feature_cache")
CLIP_FEATURES = CacheKind(
    "clip_features", IMAGE_CACHE, "clip_features_{dataset}_{split}_{digest}.pt", "dpt.trainers.linear_probe"
)
# A split the fallback built from the original files (docs/reference.md 2.2) under the name of CoOp's download;
# its "source" record (what it was made from) marks it as ours. A cleared one is made again by the next run.
FALLBACK_SPLIT = CacheKind("fallback_split", DATASET_FOLDER, "split_zhou_{dataset}.json", "dpt.data.dataset_base",
                           marker="source")
TEMPORARY = CacheKind("temporary", "", ".{target}.{random}.tmp", "dpt.cache.atomic")
REPLACING_CLAIM = CacheKind("temporary", "", ".{target}.replacing-{inode}", "dpt.cache.atomic")
# Ordered: the first row that matches a file name decides its kind (``images`` matches any ``*_<digest>.npy``).
CACHE_KINDS = (FEWSHOT, SELECTOR, CLIP_FEATURES, TEST_IMAGES, FALLBACK_SPLIT, TEMPORARY, REPLACING_CLAIM)
KIND_NAMES = tuple(dict.fromkeys(kind.name for kind in CACHE_KINDS))
# Cache folders: the sub-folders of a dataset folder that hold only caches (not the dataset folder itself).
CACHE_FOLDERS = tuple(dict.fromkeys(kind.folder for kind in CACHE_KINDS if kind.folder not in ("", DATASET_FOLDER)))


def kind_of(file_name: str, folder: str = "") -> Optional[CacheKind]:
    """The first row of ``CACHE_KINDS`` that ``file_name`` matches, or None.

    ``folder`` is ``DATASET_FOLDER`` for a file in the dataset folder itself (only its rows), else a cache folder
    (every other row).
    """
    in_dataset_folder = folder == DATASET_FOLDER
    rows = (kind for kind in CACHE_KINDS if (kind.folder == DATASET_FOLDER) == in_dataset_folder)
    return next((kind for kind in rows if kind.match(file_name) is not None), None)


def image_cache_folder(cache_dir: str, dataset_dir: str) -> str:
    """Where test-image and feature caches go: DATALOADER.CACHE_DIR if set, else ``<dataset_dir>/image_cache``."""
    return cache_dir or os.path.join(dataset_dir, IMAGE_CACHE)


def fewshot_folder(dataset_dir: str) -> str:
    """``<dataset_dir>/split_fewshot``: the few-shot subsets, shared by every trainer and backbone."""
    return os.path.join(dataset_dir, FEWSHOT_FOLDER)
