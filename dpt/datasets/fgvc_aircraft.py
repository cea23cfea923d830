"""FGVC-Aircraft 2013b (100 variants): the archive's ``data/`` folder renamed ``fgvc_aircraft/``.

There is no split JSON: the official ``images_variant_{train,val,test}.txt`` define the splits.
"""
from __future__ import annotations

import os
from typing import Dict, List, Tuple

from dpt.data.dataset_base import SplitDataset
from dpt.data.datum import Datum
from dpt.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class FGVCAircraft(SplitDataset):
    """Label = line index in ``variants.txt``; split lines ``<id> <variant with spaces>`` -> ``images/<id>.jpg``."""

    folder_name = "fgvc_aircraft"
    image_subdir = "images"
    layout = "images/, variants.txt and images_variant_{train,val,test}.txt"
    required_files = ("variants.txt", "images_variant_train.txt", "images_variant_val.txt", "images_variant_test.txt")

    def read_full_split(self, dataset_dir: str, image_dir: str) -> Tuple[list, list, list]:
        files = [os.path.join(dataset_dir, f) for f in (
            "variants.txt", "images_variant_train.txt", "images_variant_val.txt", "images_variant_test.txt")]
        missing = [f for f in files if not os.path.exists(f)]
        if missing:
            raise FileNotFoundError(
                f"dataset {self.name}: missing {', '.join(missing)}; {self.layout} expected (see README)"
            )
        with open(files[0]) as f:
            cname2lab = {line.strip(): i for i, line in enumerate(f) if line.strip()}
        return tuple(self._read(path, cname2lab, image_dir) for path in files[1:])  # type: ignore[return-value]

    def _read(self, path: str, cname2lab: Dict[str, int], image_dir: str) -> List[Datum]:
        items = []
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                imid, variant = line.strip().split(" ", 1)
                if variant not in cname2lab:
                    raise ValueError(f"{path}: variant {variant!r} is not listed in variants.txt")
                impath = os.path.join(image_dir, imid + ".jpg")
                items.append(Datum(impath, cname2lab[variant], classname=variant, source=path))
        return items

