"""``dpt-check-data [DATASET ...]``: is each dataset folder complete and readable before a run starts?

Why: a missing split file or one broken JPEG otherwise surfaces minutes into a run (or in the middle
of a seed sweep). The folder, split file and required files are checked by the same code as a run's
preflight (``dpt/preflight.py``). The listing then comes from the real readers in ``dpt/datasets``
(docs/reference.md 2.2): the split JSON's entries when present, else the reader's fallback from the original
files, which is run without saving anything, so checking never creates the split file a later run would
make. Every listed image is then checked to exist and to open (``--decode``: fully decoded, slower but
catches truncated files). Exit status: 0 when every checked dataset is usable, 1 when one is not, 2 on
bad arguments.
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from PIL import Image
from yacs.config import CfgNode

from dpt.config import get_cfg_default
from dpt.data.custom_dataset import CustomDataset
from dpt.data.dataset_base import SplitDataset
from dpt.data.splits import SPLIT_NAMES, load_split_file
from dpt.errors import ArgumentParser, cli_main, error_message
from dpt.preflight import dataset_check
from dpt.registry import DATASET_REGISTRY, unknown_name_message

SHOWN = 5  # problem files listed per kind; the rest are counted
_COOP = "split_zhou_{name}.json from CoOp's DATASETS.md (Google Drive link)"
SOURCES: Dict[str, str] = {
    "ImageNet": "images from https://image-net.org into imagenet/images/{train,val}/; classnames.txt from "
                "CoOp's DATASETS.md (Google Drive link)",
    "Caltech101": "http://www.vision.caltech.edu/Image_Datasets/Caltech101/101_ObjectCategories.tar.gz; " + _COOP,
    "OxfordPets": "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz and annotations.tar.gz; " + _COOP,
    "StanfordCars": "cars_train.tgz, cars_test.tgz, car_devkit.tgz, cars_test_annos_withlabels.mat from "
                    "http://ai.stanford.edu/~jkrause/cars/ (see CoOp's DATASETS.md); " + _COOP,
    "OxfordFlowers": "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz and imagelabels.mat; "
                     "cat_to_name.json and " + _COOP,
    "Food101": "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/ (food-101.tar.gz); " + _COOP,
    "FGVCAircraft": "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz, "
                    "its data/ folder renamed fgvc_aircraft/ (no split JSON)",
    "SUN397": "http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz and Partitions.zip; " + _COOP,
    "DescribableTextures": "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz; " + _COOP,
    "EuroSAT": "http://madm.dfki.de/files/sentinel/EuroSAT.zip; " + _COOP,
    "UCF101": "UCF-101-midframes.zip and " + _COOP,
    "ImageNetV2": "matched-frequency set from https://github.com/modestyachts/ImageNetV2; classnames.txt "
                  "copied from imagenet/",
    "ImageNetSketch": "https://github.com/HaohanWang/ImageNet-Sketch; classnames.txt copied from imagenet/",
    "ImageNetA": "https://github.com/hendrycks/natural-adv-examples; classnames.txt copied from imagenet/",
    "ImageNetR": "https://github.com/hendrycks/imagenet-r; classnames.txt copied from imagenet/",
    "ImageFolder": "your own images: --root is their folder, one sub-folder per class (README 'Your own images')",
    "CSV": "your own images: --csv names the CSV file (path,label[,split]) under --root (README 'Your own images')",
}

Listing = Dict[str, List[Tuple[str, int]]]  # split -> [(absolute image path, label)]


@dataclass
class DatasetReport:
    """What ``check_dataset`` found for one dataset; ``usable`` is the verdict."""

    name: str
    folder: str = ""
    counts: Dict[str, int] = field(default_factory=dict)
    num_classes: int = 0
    missing: List[str] = field(default_factory=list)
    unreadable: List[Tuple[str, str]] = field(default_factory=list)
    error: Optional[str] = None
    notes: List[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.error is None and not self.missing and not self.unreadable

    def lines(self) -> List[str]:
        """The human-readable report: a verdict line, then indented details."""
        if self.usable:
            sizes = ", ".join(f"{split} {n:,}" for split, n in self.counts.items())
            out = [f"{self.name} ({self.folder}): ok - {self.num_classes} classes; {sizes} images"]
        else:
            out = [f"{self.name} ({self.folder or 'no folder'}): NOT USABLE"]
        if self.error:
            out.append(f"  error: {self.error}")
        if self.missing:
            shown = ", ".join(self.missing[:SHOWN])
            out.append(f"  missing {len(self.missing):,} listed image(s), first: {shown}")
        if self.unreadable:
            shown = "; ".join(f"{p} ({why})" for p, why in self.unreadable[:SHOWN])
            out.append(f"  unreadable {len(self.unreadable):,} image(s), first: {shown}")
        out.extend(f"  note: {note}" for note in self.notes)
        if not self.usable:
            out.append(f"  get it: {SOURCES.get(self.name, 'see CoOp DATASETS.md').format(name=self.name)}")
        return out


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def resolve_names(names: Sequence[str]) -> List[str]:
    """Registry names for ``names`` given as registry names, yaml stems or folder names (``oxford_pets``, ``dtd``)."""
    aliases: Dict[str, str] = {}
    for registered in DATASET_REGISTRY.names():
        aliases[_normalise(registered)] = registered
        if DATASET_REGISTRY.get(registered).folder_name:
            aliases[_normalise(DATASET_REGISTRY.get(registered).folder_name)] = registered
    resolved = []
    for name in names:
        if _normalise(name) not in aliases:
            close = difflib.get_close_matches(_normalise(name), list(aliases), n=1, cutoff=0.5)
            message = unknown_name_message("dataset", name, DATASET_REGISTRY.names()).split("; did you")[0]
            raise KeyError(message + (f"; did you mean {aliases[close[0]]!r}?" if close else ""))
        resolved.append(aliases[_normalise(name)])
    return resolved


def present_datasets(root: str) -> List[str]:
    """Registered datasets whose folder exists under ``root`` (one's own images are checked only when named)."""
    return [n for n in DATASET_REGISTRY.names() if DATASET_REGISTRY.get(n).folder_name
            and os.path.isdir(os.path.join(root, DATASET_REGISTRY.get(n).folder_name))]


def _items(splits: Sequence[Sequence]) -> Listing:
    return {name: [(d.impath, d.label) for d in items] for name, items in zip(SPLIT_NAMES, splits)}


def dataset_cfg(root: str, name: str, csv_file: str) -> CfgNode:
    """The default config pointed at dataset ``name`` under ``root`` (DATASET.CSV for the CSV dataset)."""
    cfg = get_cfg_default()
    cfg.DATASET.ROOT, cfg.DATASET.NAME, cfg.DATASET.CSV = root, name, csv_file
    return cfg


def _list_images(cls: type, cfg: CfgNode, report: DatasetReport) -> Listing:
    """Each split's (path, label) pairs as the real reader lists them, without writing anything.

    Runs after ``dataset_check`` found the folder, split file and required files in place.
    """
    if not issubclass(cls, SplitDataset):  # test-only ImageNet variants: folder listings, no split file
        return {"test": _items([[], [], cls(cfg).test])["test"]}
    reader = cls.__new__(cls)
    report.folder, image_dir = reader.locate(cfg)
    if issubclass(cls, CustomDataset):  # one's own images: listed from the folder tree or the CSV file
        dataset_dir, report.folder = report.folder, reader.source
        split_path = reader.split_path(dataset_dir)
        splits = reader.labelled_splits(dataset_dir, image_dir, save=False)
        if not os.path.exists(split_path) and not any(item.split for item in reader.list_images(image_dir)[0]):
            report.notes.append(f"the first run splits the images 50/20/30 per class (fixed seed) into {split_path}")
        return {name: [(e.path, e.label) for e in splits[name]] for name in SPLIT_NAMES}
    if cls.read_full_split is not SplitDataset.read_full_split:  # FGVCAircraft's txt lists, ImageNet's folders
        return _items(reader.read_full_split(report.folder, image_dir))
    split_path = reader.split_path(report.folder)
    if not os.path.exists(split_path):
        return _items(reader.read_fallback(report.folder, image_dir, split_path))
    split = load_split_file(split_path)
    listing: Listing = {}
    for name in SPLIT_NAMES:
        entries = split[name]
        if not isinstance(entries, list) or not all(isinstance(e, list) and len(e) == 3 for e in entries):
            raise ValueError(f"{split_path} [{name}]: expected a list of [path, label, classname]")
        listing[name] = [(os.path.join(image_dir, str(e[0])), int(e[1])) for e in entries]
    return listing


def image_problem(path: str, decode: bool = False) -> Optional[str]:
    """None if ``path`` opens as an image (``decode``: fully decodes), else the reason."""
    try:
        with Image.open(path) as img:
            if decode:
                img.convert("RGB")
            else:
                img.verify()
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ... for broken files
        return f"{type(err).__name__}: {' '.join(str(err).split())[:120]}"
    return None


def check_dataset(root: str, name: str, decode: bool = False, csv_file: str = "labels.csv") -> DatasetReport:
    """List ``name``'s images with its reader, then check that each exists and opens.

    Args:
        csv_file: DATASET.CSV for the CSV dataset (relative to ``root``).
    """
    cls = DATASET_REGISTRY.get(name)
    report = DatasetReport(name)
    cfg = dataset_cfg(root, name, csv_file)
    check = dataset_check(cfg)
    report.folder, report.notes = check.folder, check.notes
    if check.problems:
        report.error = "; ".join(check.problems)
        return report
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            listing = _list_images(cls, cfg, report)
    except (FileNotFoundError, ValueError, KeyError, TypeError, OSError) as err:
        report.error = error_message(err)
        return report
    report.counts = {split: len(pairs) for split, pairs in listing.items()}
    labels = {label for pairs in listing.values() for _, label in pairs}
    report.num_classes = len(labels)
    seen = set()
    for pairs in listing.values():
        for path, _ in pairs:
            if path in seen:
                continue
            seen.add(path)
            if not os.path.isfile(path):
                report.missing.append(path)
            else:
                problem = image_problem(path, decode)
                if problem:
                    report.unreadable.append((path, problem))
    if not any(report.counts.values()):
        report.error = "no images listed in any split"
    elif not report.counts.get("train", 1) or not report.counts.get("test", 1):
        empty = [s for s in ("train", "test") if not report.counts.get(s, 1)]
        report.error = f"the {' and '.join(empty)} split is empty"
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="dpt-check-data", description="Check dataset folders (layout, split files, missing/unreadable images)"
    )
    parser.add_argument("datasets", nargs="*", help="registry names (OxfordPets) or yaml stems (oxford_pets); "
                                                    "default: every dataset folder present under --root")
    parser.add_argument("--root", default=os.environ.get("DATA", "./data"),
                        help="DATASET.ROOT, the folder holding the dataset folders (default: $DATA or ./data)")
    parser.add_argument("--csv", default=get_cfg_default().DATASET.CSV, metavar="FILE",
                        help="DATASET.CSV for the csv dataset, relative to --root (default: %(default)s)")
    parser.add_argument("--decode", action="store_true",
                        help="fully decode every image (slow; also catches truncated files)")
    return parser


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    """Print one report per dataset; 0 if all are usable, 1 if any is not, 2 on bad arguments."""
    root = os.path.abspath(os.path.expanduser(args.root))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"--root {root}: folder not found (set --root or $DATA)")
    names = resolve_names(args.datasets) if args.datasets else present_datasets(root)
    if not names:
        folders = ", ".join(DATASET_REGISTRY.get(n).folder_name for n in DATASET_REGISTRY.names())
        print(f"no dataset folder found under {root}; expected any of: {folders}")
        return 1
    reports = [check_dataset(root, name, args.decode, args.csv) for name in names]
    for report in reports:
        print("\n".join(report.lines()))
    bad = [r.name for r in reports if not r.usable]
    print(f"{len(reports) - len(bad)} of {len(reports)} dataset(s) usable" + (f"; not usable: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
