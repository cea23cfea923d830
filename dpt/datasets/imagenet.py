"""ImageNet-1k (``imagenet/images/{train,val}/``) and the shared pieces of its test-only variants.

Files read, all under ``<ROOT>/imagenet/``:
- ``classnames.txt``: lines ``<wnid> <class name words>`` (CoOp's file, names from CLIP).
- ``images/train/<wnid>/*``: label = index of the wnid among the sorted train folders.
- ``images/val/``: either ``<wnid>/`` sub-folders (labelled with the train folders' indices), or
  a flat folder of JPEGs labelled by one of the files listed in ``imagenet_flat_val.py``.
Files are sorted by name inside each folder. Dassl listed them in unsorted ``os.listdir``
order and froze that order in ``preprocessed.pkl``; we neither read nor write that pickle, so
our few-shot subsets are reproducible across machines but differ from a given CoOp pkl's.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import ClassVar, Dict, List, Sequence, Tuple

from yacs.config import CfgNode

from dpt.data.dataset_base import DatasetBase, SplitDataset, dataset_folder
from dpt.data.datum import Datum
from dpt.data.splits import list_image_folders, list_images
from dpt.datasets.imagenet_flat_val import read_flat_val
from dpt.registry import DATASET_REGISTRY


def read_classnames(path: str, dataset: str) -> "OrderedDict[str, str]":
    """``classnames.txt`` -> ordered ``{wnid: class name}``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"dataset {dataset}: {path} not found; expected lines '<wnid> <class name>' (see README)"
        )
    classnames: "OrderedDict[str, str]" = OrderedDict()
    with open(path) as f:
        for line in f:
            if line.strip():
                wnid, _, name = line.strip().partition(" ")
                classnames[wnid] = name
    return classnames


def classname_of(classnames: Dict[str, str], wnid: str, source: str) -> str:
    if wnid not in classnames:
        raise KeyError(f"{source}: wnid {wnid!r} is not listed in classnames.txt")
    return classnames[wnid]


def read_wnid_folders(
    image_dir: str, classnames: Dict[str, str], source: str, wnids: Sequence[str] = ()
) -> List[Datum]:
    """Items of ``image_dir/<wnid>/*``; label = index in ``wnids`` (default: the sorted folders)."""
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"{source}: image folder not found: {image_dir}")
    folders = list_image_folders(image_dir)
    lab_of = {w: i for i, w in enumerate(wnids or folders)}
    items = []
    for wnid in folders:
        if wnid not in lab_of:
            raise ValueError(f"{source}: folder {os.path.join(image_dir, wnid)} is not a training class")
        name = classname_of(classnames, wnid, source)
        items.extend(Datum(p, lab_of[wnid], classname=name) for p in list_images(os.path.join(image_dir, wnid)))
    return items


@DATASET_REGISTRY.register()
class ImageNet(SplitDataset):
    """Train = ``images/train``, test = val = ``images/val`` (docs/reference.md 2.2); few-shot on train only."""

    folder_name = "imagenet"
    image_subdir = "images"
    layout = "images/train/<wnid>/, images/val/ and classnames.txt"
    sample_val = False
    required_files = ("classnames.txt", "images/train", "images/val")
    imagenet_schedule = True  # the official VLP / DPT warm-up and guidance epochs for ImageNet
    template_in_ensemble = False  # CoOp's ZeroshotCLIP2: the 7 templates alone

    def read_full_split(self, dataset_dir: str, image_dir: str) -> Tuple[list, list, list]:
        classnames = read_classnames(os.path.join(dataset_dir, "classnames.txt"), self.name)
        train_dir, val_dir = os.path.join(image_dir, "train"), os.path.join(image_dir, "val")
        train = read_wnid_folders(train_dir, classnames, f"dataset {self.name}")
        wnids = list_image_folders(train_dir)
        if not os.path.isdir(val_dir):
            raise FileNotFoundError(f"dataset {self.name}: image folder not found: {val_dir}; {self.layout} expected")
        if list_image_folders(val_dir):
            test = read_wnid_folders(val_dir, classnames, f"dataset {self.name}", wnids=wnids)
        else:
            lab_of = {w: i for i, w in enumerate(wnids)}
            test = [
                Datum(path, lab_of[wnid], classname=classname_of(classnames, wnid, source), source=source)
                for path, wnid, source in read_flat_val(dataset_dir, val_dir, set(wnids), self.name)
            ]
        return train, test, test


class ImageNetVariant(DatasetBase):
    """A test-only ImageNet variant: ``train_x = test`` = every image, no val (docs/reference.md 2.2).

    Reads ``<ROOT>/<folder_name>/classnames.txt`` and ``<image_subdir>/<wnid>/`` (sorted wnids ->
    labels 0..n-1), then keeps DATASET.SUBSAMPLE_CLASSES' base or new half of them. Config keys read:
    DATASET.ROOT, DATASET.SUBSAMPLE_CLASSES.
    """

    folder_name: ClassVar[str] = ""
    image_subdir: ClassVar[str] = ""
    required_files = ("classnames.txt",)

    def __init__(self, cfg: CfgNode) -> None:
        layout = f"{self.image_subdir}/ and classnames.txt"
        dataset_dir = dataset_folder(cfg, self.folder_name, self.name, layout)
        image_dir = os.path.join(dataset_dir, self.image_subdir)
        classnames = read_classnames(os.path.join(dataset_dir, "classnames.txt"), self.name)
        data = self.read_data(image_dir, classnames)
        super().__init__(data, [], data, dataset_dir=dataset_dir, image_dir=image_dir,
                         subsample=cfg.DATASET.SUBSAMPLE_CLASSES)

    def read_data(self, image_dir: str, classnames: "OrderedDict[str, str]") -> List[Datum]:
        return read_wnid_folders(image_dir, classnames, f"dataset {self.name}")
