"""Fast data paths that give the same tensors as reading every image every epoch.

- ``preload_images``: decode the (few-shot) training images once into uint8 arrays held by the
  main process; forked loader workers share them copy-on-write, and augmentation runs on a PIL
  view of the array, so every random crop / flip is what the plain path would produce.
- ``test_cache``: the deterministic test-time steps (resize + center crop, everything before
  ToTensor) stored once on disk as uint8 ``[N, H, W, 3]`` ``.npy`` and memory-mapped; ToTensor and
  normalisation still run per sample. The file name carries a hash of the dataset, split, the
  transform's repr, the torchvision / Pillow versions and every image's (path, size, mtime), so
  changed images or settings select a new file. Concurrent creators each write a private temporary
  file and ``os.replace`` it into place (identical contents; the last one wins).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Callable, List, Sequence

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from dpt.data.atomic import atomic_path
from dpt.data.datum import Datum
from dpt.data.images import read_image


def decoded_bytes(items: Sequence[Datum]) -> int:
    """Memory the decoded RGB images would take, from the file headers only (no decoding)."""
    total = 0
    for item in items:
        with Image.open(item.impath) as img:
            total += img.size[0] * img.size[1] * 3
    return total


def preload_images(items: Sequence[Datum]) -> List[np.ndarray]:
    """Decode each image once: a list of uint8 ``[H, W, 3]`` arrays in ``items`` order."""
    return [np.asarray(read_image(item.impath)) for item in items]


class _PrefixDataset(Dataset):
    """Applies the pre-ToTensor steps; returns uint8 ``[H, W, 3]`` tensors (for the cache writer)."""

    def __init__(self, items: Sequence[Datum], prefix: Callable) -> None:
        self.items, self.prefix = items, prefix

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.prefix(read_image(self.items[idx].impath)), dtype=np.uint8))


def test_cache_path(cache_dir: str, dataset: str, split: str, items: Sequence[Datum], prefix: Callable) -> str:
    """``<cache_dir>/<dataset>_<split>_<digest>.npy``; the digest changes with images or settings."""
    files = [(item.impath, *_stat(item.impath)) for item in items]
    key = json.dumps([dataset, split, repr(prefix), torchvision.__version__, PIL.__version__, files])
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return os.path.join(cache_dir, f"{dataset}_{split}_{digest}.npy")


def _stat(path: str) -> tuple:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _write_test_cache(path: str, items: Sequence[Datum], prefix: Callable, num_workers: int) -> None:
    loader = DataLoader(_PrefixDataset(items, prefix), batch_size=64, num_workers=num_workers)
    with atomic_path(path) as tmp:
        array = None
        start = 0
        for batch in loader:  # [b, H, W, 3] uint8
            if array is None:
                shape = (len(items),) + tuple(batch.shape[1:])
                array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            array[start : start + len(batch)] = batch.numpy()
            start += len(batch)
        array.flush()
        del array


def test_cache(
    items: Sequence[Datum], prefix: Callable, cache_dir: str, dataset: str, split: str, num_workers: int = 0
) -> np.ndarray:
    """The uint8 ``[N, H, W, 3]`` outputs of ``prefix`` for ``items``, built once, memory-mapped.

    Args:
        prefix: the deterministic PIL -> PIL steps of the test transform (see
            ``transforms.split_at_to_tensor``); all outputs must have one size (center crop).
        cache_dir: folder for the ``.npy`` files (created if missing).
        dataset, split: names used in the file name and messages.
        num_workers: loader workers used to build the cache.
    """
    path = test_cache_path(cache_dir, dataset, split, items, prefix)
    if os.path.exists(path):
        print(f"Loading test-time image cache from {path}")
    else:
        print(f"Building test-time image cache {path} ({len(items)} images)")
        _write_test_cache(path, items, prefix, num_workers)
    try:
        array = np.load(path, mmap_mode="r")
    except ValueError as err:
        raise ValueError(f"{path}: corrupt image cache ({err}); delete it to rebuild") from err
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[0] != len(items) or array.shape[3] != 3:
        raise ValueError(
            f"{path}: image cache holds {array.dtype} {array.shape}, expected uint8 [{len(items)}, H, W, 3]; "
            "delete it to rebuild"
        )
    return array
