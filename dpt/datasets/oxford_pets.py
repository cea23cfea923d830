"""Oxford-IIIT Pets (37 breeds): ``oxford_pets/images/`` + ``split_zhou_OxfordPets.json`` (docs/reference.md 2.2)."""
from __future__ import annotations

import os
from typing import List, Tuple

from dpt.data.dataset_base import SplitDataset, require_fallback_files
from dpt.data.datum import Datum
from dpt.data.splits import split_trainval
from dpt.registry import DATASET_REGISTRY


def _read_annotations(path: str, image_dir: str) -> List[Datum]:
    """Lines ``imname classid species breedid``: label = classid - 1, breed = name minus ``_N``, lower-cased."""
    items = []
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            imname, classid = line.split()[:2]
            breed = "_".join(imname.split("_")[:-1]).lower()
            impath = os.path.join(image_dir, imname + ".jpg")
            items.append(Datum(impath, int(classid) - 1, classname=breed, source=path))
    return items


@DATASET_REGISTRY.register()
class OxfordPets(SplitDataset):
    """Fallback: ``annotations/trainval.txt`` split 80/20 per class, ``annotations/test.txt`` as test."""

    folder_name = "oxford_pets"
    image_subdir = "images"
    layout = "images/ and split_zhou_OxfordPets.json (or annotations/trainval.txt, test.txt)"

    def read_fallback(self, dataset_dir: str, image_dir: str, split_path: str) -> Tuple[list, list, list]:
        trainval_file, test_file = (os.path.join(dataset_dir, "annotations", f) for f in ("trainval.txt", "test.txt"))
        require_fallback_files(split_path, self.name, [trainval_file, test_file])
        trainval = _read_annotations(trainval_file, image_dir)
        test = _read_annotations(test_file, image_dir)
        train, val = split_trainval(trainval)
        return train, val, test
