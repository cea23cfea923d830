"""Labels for a flat ``imagenet/images/val/`` folder (the raw ILSVRC2012 validation tarball layout).

The first of these found under ``<ROOT>/imagenet/`` labels the files:

1. ``val_labels.txt``: lines ``<file name> <wnid>``.
2. ``LOC_val_solution.csv`` (Kaggle "ImageNet Object Localization"): header
   ``ImageId,PredictionString``; file = ImageId + ``.JPEG``, wnid = first word of PredictionString.
3. ``ILSVRC2012_validation_ground_truth.txt`` (devkit; beside the folder or in
   ``ILSVRC2012_devkit_t12/data/``): line k = the 1-based ILSVRC2012_ID of the k-th file in sorted
   file-name order. IDs map to wnids through ``ILSVRC2012_id_to_wnid.txt`` (lines
   ``<ILSVRC2012_ID> <wnid>``) or else the devkit's ``meta.mat`` (needs scipy). ILSVRC2012_IDs
   are NOT in sorted-wnid order, so a sorted class list such as Kaggle's
   ``LOC_synset_mapping.txt`` cannot stand in for that map.

Every file in the folder must be labelled and every wnid must be a training class.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Set, Tuple

import numpy as np

from dpt.data.splits import list_images

_DEVKIT = os.path.join("ILSVRC2012_devkit_t12", "data")


def _first_existing(dataset_dir: str, name: str) -> Optional[str]:
    for folder in (dataset_dir, os.path.join(dataset_dir, _DEVKIT)):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None


def _read_val_labels(path: str) -> Dict[str, str]:
    with open(path) as f:
        return dict(line.split()[:2] for line in f if line.strip())


def _read_kaggle_solution(path: str) -> Dict[str, str]:
    labels = {}
    with open(path) as f:
        header = f.readline().strip()
        if header != "ImageId,PredictionString":
            raise ValueError(f"{path}: expected the header 'ImageId,PredictionString', got {header!r}")
        for line in f:
            if line.strip():
                image_id, prediction = line.strip().split(",", 1)
                labels[image_id + ".JPEG"] = prediction.split()[0]
    return labels


def _read_id_to_wnid(dataset_dir: str, dataset: str) -> Tuple[Dict[int, str], str]:
    text = _first_existing(dataset_dir, "ILSVRC2012_id_to_wnid.txt")
    if text:
        with open(text) as f:
            return {int(i): w for i, w in (line.split()[:2] for line in f if line.strip())}, text
    meta = _first_existing(dataset_dir, "meta.mat")
    if meta is None:
        raise FileNotFoundError(
            f"dataset {dataset}: ILSVRC2012_validation_ground_truth.txt needs ILSVRC2012_id_to_wnid.txt "
            f"or meta.mat in {dataset_dir} or {os.path.join(dataset_dir, _DEVKIT)}"
        )
    try:
        from scipy.io import loadmat
    except ImportError:
        raise FileNotFoundError(
            f"dataset {dataset}: reading {meta} needs scipy; pip install scipy or write "
            f"ILSVRC2012_id_to_wnid.txt (lines '<ILSVRC2012_ID> <wnid>')"
        ) from None
    synsets = np.asarray(loadmat(meta)["synsets"]).ravel()
    ids = [int(np.asarray(s["ILSVRC2012_ID"]).ravel()[0]) for s in synsets]
    return dict(zip(ids, (str(np.asarray(s["WNID"]).ravel()[0]) for s in synsets))), meta


def _read_ground_truth(path: str, files: List[str], dataset_dir: str, dataset: str) -> Dict[str, str]:
    id_to_wnid, map_file = _read_id_to_wnid(dataset_dir, dataset)
    with open(path) as f:
        ids = [int(line) for line in f if line.strip()]
    if len(ids) != len(files):
        raise ValueError(f"{path}: {len(ids)} labels for {len(files)} files in the val folder; expected one per file")
    unknown = sorted(set(ids) - set(id_to_wnid))
    if unknown:
        raise ValueError(f"{path}: ILSVRC2012_IDs {unknown[:5]} are not in {map_file}")
    return {os.path.basename(p): id_to_wnid[i] for p, i in zip(files, ids)}


def read_flat_val(dataset_dir: str, val_dir: str, wnids: Set[str], dataset: str) -> List[Tuple[str, str, str]]:
    """``(absolute image path, wnid, label file)`` for each file of ``val_dir``, sorted by name."""
    files = list_images(val_dir)
    readers = (
        ("val_labels.txt", _read_val_labels),
        ("LOC_val_solution.csv", _read_kaggle_solution),
        ("ILSVRC2012_validation_ground_truth.txt", lambda p: _read_ground_truth(p, files, dataset_dir, dataset)),
    )
    for name, reader in readers:
        path = _first_existing(dataset_dir, name)
        if path:
            labels = reader(path)
            break
    else:
        raise FileNotFoundError(
            f"dataset {dataset}: {val_dir} has no <wnid>/ folders and no label file was found; expected "
            f"{', '.join(n for n, _ in readers)} in {dataset_dir}"
        )
    unlabelled = [os.path.basename(p) for p in files if os.path.basename(p) not in labels]
    if unlabelled:
        raise ValueError(f"{path}: no label for {len(unlabelled)} val files, e.g. {unlabelled[0]}")
    bad = sorted({w for w in labels.values() if w not in wnids})
    if bad:
        raise ValueError(f"{path}: wnids {bad[:5]} have no images/train/<wnid>/ folder")
    return [(os.path.join(val_dir, name), labels[name], path) for name in sorted(labels)]
