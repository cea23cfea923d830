"""Dataset objects: the common contract (docs/reference.md 2.1) and the read-split -> few-shot -> subsample flow.

``DatasetBase`` holds the three splits and the label bookkeeping trainers read. ``SplitDataset``
is the flow shared by the 11 training datasets; each reader under ``dpt/datasets/`` only says
where its files are and how to read them when ``split_zhou_<Name>.json`` is missing.
"""
from __future__ import annotations

import contextlib
import io
import os
import random
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

from yacs.config import CfgNode

from dpt.cache.kinds import FALLBACK_SPLIT
from dpt.data.datum import Datum
from dpt.data.fewshot import load_or_create_fewshot
from dpt.data.splits import (
    fallback_source,
    load_split_file,
    read_and_split_data,
    save_split,
    split_items,
    subsample_classes,
)

Split = List[Datum]


class DatasetBase:
    """Train/val/test lists of Datums plus ``num_classes``, ``lab2cname`` and ``classnames``.

    Args:
        train_x: labelled training items; ``num_classes = max label + 1`` and the class names
            come from it (as in Dassl).
        val: validation items (may be empty: no val loader is built).
        test: test items.
        dataset_dir: absolute dataset folder (``<ROOT>/<folder_name>``), "" if none.
        image_dir: folder the split files' relative paths start from.
        subsample: DATASET.SUBSAMPLE_CLASSES: "all", or keep the "base" / "new" classes of train_x
            (docs/reference.md 9.2); ``subsampled_from`` then holds the class count before (else 0).
    """

    # Files or folders (relative to the dataset folder) a reader needs besides its image folder and split file;
    # the preflight checks them before a run starts (readers that list folders instead of a split JSON).
    required_files: ClassVar[Tuple[str, ...]] = ()
    # Facts of the recipes the official code special-cases for one dataset (ImageNet), read by the trainers
    # through the registry: VLP / DPT use TRAINER.DPT.IMAGENET_WARMUP_EPOCH / IMAGENET_GUIDANCE_EPOCHS (docs/reference.md
    # 7.8 #17); ZeroshotCLIP2 adds the dataset's own template to its 7-template ensemble unless told not to.
    imagenet_schedule: ClassVar[bool] = False
    template_in_ensemble: ClassVar[bool] = True

    def __init__(
        self, train_x: Sequence[Datum], val: Sequence[Datum], test: Sequence[Datum],
        dataset_dir: str = "", image_dir: str = "", subsample: str = "all",
    ) -> None:
        for split_name, split in (("train_x", train_x), ("test", test)):
            if not split:
                raise ValueError(f"dataset {self.name}: the {split_name} split is empty (folder {dataset_dir or '?'})")
        self.subsampled_from = 0 if subsample == "all" else len({item.label for item in train_x})
        train_x, val, test = subsample_classes(train_x, val or [], test, subsample=subsample)
        self._train_x, self._val, self._test = list(train_x), list(val), list(test)
        self.dataset_dir = dataset_dir
        self.image_dir = image_dir
        self._num_classes = max(item.label for item in self._train_x) + 1
        lab2cname: Dict[int, str] = {}
        for item in self._train_x:
            lab2cname.setdefault(item.label, item.classname)
        self._lab2cname = dict(sorted(lab2cname.items()))

    @property
    def name(self) -> str:
        """The registered name (the class name, as DATASET.NAME spells it)."""
        return type(self).__name__

    @property
    def train_x(self) -> Split:
        return self._train_x

    @property
    def val(self) -> Split:
        return self._val

    @property
    def test(self) -> Split:
        return self._test

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def lab2cname(self) -> Dict[int, str]:
        return self._lab2cname

    @property
    def classnames(self) -> List[str]:
        """Class names sorted by label; trainers build prompts from these."""
        return list(self._lab2cname.values())


def dataset_folder(cfg: CfgNode, folder_name: str, dataset: str, layout: str) -> str:
    """``abspath(expanduser(DATASET.ROOT)) / folder_name``, checked to exist.

    Args:
        layout: what the folder should hold, for the error message (e.g. "images/ and
            split_zhou_OxfordPets.json").
    """
    expected = f"expected <DATASET.ROOT>/{folder_name}/ holding {layout} (see README)"
    if not cfg.DATASET.ROOT:
        raise FileNotFoundError(f"DATASET.ROOT is empty; dataset {dataset} {expected}")
    path = os.path.join(os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT)), folder_name)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"dataset {dataset}: folder not found: {path}; {expected}")
    return path


def require_fallback_files(split_path: str, dataset: str, paths: Sequence[str]) -> None:
    """Raise naming the split JSON and the fallback files when any fallback file is missing."""
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(
            f"dataset {dataset}: split file {split_path} not found, and the fallback needs "
            f"{', '.join(paths)} (missing: {', '.join(missing)}); download "
            f"{os.path.basename(split_path)} (see README)"
        )


def load_mat(path: str, split_path: str, dataset: str) -> Dict[str, Any]:
    """Read a MATLAB file for a fallback split; needs scipy, else says to get the split JSON."""
    require_fallback_files(split_path, dataset, [path])
    try:
        from scipy.io import loadmat
    except ImportError:
        raise FileNotFoundError(
            f"dataset {dataset}: split file {split_path} not found and reading the fallback {path} "
            f"needs scipy; download {os.path.basename(split_path)} (see README) or pip install scipy"
        ) from None
    return loadmat(path)


class SplitDataset(DatasetBase):
    """Read the full split (JSON or fallback), apply few-shot sampling, then the class subset.

    Subclasses set ``folder_name``, ``image_subdir``, ``layout`` and override ``read_fallback``
    (or ``read_full_split`` when the dataset has no JSON). Config keys read: DATASET.ROOT,
    DATASET.NUM_SHOTS, DATASET.SUBSAMPLE_CLASSES, SEED.
    """

    folder_name: ClassVar[str] = ""
    image_subdir: ClassVar[str] = "images"
    layout: ClassVar[str] = ""
    sample_val: ClassVar[bool] = True

    def __init__(self, cfg: CfgNode) -> None:
        dataset_dir, image_dir = self.locate(cfg)
        full_train, full_val, test = self.read_full_split(dataset_dir, image_dir)
        train, val = load_or_create_fewshot(
            full_train, full_val, cfg.DATASET.NUM_SHOTS, cfg.SEED, dataset_dir, image_dir, self.name, self.sample_val
        )
        super().__init__(train, val, test, dataset_dir=dataset_dir, image_dir=image_dir,
                         subsample=cfg.DATASET.SUBSAMPLE_CLASSES)

    def locate(self, cfg: CfgNode) -> Tuple[str, str]:
        """(dataset folder ``<ROOT>/<folder_name>`` checked to exist, folder the split's paths start from)."""
        dataset_dir = dataset_folder(cfg, self.folder_name, self.name, self.layout)
        return dataset_dir, os.path.join(dataset_dir, self.image_subdir) if self.image_subdir else dataset_dir

    def split_path(self, dataset_dir: str) -> str:
        """``<dataset_dir>/split_zhou_<Name>.json``: CoOp's download, or the fallback's split (``FALLBACK_SPLIT``)."""
        return FALLBACK_SPLIT.path(dataset_dir, dataset=self.name)

    def read_full_split(self, dataset_dir: str, image_dir: str) -> Tuple[Split, Split, Split]:
        """The JSON split if present, else the fallback (then saved as the JSON, as CoOp does).

        A JSON the fallback wrote records what it was made from; on each use the fallback's images are listed
        again and, when they changed, the split is made again and replaced (with a note). A JSON without that
        record (CoOp's download) is used as it is.
        """
        split_path = self.split_path(dataset_dir)
        if not os.path.exists(split_path):
            train, val, test = self.read_fallback(dataset_dir, image_dir, split_path)
            save_split(train, val, test, split_path, image_dir, fallback_source(train, val, test, image_dir))
            return train, val, test
        print(f"Reading split from {split_path}")
        split = load_split_file(split_path)
        if FALLBACK_SPLIT.marker in split:
            remade = self._remake_if_changed(split[FALLBACK_SPLIT.marker], dataset_dir, image_dir, split_path)
            if remade is not None:
                return remade
        return split_items(split, split_path, image_dir, self.name)

    def _remake_if_changed(
        self, recorded: Any, dataset_dir: str, image_dir: str, split_path: str
    ) -> Optional[Tuple[Split, Split, Split]]:
        """The fallback split made again and saved when its images differ from ``recorded``, else None.

        The check runs the fallback with the RNG state restored afterwards, so a run that keeps the file draws
        the same few-shot subset as before; a remade split draws exactly as a first run would.
        """
        state = random.getstate()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                fresh = self.read_fallback(dataset_dir, image_dir, split_path)
        except (FileNotFoundError, ValueError):  # the original files are gone: the split file is all there is
            random.setstate(state)
            return None
        source = fallback_source(*fresh, image_dir)
        if source == recorded:
            random.setstate(state)
            return None
        print(f"Note: split file {split_path} was made by the fallback from images that changed since; "
              f"splitting them again and replacing it")
        save_split(*fresh, split_path, image_dir, source)
        return fresh

    def read_fallback(self, dataset_dir: str, image_dir: str, split_path: str) -> Tuple[Split, Split, Split]:
        """Build the split from the original files (docs/reference.md 2.2); overridden per dataset."""
        raise FileNotFoundError(f"dataset {self.name}: split file {split_path} not found (see README)")


def folder_fallback(
    dataset: str, image_dir: str, split_path: str,
    ignored: Sequence[str] = (), new_cnames: Optional[Dict[str, str]] = None,
) -> Tuple[Split, Split, Split]:
    """The DTD-style 50/20/30 split of class folders, after checking the image folder exists."""
    require_fallback_files(split_path, dataset, [image_dir])
    return read_and_split_data(image_dir, ignored=ignored, new_cnames=new_cnames)
