"""Stanford Cars (196 models): ``stanford_cars/cars_{train,test}/`` + ``split_zhou_StanfordCars.json``.

Split paths are relative to the dataset folder itself (``cars_train/00001.jpg``).
"""
from __future__ import annotations

import os
from typing import Any, List, Tuple

import numpy as np

from dpt.data.dataset_base import SplitDataset, load_mat
from dpt.data.datum import Datum
from dpt.data.splits import split_trainval
from dpt.registry import DATASET_REGISTRY


def car_classname(meta_name: str) -> str:
    """Move the trailing year to the front: ``Tesla Model S Sedan 2012`` -> ``2012 Tesla Model S Sedan``."""
    words = meta_name.split(" ")
    return " ".join([words[-1]] + words[:-1])


def _scalar(value: Any) -> Any:
    """The single element of a (nested) MATLAB array."""
    return np.asarray(value).ravel()[0]


@DATASET_REGISTRY.register()
class StanfordCars(SplitDataset):
    """Fallback (needs scipy): ``devkit/cars_train_annos.mat`` split 80/20, ``cars_test_annos_withlabels.mat``,
    names from ``devkit/cars_meta.mat``; label = annotation class - 1."""

    folder_name = "stanford_cars"
    image_subdir = ""
    layout = "cars_train/, cars_test/ and split_zhou_StanfordCars.json"

    def read_fallback(self, dataset_dir: str, image_dir: str, split_path: str) -> Tuple[list, list, list]:
        def mat(*parts: str) -> Any:
            return load_mat(os.path.join(dataset_dir, *parts), split_path, self.name)

        meta = np.asarray(mat("devkit", "cars_meta.mat")["class_names"]).ravel()  # [1, 196] -> [196]
        names = [car_classname(str(_scalar(n))) for n in meta]
        trainval = self._read(mat("devkit", "cars_train_annos.mat"), "cars_train", names, dataset_dir)
        test = self._read(mat("cars_test_annos_withlabels.mat"), "cars_test", names, dataset_dir)
        train, val = split_trainval(trainval)
        return train, val, test

    @staticmethod
    def _read(annos: Any, subdir: str, names: List[str], dataset_dir: str) -> List[Datum]:
        items = []
        for record in np.asarray(annos["annotations"]).ravel():
            label = int(_scalar(record["class"])) - 1
            impath = os.path.join(dataset_dir, subdir, str(_scalar(record["fname"])))
            items.append(Datum(impath, label, classname=names[label], source=f"{subdir} annotations"))
        return items
