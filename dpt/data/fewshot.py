"""Few-shot subsets: Dassl's exact sampler (docs/reference.md 2.4) and its per-(shots, seed) JSON cache.

Sampling consumes Python's global ``random`` instance, seeded by ``SEED`` before the dataset is
built; with the same ordered split lists it draws the same subsets as CoOp/DPT.

The cache is ``<dataset_dir>/split_fewshot/shot_{N}-seed_{S}.json`` holding
``{"train": [...], "val": [...], "source": {...}}``: lists of ``[path relative to the image folder, label,
classname]`` and what they were drawn from (sampler version, shots, seed and a digest of the full split
lists). Unlike Dassl's pickle it survives moving the data folder, never runs code on load, and is never
used once its split lists changed (a renamed class, a moved image): such a cache, or one without the
record, is resampled and replaced with a note. A Dassl ``.pkl`` next to it is ignored (never unpickled).
"""
from __future__ import annotations

import json
import os
import random
import time
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

from dpt.cache.atomic import CLAIM_TIMEOUT_S, mark_used, replace_json_once, write_json_once
from dpt.cache.kinds import FEWSHOT, fewshot_folder
from dpt.data.datum import Datum
from dpt.data.splits import entries_from_items, group_by_label, items_from_entries, items_sha256

# Recorded in every cache; bump when generate_fewshot_dataset changes which items it draws.
SAMPLER_VERSION = 1


def generate_fewshot_dataset(items: Sequence[Datum], num_shots: int, split: str = "train") -> List[Datum]:
    """Sample ``num_shots`` items per label with ``random.sample`` (Dassl, repeat=False).

    Labels are visited in order of first appearance in ``items``; a class with fewer than
    ``num_shots`` items keeps all of them (with a warning). ``num_shots < 1`` returns ``items``.
    """
    if num_shots < 1:
        return list(items)
    print(f"Creating a {num_shots}-shot dataset")
    output: List[Datum] = []
    for label, group in group_by_label(items).items():
        if len(group) >= num_shots:
            output.extend(random.sample(group, num_shots))
        else:
            warnings.warn(
                f"{split}: class {label} ({group[0].classname!r}) has {len(group)} images, "
                f"fewer than {num_shots} shots; taking all of them"
            )
            output.extend(group)
    return output


def fewshot_cache_path(dataset_dir: str, num_shots: int, seed: int) -> str:
    """``<dataset_dir>/split_fewshot/shot_{N}-seed_{S}.json``: shared by every trainer and backbone."""
    return FEWSHOT.path(fewshot_folder(dataset_dir), shots=num_shots, seed=seed)


def fewshot_source(
    train: Sequence[Datum], val: Sequence[Datum], num_shots: int, seed: int, image_dir: str, sample_val: bool
) -> Dict[str, Any]:
    """What a cache is drawn from: sampler version, shots, seed and digests of the full train / val lists."""
    return {
        "sampler": SAMPLER_VERSION,
        "shots": num_shots,
        "seed": seed,
        "train_sha256": items_sha256(train, image_dir),
        "val_sha256": items_sha256(val, image_dir) if sample_val else None,
    }


def _stale_reason(data: Any, keys: Sequence[str], source: Dict[str, Any]) -> Optional[str]:
    """Why a parsed cache must not be used, or None when it was drawn from ``source``."""
    if not isinstance(data, dict) or any(k not in data for k in keys):
        return f"lacks the keys {', '.join(keys)}"
    recorded = data.get("source")
    if not isinstance(recorded, dict):
        return "records no source (an older version wrote it)"
    for key in ("train_sha256", "val_sha256"):
        if recorded.get(key) != source[key]:
            split = key.split("_")[0]
            return f"was sampled from another {split} list (an image, label or class name changed)"
    for key in ("shots", "seed", "sampler"):
        if recorded.get(key) != source[key]:
            return f"was sampled with {key} {recorded.get(key)!r}, not {source[key]!r}"
    return None


def _read_cache(
    path: str, keys: Sequence[str], source: Dict[str, Any]
) -> Tuple[Optional[Dict[str, Any]], Optional[str], Optional[os.stat_result]]:
    """``(data, None, stat)`` for a usable cache, ``(None, reason, stat)`` for a stale one, all None if missing."""
    try:
        with open(path) as f:
            stat = os.fstat(f.fileno())
            try:
                data = json.load(f)
            except json.JSONDecodeError as err:
                return None, f"is unreadable ({err})", stat
    except FileNotFoundError:
        return None, None, None
    reason = _stale_reason(data, keys, source)
    return (None if reason else data), reason, stat


def _cached_splits(
    data: Dict[str, Any], path: str, image_dir: str, dataset: str, full_val: Sequence[Datum], sample_val: bool
) -> Tuple[List[Datum], List[Datum]]:
    """The cached train (and val, else ``full_val``) as Datums; a listed image that is gone names the cache."""
    def items(key: str) -> List[Datum]:
        return items_from_entries(data[key], image_dir, f"{path} [{key}] of dataset {dataset}")

    return items("train"), items("val") if sample_val else list(full_val)


def load_or_create_fewshot(
    train: Sequence[Datum],
    val: Sequence[Datum],
    num_shots: int,
    seed: int,
    dataset_dir: str,
    image_dir: str,
    dataset: str,
    sample_val: bool = True,
) -> Tuple[List[Datum], List[Datum]]:
    """Few-shot train (``num_shots``) and val (``min(num_shots, 4)``), from a matching cache or sampled.

    A cache drawn from other lists, shots, seed or sampler version is resampled and replaced atomically; when
    several runs create or replace it at once, the first one's subset is published and used by all.

    Args:
        train, val: full splits in their file order (the order fixes which items are drawn).
        num_shots: DATASET.NUM_SHOTS; < 1 returns the splits unchanged and touches no file.
        seed: SEED, part of the cache name only (the caller has already seeded ``random``).
        dataset_dir: the dataset folder holding ``split_fewshot/``.
        image_dir: folder the cached paths are relative to.
        dataset: registered name, for messages.
        sample_val: False for ImageNet: val is left untouched and the cache holds only "train".
    """
    if num_shots < 1:
        return list(train), list(val)
    path = fewshot_cache_path(dataset_dir, num_shots, seed)
    pkl = os.path.splitext(path)[0] + ".pkl"
    if os.path.exists(pkl):
        print(f"Note: ignoring Dassl pickle cache {pkl} (never unpickled); using {path}")
    keys = ("train", "val") if sample_val else ("train",)
    source = fewshot_source(train, val, num_shots, seed, image_dir, sample_val)
    data, reason, stat = _read_cache(path, keys, source)
    if data is not None:
        print(f"Loading preprocessed few-shot data from {path}")
        mark_used(path)
        return _cached_splits(data, path, image_dir, dataset, val, sample_val)
    if reason:
        print(f"Note: few-shot cache {path} {reason}; resampling and replacing it")
    few_train = generate_fewshot_dataset(train, num_shots, "train")
    few_val = generate_fewshot_dataset(val, min(num_shots, 4), "val") if sample_val else list(val)
    print(f"Saving preprocessed few-shot data to {path}")
    splits = {"train": few_train, "val": few_val}
    payload = {**{k: entries_from_items(splits[k], image_dir) for k in keys}, "source": source}
    deadline = time.time() + 2 * CLAIM_TIMEOUT_S
    while not (write_json_once(payload, path) if stat is None else replace_json_once(payload, path, stat)):
        data, _, stat = _read_cache(path, keys, source)  # another run published (or is replacing) first
        if data is not None:
            print(f"Another run created {path} meanwhile; using its subset")
            return _cached_splits(data, path, image_dir, dataset, val, sample_val)
        if time.time() > deadline:
            raise RuntimeError(f"{path}: another run kept replacing this few-shot cache; delete it and retry")
        time.sleep(0.05)
    return few_train, few_val
