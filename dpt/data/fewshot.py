"""Few-shot subsets: Dassl's exact sampler (REFERENCE 2.4) and its per-(shots, seed) JSON cache.

Sampling consumes Python's global ``random`` instance, seeded by ``SEED`` before the dataset is
built; with the same ordered split lists it draws the same subsets as CoOp/DPT.

The cache is ``<dataset_dir>/split_fewshot/shot_{N}-seed_{S}.json`` holding
``{"train": [...], "val": [...]}`` lists of ``[path relative to the image folder, label,
classname]``. Unlike Dassl's pickle it survives moving the data folder and never runs code on
load. A Dassl ``.pkl`` next to it is ignored (never unpickled).
"""
from __future__ import annotations

import os
import random
import warnings
from typing import Dict, List, Sequence, Tuple

from dpt.data.atomic import write_json_once
from dpt.data.datum import Datum
from dpt.data.splits import entries_from_items, group_by_label, items_from_entries, load_json


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
    return os.path.join(dataset_dir, "split_fewshot", f"shot_{num_shots}-seed_{seed}.json")


def _load_cache(path: str, image_dir: str, keys: Sequence[str], dataset: str) -> Dict[str, List[Datum]]:
    data = load_json(path, "few-shot cache")
    if not isinstance(data, dict) or any(k not in data for k in keys):
        raise ValueError(f"{path}: corrupt few-shot cache, expected keys {', '.join(keys)}; delete it to resample")
    return {k: items_from_entries(data[k], image_dir, f"{path} [{k}] of dataset {dataset}") for k in keys}


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
    """Few-shot train (``num_shots``) and val (``min(num_shots, 4)``), from the cache or sampled.

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
    if os.path.exists(path):
        print(f"Loading preprocessed few-shot data from {path}")
        data = _load_cache(path, image_dir, keys, dataset)
        return data["train"], data["val"] if sample_val else list(val)
    train = generate_fewshot_dataset(train, num_shots, "train")
    val = generate_fewshot_dataset(val, min(num_shots, 4), "val") if sample_val else list(val)
    print(f"Saving preprocessed few-shot data to {path}")
    splits = {"train": train, "val": val}
    if not write_json_once({k: entries_from_items(splits[k], image_dir) for k in keys}, path):
        print(f"Another run created {path} meanwhile; using its subset")
        data = _load_cache(path, image_dir, keys, dataset)
        return data["train"], data["val"] if sample_val else list(val)
    return train, val
