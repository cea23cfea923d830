"""Fixtures for synthetic datasets in each dataset's real on-disk format (writers: dpt/demo/synthetic.py).

``make_data_cfg(root, name, ...)`` gives a default config pointing at a written dataset.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import pytest

from dpt.config import get_cfg_default
from dpt.config.access import set_key
from dpt.demo.synthetic import SPLIT_LAYOUT, SYNTHETIC_DATASETS, make_dataset, write_image  # noqa: F401

__all__ = [
    "SYNTHETIC_DATASETS",
    "data_root",
    "make_data_cfg",
    "make_dataset",
    "synthetic_root",
    "write_image",
]


def make_data_cfg(root: os.PathLike, name: str, num_shots: int = -1, seed: int = 1,
                  size: Tuple[int, int] = (32, 32), opts: Optional[Dict[str, Any]] = None):
    """A default config for dataset ``name`` under ``root``: no workers, CoOp's transforms.

    ``opts`` maps dotted keys to values, e.g. ``{"DATALOADER.TRAIN_X.BATCH_SIZE": 4}``.
    """
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    cfg.DATASET.NUM_SHOTS = num_shots
    cfg.SEED = seed
    cfg.INPUT.SIZE = tuple(size)
    cfg.INPUT.INTERPOLATION = "bicubic"
    cfg.INPUT.TRANSFORMS = ("random_resized_crop", "random_flip", "normalize")
    cfg.DATALOADER.NUM_WORKERS = 0
    for key, value in (opts or {}).items():
        set_key(cfg, key, value)
    return cfg


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A ROOT holding small OxfordPets, EuroSAT, DescribableTextures, Caltech101, FGVCAircraft and ImageNet."""
    root = tmp_path / "data"
    names = ("OxfordPets", "EuroSAT", "DescribableTextures", "Caltech101", "FGVCAircraft", "ImageNet")
    for i, name in enumerate(names):
        make_dataset(root, name, seed=i)
    return root


@pytest.fixture
def synthetic_root(tmp_path: Path) -> Callable[..., Tuple[Path, Dict[str, Any]]]:
    """Factory: ``synthetic_root(name, **make_dataset_kwargs) -> (root, info)`` in a fresh folder."""
    count = [0]

    def _make(name: str, **kwargs: Any) -> Tuple[Path, Dict[str, Any]]:
        count[0] += 1
        root = tmp_path / f"root{count[0]}"
        return root, make_dataset(root, name, **kwargs)

    return _make
