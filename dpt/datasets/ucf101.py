"""UCF101 mid-frames (101 actions): ``ucf101/UCF-101-midframes/<Action_Name>/`` + ``split_zhou_UCF101.json``."""
from __future__ import annotations

import os
import re
from typing import Dict, List, Tuple

from dpt.data.dataset_base import SplitDataset, require_fallback_files
from dpt.data.datum import Datum
from dpt.data.splits import split_trainval
from dpt.registry import DATASET_REGISTRY


def action_classname(action: str) -> str:
    """CamelCase action -> words joined by ``_`` (``ApplyEyeMakeup`` -> ``Apply_Eye_Makeup``)."""
    return "_".join(re.findall("[A-Z][^A-Z]*", action))


@DATASET_REGISTRY.register()
class UCF101(SplitDataset):
    """Fallback: ``ucfTrainTestlist/classInd.txt`` (1-based ids), ``trainlist01.txt`` split 80/20, ``testlist01.txt``.

    A list line ``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi [id]`` maps to the mid-frame
    ``Apply_Eye_Makeup/v_ApplyEyeMakeup_g08_c01.jpg``.
    """

    folder_name = "ucf101"
    image_subdir = "UCF-101-midframes"
    layout = "UCF-101-midframes/ and split_zhou_UCF101.json (or ucfTrainTestlist/)"

    def read_fallback(self, dataset_dir: str, image_dir: str, split_path: str) -> Tuple[list, list, list]:
        lists = os.path.join(dataset_dir, "ucfTrainTestlist")
        files = [os.path.join(lists, f) for f in ("classInd.txt", "trainlist01.txt", "testlist01.txt")]
        require_fallback_files(split_path, self.name, files)
        cname2lab = {}
        with open(files[0]) as f:
            for line in f:
                if line.strip():
                    label, action = line.split()
                    cname2lab[action] = int(label) - 1
        trainval = self._read(files[1], cname2lab, image_dir)
        test = self._read(files[2], cname2lab, image_dir)
        train, val = split_trainval(trainval)
        return train, val, test

    def _read(self, path: str, cname2lab: Dict[str, int], image_dir: str) -> List[Datum]:
        items = []
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                action, video = line.split()[0].split("/")
                if action not in cname2lab:
                    raise ValueError(f"{path}: action {action!r} is not listed in classInd.txt")
                name = action_classname(action)
                impath = os.path.join(image_dir, name, os.path.splitext(video)[0] + ".jpg")
                items.append(Datum(impath, cname2lab[action], classname=name, source=path))
        return items
