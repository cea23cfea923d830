"""ImageFolder: your own images, one folder per class (DATASET.ROOT is that folder itself).

Layouts of DATASET.ROOT:
- ``<class>/**/*.jpg``: split 50/20/30 per class with a fixed seed, saved as ``split_ImageFolder.json``
  beside the class folders and reused (see ``custom_dataset.py``);
- ``train/<class>/``, ``test/<class>/`` and optionally ``val/<class>/``: the split as given.
Class name = folder name with "_" as a space; image files are recognised by extension, sub-folders of
a class folder included. ``split_fewshot/`` and ``image_cache/`` are the project's caches, never classes.
"""
from __future__ import annotations

import os
from typing import Dict, List, Tuple

from yacs.config import CfgNode

from dpt.cache.kinds import CACHE_FOLDERS
from dpt.data.custom_dataset import IMAGE_EXTENSIONS, ClassKey, CustomDataset, Listed, image_files
from dpt.data.splits import SPLIT_NAMES, list_image_folders
from dpt.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class ImageFolder(CustomDataset):
    """Config keys read: DATASET.ROOT (the image folder), NUM_SHOTS, SUBSAMPLE_CLASSES, SEED."""

    layout = "one folder per class, or train/ and test/ (and optionally val/) each holding one folder per class"
    split_file = "split_ImageFolder.json"

    def locate(self, cfg: CfgNode) -> Tuple[str, str]:
        if not cfg.DATASET.ROOT:
            raise FileNotFoundError(f"DATASET.ROOT is empty; dataset {self.name} expects the folder of your images "
                                    f"(--root, DATA in the scripts) holding {self.layout}")
        root = os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT))
        if not os.path.isdir(root):
            raise FileNotFoundError(f"dataset {self.name}: folder not found: {root}; expected {self.layout}")
        self.source = root
        return root, root

    def list_images(self, image_dir: str) -> Tuple[List[Listed], Dict[ClassKey, str]]:
        folders = list_image_folders(image_dir, ignored=CACHE_FOLDERS)
        if not {"train", "test"} <= set(folders):
            return self._class_folders(image_dir, ""), {}
        others = sorted(set(folders) - set(SPLIT_NAMES))
        if others:
            raise ValueError(f"{image_dir}: holds train/ and test/ but also {', '.join(others)}/; put every class "
                             f"folder inside train/, val/ and test/, or drop train/ and test/")
        return [item for split in SPLIT_NAMES if split in folders
                for item in self._class_folders(os.path.join(image_dir, split), split)], {}

    def _class_folders(self, folder: str, split: str) -> List[Listed]:
        listed = []
        for name in list_image_folders(folder, ignored=CACHE_FOLDERS if not split else ()):
            class_dir = os.path.join(folder, name)
            files = image_files(class_dir)
            if not files:
                raise ValueError(f"{class_dir}: empty class folder (no {' '.join(IMAGE_EXTENSIONS)} files); "
                                 f"add images or remove it")
            listed += [Listed(path, name, split, f"folder {class_dir}") for path in files]
        return listed
