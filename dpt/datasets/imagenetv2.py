"""ImageNetV2 matched-frequency (test only): ``imagenetv2/imagenetv2-matched-frequency-format-val/<0..999>/``."""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import List

from dpt.data.datum import Datum
from dpt.data.splits import list_image_folders, list_images
from dpt.datasets.imagenet import ImageNetVariant
from dpt.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class ImageNetV2(ImageNetVariant):
    """Folder number = label; class name = the label-th entry of ``imagenetv2/classnames.txt``.

    CoOp loops over folders 0..999; we read the numbered folders present (sorted numerically).
    """

    folder_name = "imagenetv2"
    image_subdir = "imagenetv2-matched-frequency-format-val"

    def read_data(self, image_dir: str, classnames: "OrderedDict[str, str]") -> List[Datum]:
        if not os.path.isdir(image_dir):
            raise FileNotFoundError(f"dataset {self.name}: image folder not found: {image_dir}")
        names = list(classnames.values())
        folders = list_image_folders(image_dir)
        bad = [f for f in folders if not f.isdigit() or int(f) >= len(names)]
        if bad:
            raise ValueError(
                f"dataset {self.name}: folders {bad[:5]} in {image_dir} are not labels 0..{len(names) - 1}"
            )
        items = []
        for label in sorted(int(f) for f in folders):
            paths = list_images(os.path.join(image_dir, str(label)))
            items.extend(Datum(p, label, classname=names[label]) for p in paths)
        return items
