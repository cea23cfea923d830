"""``build_dataset``: the only way datasets are created (by DATASET.NAME, through the registry)."""
from __future__ import annotations

from yacs.config import CfgNode

from dpt.data.dataset_base import DatasetBase
from dpt.registry import DATASET_REGISTRY


def build_dataset(cfg: CfgNode) -> DatasetBase:
    """Build the dataset registered as DATASET.NAME; an unknown name lists the valid ones.

    Config keys read: DATASET.NAME, VERBOSE (plus each reader's keys).
    """
    dataset_cls = DATASET_REGISTRY.get(cfg.DATASET.NAME)
    if cfg.VERBOSE:
        print(f"Loading dataset: {cfg.DATASET.NAME}")
    return dataset_cls(cfg)
