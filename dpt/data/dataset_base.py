"""Dataset objects: the common contract (REFERENCE 2.1) and the read-split -> few-shot -> subsample flow.

``DatasetBase`` holds the three splits and the label bookkeeping trainers read. ``SplitDataset``
is the flow shared by the 11 training datasets; each reader under ``dpt/datasets/`` only says
where its files are and how to read them when ``split_zhou_<Name>.json`` is missing.
"""
from __future__ import annotations

import os
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

from yacs.config import CfgNode

from dpt.data.datum import Datum
from dpt.data.fewshot import fewshot_cache_path, load_or_create_fewshot
from dpt.data.splits import read_and_split_data, read_split, save_split, subsample_classes

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
            (REFERENCE 9.2); ``subsampled_from`` then holds the class count before (else 0).
    """

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


def check_subset(subset: Sequence[Datum], full: Sequence[Datum], cache_path: str, split: str) -> None:
    """Raise when a few-shot cache lists images that the current full split does not hold.

    Why: the cache is named by shots and seed only; after a split file changes (a re-split of one's
    own images, a replaced JSON) an old cache would silently train on images now in val or test.
    """
    stale = set(subset) - set(full)
    if stale:
        example = min(stale, key=lambda d: d.impath)
        raise ValueError(
            f"{cache_path}: {len(stale)} {split} image(s) of this few-shot cache are not in the current "
            f"{split} split (e.g. {example.impath}); it was sampled from another split, delete it to resample"
        )


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
        if cfg.DATASET.NUM_SHOTS >= 1:
            cache = fewshot_cache_path(dataset_dir, cfg.DATASET.NUM_SHOTS, cfg.SEED)
            check_subset(train, full_train, cache, "train")
            if self.sample_val:
                check_subset(val, full_val, cache, "val")
        super().__init__(train, val, test, dataset_dir=dataset_dir, image_dir=image_dir,
                         subsample=cfg.DATASET.SUBSAMPLE_CLASSES)

    def locate(self, cfg: CfgNode) -> Tuple[str, str]:
        """(dataset folder ``<ROOT>/<folder_name>`` checked to exist, folder the split's paths start from)."""
        dataset_dir = dataset_folder(cfg, self.folder_name, self.name, self.layout)
        return dataset_dir, os.path.join(dataset_dir, self.image_subdir) if self.image_subdir else dataset_dir

    def split_path(self, dataset_dir: str) -> str:
        return os.path.join(dataset_dir, f"split_zhou_{self.name}.json")

    def read_full_split(self, dataset_dir: str, image_dir: str) -> Tuple[Split, Split, Split]:
        """The JSON split if present, else the fallback (then saved as the JSON, as CoOp does)."""
        split_path = self.split_path(dataset_dir)
        if os.path.exists(split_path):
            return read_split(split_path, image_dir, self.name)
        train, val, test = self.read_fallback(dataset_dir, image_dir, split_path)
        save_split(train, val, test, split_path, image_dir)
        return train, val, test

    def read_fallback(self, dataset_dir: str, image_dir: str, split_path: str) -> Tuple[Split, Split, Split]:
        """Build the split from the original files (REFERENCE 2.2); overridden per dataset."""
        raise FileNotFoundError(f"dataset {self.name}: split file {split_path} not found (see README)")


def folder_fallback(
    dataset: str, image_dir: str, split_path: str,
    ignored: Sequence[str] = (), new_cnames: Optional[Dict[str, str]] = None,
) -> Tuple[Split, Split, Split]:
    """The DTD-style 50/20/30 split of class folders, after checking the image folder exists."""
    require_fallback_files(split_path, dataset, [image_dir])
    return read_and_split_data(image_dir, ignored=ignored, new_cnames=new_cnames)
