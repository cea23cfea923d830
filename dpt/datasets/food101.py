"""Food-101 (101 dishes): ``food-101/images/<dish>/`` + ``split_zhou_Food101.json``."""
from __future__ import annotations

from typing import Tuple

from dpt.data.dataset_base import SplitDataset, folder_fallback
from dpt.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class Food101(SplitDataset):
    """Fallback: sorted dish folders split 50/20/30 per class; class name = folder name."""

    folder_name = "food-101"
    image_subdir = "images"
    layout = "images/<dish>/ and split_zhou_Food101.json"

    def read_fallback(self, dataset_dir: str, image_dir: str, split_path: str) -> Tuple[list, list, list]:
        return folder_fallback(self.name, image_dir, split_path)
