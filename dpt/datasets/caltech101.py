"""Caltech-101 (100 object classes): ``caltech-101/101_ObjectCategories/`` + ``split_zhou_Caltech101.json``."""
from __future__ import annotations

from typing import Tuple

from dpt.data.dataset_base import SplitDataset, folder_fallback
from dpt.registry import DATASET_REGISTRY

IGNORED = ("BACKGROUND_Google", "Faces_easy")
NEW_CNAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}


@DATASET_REGISTRY.register()
class Caltech101(SplitDataset):
    """Fallback: sorted folders minus ``IGNORED``, split 50/20/30, a few folders renamed (``NEW_CNAMES``)."""

    folder_name = "caltech-101"
    image_subdir = "101_ObjectCategories"
    layout = "101_ObjectCategories/<class>/ and split_zhou_Caltech101.json"

    def read_fallback(self, dataset_dir: str, image_dir: str, split_path: str) -> Tuple[list, list, list]:
        return folder_fallback(self.name, image_dir, split_path, ignored=IGNORED, new_cnames=NEW_CNAMES)
