"""Synthetic datasets written in each dataset's real on-disk format (tests and the offline demo).

``make_dataset(root, name, ...)`` writes one dataset under ``root`` (tiny JPEGs, deterministic from ``seed``,
class names in the real naming style) and returns what it wrote. With ``learnable=True`` each class has its
own mean colour, so even a tiny model can learn the classes.
"""
from __future__ import annotations

import colorsys
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

PETS = ["Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "Bengal",
        "Birman", "Bombay", "boxer", "British_Shorthair", "chihuahua", "Egyptian_Mau", "english_cocker_spaniel",
        "english_setter", "german_shorthaired", "great_pyrenees", "havanese", "japanese_chin", "keeshond",
        "leonberger", "Maine_Coon", "miniature_pinscher", "newfoundland", "Persian", "pomeranian", "pug", "Ragdoll",
        "Russian_Blue", "saint_bernard", "samoyed", "scottish_terrier", "shiba_inu", "Siamese", "Sphynx",
        "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier"]  # all 37, in class-id order
EUROSAT = [("AnnualCrop", "Annual Crop Land"), ("Forest", "Forest"),
           ("HerbaceousVegetation", "Herbaceous Vegetation Land"), ("Highway", "Highway or Road"),
           ("Industrial", "Industrial Buildings"), ("Pasture", "Pasture Land"),
           ("PermanentCrop", "Permanent Crop Land"), ("Residential", "Residential Buildings"),
           ("River", "River"), ("SeaLake", "Sea or Lake")]
DTD = ["banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked",
       "crosshatched", "crystalline", "dotted", "fibrous"]
FOOD = ["apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare", "beet_salad",
        "beignets", "bibimbap", "bread_pudding", "breakfast_burrito", "bruschetta", "caesar_salad"]
# Sorted folder order (upper case first), after dropping BACKGROUND_Google and Faces_easy.
CALTECH = [("Faces", "face"), ("Leopards", "leopard"), ("Motorbikes", "motorbike"), ("accordion", "accordion"),
           ("airplanes", "airplane"), ("anchor", "anchor"), ("ant", "ant"), ("barrel", "barrel"),
           ("bass", "bass"), ("beaver", "beaver"), ("binocular", "binocular"), ("bonsai", "bonsai")]
AIRCRAFT = ["707-320", "727-200", "737-200", "737-300", "A300B4", "A310", "ATR-42", "BAE 146-200",
            "Boeing 717", "CRJ-200", "Cessna 172", "DC-10"]
SUN = ["a/abbey", "a/airplane_cabin", "a/apartment_building/outdoor", "b/badlands", "b/bakery/shop",
       "b/bamboo_forest", "c/campus", "c/canyon", "d/dam", "d/dining_room", "f/forest/broadleaf", "h/highway"]
UCF = ["ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam", "BandMarching",
       "BaseballPitch", "Basketball", "BasketballDunk", "BenchPress", "Biking", "Billiards"]
CARS = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012", "Acura TL Type-S 2008",
        "Acura TSX Sedan 2012", "Acura Integra Type R 2001", "Acura ZDX Hatchback 2012",
        "Aston Martin V8 Vantage Convertible 2012", "Aston Martin V8 Vantage Coupe 2012", "Audi TTS Coupe 2012",
        "BMW M3 Coupe 2012", "Tesla Model S Sedan 2012"]
FLOWERS = ["pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea", "english marigold",
           "tiger lily", "moon orchid", "bird of paradise", "monkshood", "globe thistle", "snapdragon",
           "colt's foot"]
# One's own images (ImageFolder, CSV): sorted folder names, with "_" that the readers turn into spaces.
OWN = ["barn_owl", "golden_retriever", "red_fox", "tabby_cat", "tree_frog", "zebra"]
IMAGENET = [("n01440764", "tench"), ("n01443537", "goldfish"), ("n01484850", "great white shark"),
            ("n01491361", "tiger shark"), ("n01494475", "hammerhead shark"), ("n01496331", "electric ray"),
            ("n01498041", "stingray"), ("n01514668", "rooster"), ("n01514859", "hen"), ("n01518878", "ostrich"),
            ("n01530575", "brambling"), ("n01531178", "goldfinch")]

SPLITS = ("train", "val", "test")


def class_color(label: int, n_classes: int) -> Tuple[int, int, int]:
    """Evenly spaced hues: a distinct, learnable mean colour per class."""
    r, g, b = colorsys.hsv_to_rgb(label / max(n_classes, 1), 0.9, 0.9)
    return int(r * 255), int(g * 255), int(b * 255)


def write_image(path: str, rng: np.random.Generator, size: Tuple[int, int] = (40, 32),
                color: Optional[Tuple[int, int, int]] = None) -> None:
    """A ``size`` (width, height) JPEG: uniform noise, or ``color`` plus small noise."""
    w, h = size
    if color is None:
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    else:
        noise = rng.integers(-20, 21, (h, w, 3))
        pixels = np.clip(np.array(color)[None, None, :] + noise, 0, 255).astype(np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)


ImageJob = Tuple[str, int, Tuple[int, int], Optional[Tuple[int, int, int]]]  # path, seed, size, colour


def _write_seeded(job: ImageJob) -> None:
    path, seed, size, color = job
    write_image(path, np.random.default_rng(seed), size, color)


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


# Per dataset: (folder name, image sub-folder, classes -> [(split classname, relpath(k) for image k)]).
RelPath = Callable[[int], str]


def _classes(name: str, n: int, per_class: int) -> List[Tuple[str, RelPath]]:
    def pick(seq: Sequence[Any]) -> Sequence[Any]:
        if n > len(seq):
            raise ValueError(f"synthetic {name}: at most {len(seq)} classes, asked for {n}")
        return seq[:n]

    if name == "OxfordPets":
        return [(b.lower(), lambda k, b=b: f"{b}_{k + 1}.jpg") for b in pick(PETS)]
    if name == "EuroSAT":
        return [(new, lambda k, f=f: f"{f}/{f}_{k + 1}.jpg") for f, new in pick(EUROSAT)]
    if name == "DescribableTextures":
        return [(c, lambda k, c=c: f"{c}/{c}_{k + 1:04d}.jpg") for c in pick(DTD)]
    if name == "Food101":
        return [(c, lambda k, i=i, c=c: f"{c}/{100000 * (i + 1) + k}.jpg") for i, c in enumerate(pick(FOOD))]
    if name == "Caltech101":
        return [(new, lambda k, f=f: f"{f}/image_{k + 1:04d}.jpg") for f, new in pick(CALTECH)]
    if name == "FGVCAircraft":
        return [(v, lambda k, i=i: f"{1000000 + 1000 * i + k:07d}.jpg") for i, v in enumerate(pick(AIRCRAFT))]
    if name == "SUN397":
        return [(" ".join(c.split("/")[1:][::-1]), lambda k, i=i, c=c: f"{c}/sun_a{i:02d}b{k:04d}.jpg")
                for i, c in enumerate(pick(SUN))]
    if name == "UCF101":
        def ucf(a: str) -> str:
            return "".join("_" + ch if ch.isupper() and i else ch for i, ch in enumerate(a))
        return [(ucf(a), lambda k, a=a: f"{ucf(a)}/v_{a}_g{k + 1:02d}_c01.jpg") for a in pick(UCF)]
    if name == "StanfordCars":
        def car(m: str) -> str:
            words = m.split(" ")
            return " ".join([words[-1]] + words[:-1])
        return [(car(m), lambda k, i=i: f"cars_{{split}}/{100 * i + k + 1:05d}.jpg") for i, m in enumerate(pick(CARS))]
    if name == "OxfordFlowers":
        # Contiguous numbering: imagelabels.mat gives the label of image_{i+1:05d}.jpg at index i.
        return [(f, lambda k, i=i: f"image_{per_class * i + k + 1:05d}.jpg") for i, f in enumerate(pick(FLOWERS))]
    raise ValueError(f"no synthetic writer for {name!r}")


SPLIT_LAYOUT = {
    "OxfordPets": ("oxford_pets", "images"),
    "EuroSAT": ("eurosat", "2750"),
    "DescribableTextures": ("dtd", "images"),
    "Food101": ("food-101", "images"),
    "Caltech101": ("caltech-101", "101_ObjectCategories"),
    "FGVCAircraft": ("fgvc_aircraft", "images"),
    "SUN397": ("sun397", "SUN397"),
    "UCF101": ("ucf101", "UCF-101-midframes"),
    "StanfordCars": ("stanford_cars", ""),
    "OxfordFlowers": ("oxford_flowers", "jpg"),
}
VARIANTS = {
    "ImageNetSketch": ("imagenet-sketch", "images"),
    "ImageNetA": ("imagenet-adversarial", "imagenet-a"),
    "ImageNetR": ("imagenet-rendition", "imagenet-r"),
    "ImageNetV2": ("imagenetv2", "imagenetv2-matched-frequency-format-val"),
}
SYNTHETIC_DATASETS = tuple(SPLIT_LAYOUT) + ("ImageNet",) + tuple(VARIANTS) + ("ImageFolder", "CSV")


def make_dataset(
    root: os.PathLike, name: str, n_classes: int = 3, n_train: int = 6, n_val: int = 2, n_test: int = 3,
    seed: int = 0, learnable: bool = False, size: Tuple[int, int] = (40, 32), with_split: bool = True,
    val_layout: str = "folders", workers: int = 0,
) -> Dict[str, Any]:
    """Write dataset ``name`` under ``root`` in its real layout; returns what was written.

    Args:
        n_train, n_val, n_test: images per class in each split (ImageNet: train and val(=test)).
        learnable: a distinct mean colour per class (else uniform noise).
        with_split: write ``split_zhou_<name>.json``; the fallback files are written regardless
            (except for the .mat-based OxfordFlowers / StanfordCars fallbacks). ImageFolder: train/, val/,
            test/ folders (else class folders only); CSV: a split column (else none).
        val_layout: ImageNet only: "folders" (val/<wnid>/), "flat" (+ val_labels.txt),
            "ground_truth" (+ ILSVRC2012_validation_ground_truth.txt, ILSVRC2012_id_to_wnid.txt)
            or "kaggle" (+ LOC_val_solution.csv).
        workers: > 0 encodes the JPEGs in that many processes (real-size datasets: thousands of images),
            each image from its own seed drawn from ``seed``: deterministic, but not the pixels of workers=0.
    Returns:
        dict with dataset_dir, image_dir, classnames (by label), and for split datasets the
        train/val/test entries ``[relpath, label, classname]`` in the order written to the JSON.
    """
    rng = np.random.default_rng(seed)
    jobs: List[ImageJob] = []

    def image(path: str, label: int) -> None:
        color = class_color(label, n_classes) if learnable else None
        if workers > 0:  # folders now, as the split files are written before the images
            os.makedirs(os.path.dirname(path), exist_ok=True)
            jobs.append((path, int(rng.integers(2**63)), size, color))
        else:
            write_image(path, rng, size, color)

    if name in ("ImageFolder", "CSV"):
        return _make_own(Path(root), name, n_classes, dict(zip(SPLITS, (n_train, n_val, n_test))), image, with_split)
    if name == "ImageNet":
        info = _make_imagenet(Path(root), n_classes, n_train, n_test, image, val_layout, rng)
    elif name in VARIANTS:
        info = _make_variant(Path(root), name, n_classes, n_test, image)
    else:
        info = _make_split_dataset(Path(root), name, n_classes, (n_train, n_val, n_test), with_split, image, rng)
    if jobs:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_write_seeded, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
    return info


def _make_split_dataset(root: Path, name: str, n_classes: int, per_class: Tuple[int, int, int], with_split: bool,
                        image: Callable[[str, int], None], rng: np.random.Generator) -> Dict[str, Any]:
    """A dataset with a ``split_zhou_<name>.json`` (and its original files); ``per_class``: train, val, test."""
    n_train, n_val, n_test = per_class
    folder, subdir = SPLIT_LAYOUT[name]
    dataset_dir = root / folder
    image_dir = dataset_dir / subdir if subdir else dataset_dir
    classes = _classes(name, n_classes, n_train + n_val + n_test)
    counts = dict(zip(SPLITS, (n_train, n_val, n_test)))
    splits: Dict[str, List[List[Any]]] = {s: [] for s in SPLITS}
    for label, (cname, relpath) in enumerate(classes):
        k = 0
        for split in SPLITS:
            for _ in range(counts[split]):
                rel = relpath(k).replace("{split}", "test" if split == "test" else "train")
                image(str(image_dir / rel), label)
                splits[split].append([rel, label, cname])
                k += 1
    for split in SPLITS:  # file order interleaves classes, as the shipped JSONs' orders differ from label order
        order = rng.permutation(len(splits[split]))
        splits[split] = [splits[split][i] for i in order]
    if with_split and name != "FGVCAircraft":
        (dataset_dir / f"split_zhou_{name}.json").write_text(json.dumps(splits, indent=4))
    _write_extras(name, dataset_dir, image_dir, classes, splits, image)
    return {"name": name, "dataset_dir": str(dataset_dir), "image_dir": str(image_dir),
            "classnames": [c for c, _ in classes], **splits}


def _write_extras(name: str, dataset_dir: Path, image_dir: Path, classes: List[Tuple[str, RelPath]],
                  splits: Dict[str, List[List[Any]]], image: Callable[[str, int], None]) -> None:
    """The dataset's other original files (annotation lists, fallback inputs)."""
    trainval = splits["train"] + splits["val"]
    if name == "OxfordPets":
        def line(rel: str, label: int) -> str:
            stem = rel[:-4]
            species = 1 if stem[0].isupper() else 2
            return f"{stem} {label + 1} {species} {label + 1}"
        _write_lines(dataset_dir / "annotations" / "trainval.txt", [line(r, y) for r, y, _ in trainval])
        _write_lines(dataset_dir / "annotations" / "test.txt", [line(r, y) for r, y, _ in splits["test"]])
    elif name == "Caltech101":
        for folder in ("BACKGROUND_Google", "Faces_easy"):
            for k in range(3):
                image(str(image_dir / folder / f"image_{k + 1:04d}.jpg"), 0)
    elif name == "FGVCAircraft":
        _write_lines(dataset_dir / "variants.txt", [c for c, _ in classes])
        for split in SPLITS:
            _write_lines(dataset_dir / f"images_variant_{split}.txt", [f"{r[:-4]} {c}" for r, _, c in splits[split]])
    elif name == "SUN397":
        _write_lines(dataset_dir / "ClassName.txt", ["/" + c for c in SUN[: len(classes)]])
        _write_lines(dataset_dir / "Training_01.txt", ["/" + r for r, _, _ in trainval])
        _write_lines(dataset_dir / "Testing_01.txt", ["/" + r for r, _, _ in splits["test"]])
    elif name == "UCF101":
        actions = UCF[: len(classes)]
        lists = dataset_dir / "ucfTrainTestlist"
        _write_lines(lists / "classInd.txt", [f"{i + 1} {a}" for i, a in enumerate(actions)])
        def video(rel: str, label: int) -> str:  # Apply_Eye_Makeup/v_X.jpg -> ApplyEyeMakeup/v_X.avi
            return f"{actions[label]}/{rel.split('/')[1][:-4]}.avi"
        _write_lines(lists / "trainlist01.txt", [f"{video(r, y)} {y + 1}" for r, y, _ in trainval])
        _write_lines(lists / "testlist01.txt", [video(r, y) for r, y, _ in splits["test"]])
    elif name == "OxfordFlowers":
        names = {str(i + 1): c for i, (c, _) in enumerate(classes)}
        (dataset_dir / "cat_to_name.json").write_text(json.dumps(names, indent=4))


def _make_imagenet(root: Path, n_classes: int, n_train: int, n_test: int, image: Callable[[str, int], None],
                   val_layout: str, rng: np.random.Generator) -> Dict[str, Any]:
    dataset_dir = root / "imagenet"
    image_dir = dataset_dir / "images"
    wnids = IMAGENET[:n_classes]
    _write_lines(dataset_dir / "classnames.txt", [f"{w} {c}" for w, c in IMAGENET])
    val_files: List[Tuple[str, str]] = []
    for label, (wnid, _) in enumerate(wnids):
        for k in range(n_train):
            image(str(image_dir / "train" / wnid / f"{wnid}_{k + 1}.JPEG"), label)
        for k in range(n_test):
            val_files.append((f"ILSVRC2012_val_{label * n_test + k + 1:08d}.JPEG", wnid))
    order = rng.permutation(len(val_files))  # val ids are not grouped by class in the real set
    val_files = [(f"ILSVRC2012_val_{i + 1:08d}.JPEG", val_files[j][1]) for i, j in enumerate(order)]
    lab_of = {w: i for i, (w, _) in enumerate(wnids)}
    for fname, wnid in val_files:
        sub = wnid if val_layout == "folders" else ""
        image(str(image_dir / "val" / sub / fname), lab_of[wnid])
    if val_layout == "flat":
        _write_lines(dataset_dir / "val_labels.txt", [f"{f} {w}" for f, w in val_files])
    elif val_layout == "kaggle":
        _write_lines(dataset_dir / "LOC_val_solution.csv",
                     ["ImageId,PredictionString"] + [f"{f[:-5]},{w} 1 2 30 40" for f, w in val_files])
    elif val_layout == "ground_truth":
        ilsvrc_id = {w: 1000 - i for i, (w, _) in enumerate(IMAGENET)}  # not sorted-wnid order, as in the devkit
        devkit = dataset_dir / "ILSVRC2012_devkit_t12" / "data"
        _write_lines(devkit / "ILSVRC2012_validation_ground_truth.txt", [str(ilsvrc_id[w]) for _, w in val_files])
        _write_lines(dataset_dir / "ILSVRC2012_id_to_wnid.txt", [f"{i} {w}" for w, i in ilsvrc_id.items()])
    elif val_layout != "folders":
        raise ValueError(f"val_layout: expected folders, flat, kaggle or ground_truth, got {val_layout!r}")
    return {"name": "ImageNet", "dataset_dir": str(dataset_dir), "image_dir": str(image_dir),
            "classnames": [c for _, c in wnids], "wnids": [w for w, _ in wnids], "val_files": val_files}


def _make_variant(root: Path, name: str, n_classes: int, n_test: int,
                  image: Callable[[str, int], None]) -> Dict[str, Any]:
    folder, subdir = VARIANTS[name]
    dataset_dir = root / folder
    image_dir = dataset_dir / subdir
    _write_lines(dataset_dir / "classnames.txt", [f"{w} {c}" for w, c in IMAGENET])
    # A/R hold a subset of the classes (every other wnid); Sketch all of the first n; V2 numbered folders.
    chosen = IMAGENET[1 : 2 * n_classes : 2] if name in ("ImageNetA", "ImageNetR") else IMAGENET[:n_classes]
    if len(chosen) < n_classes:
        raise ValueError(f"synthetic {name}: at most {len(chosen)} classes, asked for {n_classes}")
    for label, (wnid, _) in enumerate(chosen):
        sub = str(IMAGENET.index((wnid, _))) if name == "ImageNetV2" else wnid
        for k in range(n_test):
            image(str(image_dir / sub / f"{k:04d}.jpg"), label)
    if name in ("ImageNetA", "ImageNetR"):
        (image_dir / "README.txt").write_text("synthetic\n")
    return {"name": name, "dataset_dir": str(dataset_dir), "image_dir": str(image_dir),
            "classnames": [c for _, c in chosen], "wnids": [w for w, _ in chosen]}


def _make_own(root: Path, name: str, n_classes: int, counts: Dict[str, int], image: Callable[[str, int], None],
              with_split: bool) -> Dict[str, Any]:
    """ImageFolder: ``root/[<split>/]<class>/<k>.jpg``; CSV: ``root/images/<class>_<k>.jpg`` + ``root/labels.csv``
    (path,classname[,split]). Splits are entries ``[path relative to root, label, class name]``."""
    if n_classes > len(OWN):
        raise ValueError(f"synthetic {name}: at most {len(OWN)} classes, asked for {n_classes}")
    splits: Dict[str, List[List[Any]]] = {s: [] for s in SPLITS}
    for label, folder in enumerate(OWN[:n_classes]):
        k = 0
        for split in SPLITS:
            for _ in range(counts[split]):
                if name == "CSV":
                    rel = f"images/{folder}_{k}.jpg"
                else:
                    rel = f"{split}/{folder}/{k:03d}.jpg" if with_split else f"{folder}/{k:03d}.jpg"
                image(str(root / rel), label)
                splits[split].append([rel, label, folder.replace("_", " ")])
                k += 1
    if name == "CSV":
        header = "path,classname,split" if with_split else "path,classname"
        rows = [f"{rel},{OWN[label]}" + (f",{split}" if with_split else "")
                for split in SPLITS for rel, label, _ in splits[split]]
        _write_lines(root / "labels.csv", [header] + rows)
    return {"name": name, "dataset_dir": str(root), "image_dir": str(root),
            "classnames": [c.replace("_", " ") for c in OWN[:n_classes]], **splits}
