"""EuroSAT (10 land-use classes): ``eurosat/2750/<Class>/`` + ``split_zhou_EuroSAT.json``."""
from __future__ import annotations

from typing import Tuple

from dpt.data.dataset_base import SplitDataset, folder_fallback
from dpt.registry import DATASET_REGISTRY

# Folder name -> class name used in prompts (the shipped JSON already stores the new names).
NEW_CNAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}


@DATASET_REGISTRY.register()
class EuroSAT(SplitDataset):
    """Fallback: sorted class folders split 50/20/30, folder names renamed by ``NEW_CNAMES``."""

    folder_name = "eurosat"
    image_subdir = "2750"
    layout = "2750/<Class>/ and split_zhou_EuroSAT.json"

    def read_fallback(self, dataset_dir: str, image_dir: str, split_path: str) -> Tuple[list, list, list]:
        return folder_fallback(self.name, image_dir, split_path, new_cnames=NEW_CNAMES)
