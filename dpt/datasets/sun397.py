"""SUN397 (397 scenes): ``sun397/SUN397/<letter>/<scene>[/<sub>]/`` + ``split_zhou_SUN397.json``."""
from __future__ import annotations

import os
from typing import Dict, List, Tuple

from dpt.data.dataset_base import SplitDataset, require_fallback_files
from dpt.data.datum import Datum
from dpt.data.splits import split_trainval
from dpt.registry import DATASET_REGISTRY


def scene_classname(folder: str) -> str:
    """``a/apartment_building/outdoor`` -> ``outdoor apartment_building`` (drop the letter, reverse)."""
    return " ".join(folder.split("/")[1:][::-1])


@DATASET_REGISTRY.register()
class SUN397(SplitDataset):
    """Fallback: ``ClassName.txt`` (label = line index), ``Training_01.txt`` split 80/20, ``Testing_01.txt``."""

    folder_name = "sun397"
    image_subdir = "SUN397"
    layout = "SUN397/ and split_zhou_SUN397.json (or ClassName.txt, Training_01.txt, Testing_01.txt)"

    def read_fallback(self, dataset_dir: str, image_dir: str, split_path: str) -> Tuple[list, list, list]:
        files = [os.path.join(dataset_dir, f) for f in ("ClassName.txt", "Training_01.txt", "Testing_01.txt")]
        require_fallback_files(split_path, self.name, files)
        with open(files[0]) as f:
            cname2lab = {line.strip().lstrip("/"): i for i, line in enumerate(row for row in f if row.strip())}
        trainval = self._read(files[1], cname2lab, image_dir)
        test = self._read(files[2], cname2lab, image_dir)
        train, val = split_trainval(trainval)
        return train, val, test

    def _read(self, path: str, cname2lab: Dict[str, int], image_dir: str) -> List[Datum]:
        items = []
        with open(path) as f:
            for line in f:
                imname = line.strip().lstrip("/")
                if not imname:
                    continue
                folder = os.path.dirname(imname)
                if folder not in cname2lab:
                    raise ValueError(f"{path}: class folder {folder!r} is not listed in ClassName.txt")
                impath = os.path.join(image_dir, imname)
                items.append(Datum(impath, cname2lab[folder], classname=scene_classname(folder), source=path))
        return items
