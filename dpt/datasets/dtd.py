"""Describable Textures (47 categories): ``dtd/images/<category>/`` + ``split_zhou_DescribableTextures.json``."""
from __future__ import annotations

from typing import Tuple

from dpt.data.dataset_base import SplitDataset, folder_fallback
from dpt.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class DescribableTextures(SplitDataset):
    """Fallback: sorted category folders split 50/20/30 per class; class name = folder name."""

    folder_name = "dtd"
    image_subdir = "images"
    layout = "images/<category>/ and split_zhou_DescribableTextures.json"

    def read_fallback(self, dataset_dir: str, image_dir: str, split_path: str) -> Tuple[list, list, list]:
        return folder_fallback(self.name, image_dir, split_path)
