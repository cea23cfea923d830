"""Oxford Flowers-102: ``oxford_flowers/jpg/`` + ``split_zhou_OxfordFlowers.json`` (docs/reference.md 2.2)."""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Dict, List, Tuple

import numpy as np

from dpt.data.dataset_base import SplitDataset, load_mat, require_fallback_files
from dpt.data.splits import load_json, split_groups
from dpt.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class OxfordFlowers(SplitDataset):
    """Fallback: ``imagelabels.mat`` (needs scipy) + ``cat_to_name.json``, 50/20/30 per class.

    Image ``i`` (0-based) is ``jpg/image_{i+1:05d}.jpg``; classes are split in order of first
    appearance in the label file; class name = ``cat_to_name[str(label + 1)]``.
    """

    folder_name = "oxford_flowers"
    image_subdir = "jpg"
    layout = "jpg/, cat_to_name.json and split_zhou_OxfordFlowers.json"

    def read_fallback(self, dataset_dir: str, image_dir: str, split_path: str) -> Tuple[list, list, list]:
        names_file = os.path.join(dataset_dir, "cat_to_name.json")
        require_fallback_files(split_path, self.name, [names_file, image_dir])
        mat = load_mat(os.path.join(dataset_dir, "imagelabels.mat"), split_path, self.name)
        labels = np.asarray(mat["labels"]).ravel()  # [1, n_images] -> [n_images], 1-based
        lab2cname: Dict[str, str] = load_json(names_file, "label -> flower name map")
        tracker: "OrderedDict[int, List[str]]" = OrderedDict()
        for i, label in enumerate(labels):
            tracker.setdefault(int(label), []).append(os.path.join(image_dir, f"image_{i + 1:05d}.jpg"))
        groups = ((label - 1, lab2cname[str(label)], paths) for label, paths in tracker.items())
        return split_groups(groups, p_trn=0.5, p_val=0.2)
