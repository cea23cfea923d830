"""Fast data paths that give the same tensors as reading every image every epoch.

- ``PackedImages``: the (few-shot) training images decoded once into one uint8 buffer held by
  the main process. Forked loader workers share it copy-on-write; under spawn / forkserver torch
  passes the buffer through shared memory instead of copying it. Augmentation runs on a PIL view
  of each array, so every random crop / flip equals the plain path's.
- ``MappedImages`` / ``load_test_cache``: the deterministic test-time steps (resize + center
  crop: everything before ToTensor) stored once on disk as uint8 ``[N, H, W, 3]`` ``.npy`` and
  memory-mapped in each worker; ToTensor and normalisation still run per sample. The file name
  carries a hash of the dataset, the transform's repr, the torchvision / Pillow versions and every
  image's (path, size, mtime), so changed images or settings select a new file: a cache is never
  used for other sources. Concurrent creators each write a private temporary file and
  ``os.replace`` it into place (same contents; the last one wins). Superseded files are not
  deleted (a running job may still map them); each use refreshes a file's modification time, and
  ``dpt-cache clear --older-than DAYS`` removes the ones no run used for DAYS days.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from dpt.cache.atomic import atomic_path, mark_used
from dpt.cache.digest import source_digest
from dpt.cache.kinds import TEST_IMAGES
from dpt.data.datum import Datum
from dpt.data.images import read_image


def image_shapes(items: Sequence[Datum], max_bytes: Optional[int] = None) -> Optional[List[Tuple[int, int, int]]]:
    """Decoded RGB shapes ``(H, W, 3)`` read from the file headers only (no decoding).

    Returns None as soon as the decoded total passes ``max_bytes`` (so a full-size split is not
    scanned to the end just to learn that it does not fit).
    """
    shapes, total = [], 0
    for item in items:
        with Image.open(item.impath) as img:
            shapes.append((img.size[1], img.size[0], 3))
        total += img.size[0] * img.size[1] * 3
        if max_bytes is not None and total > max_bytes:
            return None
    return shapes


class PackedImages:
    """Decoded uint8 RGB images of varying sizes packed into one flat tensor.

    ``images[i]`` is a read-only ``[H_i, W_i, 3]`` uint8 numpy view, equal to
    ``np.asarray(read_image(items[i].impath))``.
    """

    def __init__(self, items: Sequence[Datum], shapes: Optional[Sequence[Tuple[int, int, int]]] = None) -> None:
        self.shapes = list(shapes) if shapes is not None else image_shapes(items)
        sizes = [h * w * c for h, w, c in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        self.data = torch.empty(self.offsets[-1], dtype=torch.uint8)  # [sum of H*W*3]
        flat = self.data.numpy()
        for i, item in enumerate(items):
            pixels = np.asarray(read_image(item.impath))
            if pixels.shape != self.shapes[i]:
                raise ValueError(f"{item.impath}: decoded shape {pixels.shape} differs from its header {self.shapes[i]}")
            flat[self.offsets[i] : self.offsets[i + 1]] = pixels.reshape(-1)

    @property
    def nbytes(self) -> int:
        return self.offsets[-1]

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, idx: int) -> np.ndarray:
        view = self.data.numpy()[self.offsets[idx] : self.offsets[idx + 1]].reshape(self.shapes[idx])
        view.flags.writeable = False
        return view


class MappedImages:
    """A memory-mapped uint8 ``[N, H, W, 3]`` ``.npy``, opened lazily in each process.

    Pickles as its path, so loader workers map the file instead of receiving a copy.
    """

    def __init__(self, path: str, expected_len: int) -> None:
        self.path = path
        self._array: Optional[np.ndarray] = None
        array = self._open()
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[0] != expected_len or array.shape[3] != 3:
            raise ValueError(
                f"{path}: image cache holds {array.dtype} {array.shape}, expected uint8 "
                f"[{expected_len}, H, W, 3]; delete it to rebuild"
            )
        self.shape = array.shape

    def _open(self) -> np.ndarray:
        if self._array is None:
            try:
                self._array = np.load(self.path, mmap_mode="r")
            except ValueError as err:
                raise ValueError(f"{self.path}: corrupt image cache ({err}); delete it to rebuild") from err
        return self._array

    def __getstate__(self) -> Dict[str, object]:
        return {"path": self.path, "shape": self.shape, "_array": None}

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx: int) -> np.ndarray:
        return self._open()[idx]  # [H, W, 3] uint8, read-only


class _PrefixDataset(Dataset):
    """Applies the pre-ToTensor steps; returns uint8 ``[H, W, 3]`` tensors (for the cache writer)."""

    def __init__(self, items: Sequence[Datum], prefix: Callable) -> None:
        self.items, self.prefix = items, prefix

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.prefix(read_image(self.items[idx].impath)), dtype=np.uint8))


def cache_file(cache_dir: str, dataset: str, items: Sequence[Datum], prefix: Callable) -> str:
    """``<cache_dir>/<dataset>_<digest>.npy``: the digest changes with the images or the settings.

    The split name is not part of the key, so ImageNet's identical val and test share one file.
    """
    digest = source_digest([dataset, repr(prefix), torchvision.__version__, PIL.__version__], items)
    return TEST_IMAGES.path(cache_dir, dataset=dataset, digest=digest)


def _write_cache(path: str, items: Sequence[Datum], prefix: Callable, num_workers: int) -> None:
    # Own generator: iterating a DataLoader draws a seed from the global RNG, and a run that builds the
    # cache must consume exactly the random numbers of a run that finds it (same training either way).
    generator = torch.Generator().manual_seed(0)
    loader = DataLoader(_PrefixDataset(items, prefix), batch_size=64, num_workers=num_workers, generator=generator)
    with atomic_path(path) as tmp:
        array, start = None, 0
        for batch in loader:  # [b, H, W, 3] uint8
            if array is None:
                shape = (len(items),) + tuple(batch.shape[1:])
                array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            array[start : start + len(batch)] = batch.numpy()
            start += len(batch)
        array.flush()
        del array


def load_test_cache(
    items: Sequence[Datum], prefix: Callable, cache_dir: str, dataset: str, split: str, num_workers: int = 0
) -> MappedImages:
    """The uint8 ``[N, H, W, 3]`` outputs of ``prefix`` for ``items``: built once, then memory-mapped.

    Args:
        prefix: the deterministic PIL -> PIL steps of the test transform (see
            ``transforms.split_at_to_tensor``); all outputs must have one size (center crop).
        cache_dir: folder for the ``.npy`` files (created if missing).
        dataset, split: for the file name and messages.
        num_workers: loader workers used while building.
    """
    path = cache_file(cache_dir, dataset, items, prefix)
    if os.path.exists(path):
        print(f"Loading {split} image cache from {path}")
        mark_used(path)
    else:
        print(f"Building {split} image cache {path} ({len(items):,} images)")
        _write_cache(path, items, prefix, num_workers)
    return MappedImages(path, len(items))
