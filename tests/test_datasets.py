"""Each dataset reader on its synthetic on-disk layout: splits, labels, names, fallbacks and errors."""
import json
import os
import random
import shutil
import sys
import types
from collections import defaultdict

import numpy as np
import pytest

from dpt.data import build_dataset
from dpt.data.datum import Datum
from dpt.demo.synthetic import SPLIT_LAYOUT, make_dataset
from dpt.registry import DATASET_REGISTRY
from helpers import make_data_cfg, reference_fewshot

ALL_NAMES = {
    "OxfordPets", "OxfordFlowers", "FGVCAircraft", "DescribableTextures", "EuroSAT", "StanfordCars", "Food101",
    "SUN397", "Caltech101", "UCF101", "ImageNet", "ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR",
    "ImageFolder", "CSV",
}


def keys(items):
    return [(d.impath, d.label, d.classname) for d in items]


def expected(info, split):
    return [(os.path.join(info["image_dir"], rel), label, cname) for rel, label, cname in info[split]]


def test_registry_holds_every_dataset():
    import dpt.datasets  # noqa: F401

    assert set(DATASET_REGISTRY.names()) == ALL_NAMES


@pytest.mark.parametrize("name", sorted(SPLIT_LAYOUT))
def test_split_reader_matches_written_split(tmp_path, name):
    info = make_dataset(tmp_path, name, n_classes=4, n_train=3, n_val=2, n_test=2, seed=1)
    dataset = build_dataset(make_data_cfg(tmp_path, name))
    for split, items in (("train", dataset.train_x), ("val", dataset.val), ("test", dataset.test)):
        assert keys(items) == expected(info, split)
    assert all(os.path.isabs(d.impath) and os.path.isfile(d.impath) for d in dataset.test)
    assert dataset.num_classes == 4
    assert dataset.classnames == info["classnames"]
    assert dataset.lab2cname == dict(enumerate(info["classnames"]))
    assert dataset.dataset_dir == os.path.join(str(tmp_path), SPLIT_LAYOUT[name][0])


def test_class_name_rules(tmp_path):
    names = {}
    for name in ("EuroSAT", "Caltech101", "SUN397", "UCF101", "StanfordCars", "FGVCAircraft", "OxfordPets"):
        make_dataset(tmp_path, name, n_classes=12 if name not in ("EuroSAT",) else 10, n_train=1, n_val=1, n_test=1)
        names[name] = build_dataset(make_data_cfg(tmp_path, name)).classnames
    assert names["EuroSAT"][:4] == ["Annual Crop Land", "Forest", "Herbaceous Vegetation Land", "Highway or Road"]
    assert names["Caltech101"][:5] == ["face", "leopard", "motorbike", "accordion", "airplane"]
    assert names["SUN397"][2] == "outdoor apartment_building"
    assert names["UCF101"][0] == "Apply_Eye_Makeup"
    assert names["StanfordCars"][-1] == "2012 Tesla Model S Sedan"
    assert "BAE 146-200" in names["FGVCAircraft"]
    assert names["OxfordPets"][:2] == ["abyssinian", "american_bulldog"]


# ---- fallbacks ---------------------------------------------------------------------------------

def ref_split_trainval(trainval, p_val=0.2):
    tracker = defaultdict(list)
    for idx, item in enumerate(trainval):
        tracker[item[1]].append(idx)
    train, val = [], []
    for idxs in tracker.values():
        n_val = round(len(idxs) * p_val)
        random.shuffle(idxs)
        for n, idx in enumerate(idxs):
            (val if n < n_val else train).append(trainval[idx])
    return train, val


def ref_folder_split(image_dir, ignored=(), rename=None):
    rename = rename or {}
    cats = sorted(c for c in os.listdir(image_dir) if c not in ignored and os.path.isdir(os.path.join(image_dir, c)))
    train, val, test = [], [], []
    for label, cat in enumerate(cats):
        ims = [os.path.join(image_dir, cat, f) for f in sorted(os.listdir(os.path.join(image_dir, cat)))]
        random.shuffle(ims)
        n_tr, n_val = round(len(ims) * 0.5), round(len(ims) * 0.2)
        name = rename.get(cat, cat)
        train += [(p, label, name) for p in ims[:n_tr]]
        val += [(p, label, name) for p in ims[n_tr : n_tr + n_val]]
        test += [(p, label, name) for p in ims[n_tr + n_val :]]
    return train, val, test


def test_oxford_pets_annotation_fallback_then_saved_split(tmp_path, capsys):
    info = make_dataset(tmp_path, "OxfordPets", n_classes=3, n_train=8, n_val=2, n_test=3, with_split=False)
    random.seed(4)
    dataset = build_dataset(make_data_cfg(tmp_path, "OxfordPets"))
    random.seed(4)
    ref_train, ref_val = ref_split_trainval(expected(info, "train") + expected(info, "val"))
    assert keys(dataset.train_x) == ref_train and keys(dataset.val) == ref_val
    assert keys(dataset.test) == expected(info, "test")
    assert [sum(d.label == y for d in dataset.val) for y in range(3)] == [2, 2, 2]
    split_path = os.path.join(info["dataset_dir"], "split_zhou_OxfordPets.json")
    assert f"Saved split to {split_path}" in capsys.readouterr().out
    random.seed(999)
    again = build_dataset(make_data_cfg(tmp_path, "OxfordPets"))
    assert keys(again.train_x) == ref_train
    with open(split_path) as f:
        assert json.load(f)["val"][0] == [os.path.basename(ref_val[0][0]), ref_val[0][1], ref_val[0][2]]


def test_fallback_split_is_checked_on_use_and_remade_when_images_change(tmp_path, capsys):
    info = make_dataset(tmp_path, "DescribableTextures", n_classes=2, n_train=5, n_val=2, n_test=3, with_split=False)
    split_path = os.path.join(info["dataset_dir"], "split_zhou_DescribableTextures.json")
    cfg = make_data_cfg(tmp_path, "DescribableTextures", num_shots=2, seed=3)
    random.seed(3)
    first = build_dataset(cfg)
    assert json.load(open(split_path))["source"]["splitter"] == 1
    inode = os.stat(split_path).st_ino
    capsys.readouterr()
    random.seed(3)
    again = build_dataset(cfg)  # unchanged images: the file is used, and the check draws no random numbers
    assert "Note: split file" not in capsys.readouterr().out and os.stat(split_path).st_ino == inode
    assert keys(again.train_x) == keys(first.train_x)
    random.seed(4)  # checking the file draws no random numbers: the subset is what CoOp draws from the file
    other_seed = build_dataset(make_data_cfg(tmp_path, "DescribableTextures", num_shots=2, seed=4))
    random.seed(4)
    saved = json.load(open(split_path))
    assert keys(other_seed.train_x) == reference_fewshot(
        [(os.path.join(info["image_dir"], r), y, c) for r, y, c in saved["train"]], 2)
    added = os.path.join(info["image_dir"], info["classnames"][0], "added.jpg")
    shutil.copy(first.test[0].impath, added)
    capsys.readouterr()
    random.seed(3)
    remade = build_dataset(cfg)
    out = capsys.readouterr().out
    assert (f"Note: split file {split_path} was made by the fallback from images that changed since; "
            f"splitting them again and replacing it") in out
    saved = json.load(open(split_path))
    random.seed(3)  # split exactly as a first run over the new folders would
    entries = tuple([(os.path.join(info["image_dir"], r), y, c) for r, y, c in saved[k]] for k in ("train", "val", "test"))
    assert entries == ref_folder_split(info["image_dir"])
    assert any(e[0].endswith("added.jpg") for k in ("train", "val", "test") for e in saved[k])
    assert "few-shot cache" in out and "another train list" in out  # the subset follows the new split
    assert len(remade.train_x) == 4


def test_downloaded_split_is_used_as_it_is(tmp_path, capsys):
    """CoOp's split files carry no record of their making: never re-split, even if the folders changed."""
    info = make_dataset(tmp_path, "DescribableTextures", n_classes=2, n_train=5, n_val=2, n_test=3)
    shutil.copy(os.path.join(info["image_dir"], info["train"][0][0]),
                os.path.join(info["image_dir"], info["classnames"][0], "added.jpg"))
    dataset = build_dataset(make_data_cfg(tmp_path, "DescribableTextures"))
    assert keys(dataset.train_x) == expected(info, "train") and "Note" not in capsys.readouterr().out


@pytest.mark.parametrize("name, ignored, rename", [
    ("DescribableTextures", (), None),
    ("EuroSAT", (), {"AnnualCrop": "Annual Crop Land", "HerbaceousVegetation": "Herbaceous Vegetation Land", "Forest": "Forest"}),
    ("Caltech101", ("BACKGROUND_Google", "Faces_easy"), {"Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}),
    ("Food101", (), None),
])
def test_folder_fallback_matches_reference(tmp_path, name, ignored, rename):
    info = make_dataset(tmp_path, name, n_classes=3, n_train=5, n_val=2, n_test=3, with_split=False)
    random.seed(11)
    dataset = build_dataset(make_data_cfg(tmp_path, name))
    random.seed(11)
    ref = ref_folder_split(info["image_dir"], ignored, rename)
    assert (keys(dataset.train_x), keys(dataset.val), keys(dataset.test)) == ref
    assert (len(dataset.train_x), len(dataset.val), len(dataset.test)) == (15, 6, 9)  # 10 images: 5/2/3
    assert dataset.classnames == info["classnames"]


def test_sun397_and_ucf101_text_fallbacks(tmp_path):
    for name in ("SUN397", "UCF101"):
        info = make_dataset(tmp_path, name, n_classes=3, n_train=4, n_val=1, n_test=2, with_split=False)
        random.seed(2)
        dataset = build_dataset(make_data_cfg(tmp_path, name))
        random.seed(2)
        ref_train, ref_val = ref_split_trainval(expected(info, "train") + expected(info, "val"))
        assert keys(dataset.train_x) == ref_train and keys(dataset.val) == ref_val
        assert keys(dataset.test) == expected(info, "test")


@pytest.mark.parametrize("name, mat", [("OxfordFlowers", "imagelabels.mat"), ("StanfordCars", "cars_meta.mat")])
def test_mat_fallback_without_scipy_asks_for_split_or_scipy(tmp_path, monkeypatch, name, mat):
    monkeypatch.setitem(sys.modules, "scipy", None)
    info = make_dataset(tmp_path, name, with_split=False)
    for parts in (("imagelabels.mat",), ("devkit", "cars_meta.mat"), ("devkit", "cars_train_annos.mat"),
                  ("cars_test_annos_withlabels.mat",)):
        path = os.path.join(info["dataset_dir"], *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").close()
    with pytest.raises(FileNotFoundError, match=f"needs scipy; download split_zhou_{name}.json .* or pip install scipy"):
        build_dataset(make_data_cfg(tmp_path, name))


def _mat_column(values):
    column = np.empty((1, len(values)), dtype=object)
    for i, v in enumerate(values):
        column[0, i] = np.array([v])
    return column


def _fake_scipy(monkeypatch, tables):
    """Install ``scipy.io.loadmat`` answering from ``tables`` (file name -> dict), shaped like scipy's output."""
    io = types.ModuleType("scipy.io")
    io.loadmat = lambda path: tables[os.path.basename(path)]
    scipy = types.ModuleType("scipy")
    scipy.io = io
    monkeypatch.setitem(sys.modules, "scipy", scipy)
    monkeypatch.setitem(sys.modules, "scipy.io", io)


def test_flowers_mat_fallback(tmp_path, monkeypatch):
    info = make_dataset(tmp_path, "OxfordFlowers", n_classes=3, n_train=5, n_val=2, n_test=3, with_split=False)
    labels = np.repeat(np.array([1, 2, 3], dtype=np.uint8), 10)[None, :]  # [1, 30] as scipy returns
    _fake_scipy(monkeypatch, {"imagelabels.mat": {"labels": labels}})
    open(os.path.join(info["dataset_dir"], "imagelabels.mat"), "wb").close()
    random.seed(6)
    dataset = build_dataset(make_data_cfg(tmp_path, "OxfordFlowers"))
    random.seed(6)
    ref = [], [], []
    for y in range(3):
        ims = [os.path.join(info["image_dir"], f"image_{10 * y + k + 1:05d}.jpg") for k in range(10)]
        random.shuffle(ims)
        for split, chunk in zip(ref, (ims[:5], ims[5:7], ims[7:])):
            split.extend((p, y, info["classnames"][y]) for p in chunk)
    assert (keys(dataset.train_x), keys(dataset.val), keys(dataset.test)) == ref


def test_cars_mat_fallback(tmp_path, monkeypatch):
    info = make_dataset(tmp_path, "StanfordCars", n_classes=3, n_train=4, n_val=1, n_test=2, with_split=False)
    meta_names = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012"]

    def annotations(entries):
        records = np.zeros((1, len(entries)), dtype=[("fname", object), ("class", object)])
        for i, (rel, label, _) in enumerate(entries):
            records["fname"][0, i] = np.array([os.path.basename(rel)])
            records["class"][0, i] = np.array([[label + 1]], dtype=np.uint8)
        return {"annotations": records}

    trainval = info["train"] + info["val"]
    _fake_scipy(monkeypatch, {
        "cars_meta.mat": {"class_names": _mat_column(meta_names)},
        "cars_train_annos.mat": annotations(trainval),
        "cars_test_annos_withlabels.mat": annotations(info["test"]),
    })
    for parts in (("devkit", "cars_meta.mat"), ("devkit", "cars_train_annos.mat"), ("cars_test_annos_withlabels.mat",)):
        path = os.path.join(info["dataset_dir"], *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").close()
    random.seed(8)
    dataset = build_dataset(make_data_cfg(tmp_path, "StanfordCars"))
    random.seed(8)
    ref_train, ref_val = ref_split_trainval(expected(info, "train") + expected(info, "val"))
    assert keys(dataset.train_x) == ref_train and keys(dataset.val) == ref_val
    assert keys(dataset.test) == expected(info, "test")
    assert dataset.classnames == ["2000 AM General Hummer SUV", "2012 Acura RL Sedan", "2012 Acura TL Sedan"]


# ---- ImageNet and its variants -----------------------------------------------------------------

@pytest.mark.parametrize("val_layout", ["folders", "flat", "kaggle", "ground_truth"])
def test_imagenet_val_layouts_give_the_same_labels(tmp_path, val_layout):
    info = make_dataset(tmp_path, "ImageNet", n_classes=3, n_train=2, n_test=3, seed=5, val_layout=val_layout)
    dataset = build_dataset(make_data_cfg(tmp_path, "ImageNet"))
    label_of = {w: i for i, w in enumerate(info["wnids"])}
    got = {os.path.basename(d.impath): (d.label, d.classname) for d in dataset.test}
    want = {f: (label_of[w], info["classnames"][label_of[w]]) for f, w in info["val_files"]}
    assert got == want
    assert len(dataset.train_x) == 6 and dataset.classnames == info["classnames"]
    assert keys(dataset.val) == keys(dataset.test)
    train_names = [os.path.relpath(d.impath, info["image_dir"]) for d in dataset.train_x]
    assert train_names == [f"train/{w}/{w}_{k}.JPEG" for w in info["wnids"] for k in (1, 2)]


def test_imagenet_flat_val_without_labels_lists_accepted_files(tmp_path):
    info = make_dataset(tmp_path, "ImageNet", n_classes=2, n_train=1, n_test=2, val_layout="flat")
    os.remove(os.path.join(info["dataset_dir"], "val_labels.txt"))
    with pytest.raises(FileNotFoundError, match="val_labels.txt, LOC_val_solution.csv, ILSVRC2012_validation_ground_truth.txt"):
        build_dataset(make_data_cfg(tmp_path, "ImageNet"))


def test_imagenet_ground_truth_needs_an_id_map(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    info = make_dataset(tmp_path, "ImageNet", n_classes=2, n_train=1, n_test=2, val_layout="ground_truth")
    os.remove(os.path.join(info["dataset_dir"], "ILSVRC2012_id_to_wnid.txt"))
    with pytest.raises(FileNotFoundError, match="needs ILSVRC2012_id_to_wnid.txt or meta.mat"):
        build_dataset(make_data_cfg(tmp_path, "ImageNet"))


@pytest.mark.parametrize("name", ["ImageNetSketch", "ImageNetA", "ImageNetR", "ImageNetV2"])
def test_imagenet_variants_are_test_only(tmp_path, name):
    info = make_dataset(tmp_path, name, n_classes=3, n_test=2)
    dataset = build_dataset(make_data_cfg(tmp_path, name, num_shots=1))
    assert keys(dataset.train_x) == keys(dataset.test)
    assert dataset.val == []
    assert [d.label for d in dataset.test] == [0, 0, 1, 1, 2, 2]
    assert dataset.classnames == info["classnames"]
    assert not os.path.exists(os.path.join(info["dataset_dir"], "split_fewshot"))


# ---- subsets and errors ------------------------------------------------------------------------

@pytest.mark.parametrize("subsample, labels, names", [("base", [0, 1, 2], [0, 1, 2]), ("new", [0, 1], [3, 4])])
def test_subsample_classes(tmp_path, subsample, labels, names):
    info = make_dataset(tmp_path, "DescribableTextures", n_classes=5, n_train=2, n_val=1, n_test=1)
    cfg = make_data_cfg(tmp_path, "DescribableTextures", opts={"DATASET.SUBSAMPLE_CLASSES": subsample})
    dataset = build_dataset(cfg)
    for split in (dataset.train_x, dataset.val, dataset.test):
        assert sorted({d.label for d in split}) == labels
    assert dataset.classnames == [info["classnames"][i] for i in names]
    assert len(dataset.train_x) == 2 * len(labels)


def test_unknown_name_lists_valid_and_closest(tmp_path):
    with pytest.raises(KeyError, match="unknown dataset 'OxfordPet'; valid: CSV, Caltech101, .*UCF101; did you mean 'OxfordPets'"):
        build_dataset(make_data_cfg(tmp_path, "OxfordPet"))


def test_empty_root_and_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="DATASET.ROOT is empty; dataset EuroSAT expected <DATASET.ROOT>/eurosat/ holding 2750/"):
        build_dataset(make_data_cfg("", "EuroSAT"))
    with pytest.raises(FileNotFoundError, match=f"folder not found: {tmp_path}/oxford_pets; expected .*images/ and split_zhou_OxfordPets.json"):
        build_dataset(make_data_cfg(tmp_path, "OxfordPets"))


def test_missing_split_without_fallback_files(tmp_path):
    os.makedirs(tmp_path / "oxford_pets" / "images")
    json_path = tmp_path / "oxford_pets" / "split_zhou_OxfordPets.json"
    with pytest.raises(FileNotFoundError, match=f"split file {json_path} not found, and the fallback needs .*trainval.txt"):
        build_dataset(make_data_cfg(tmp_path, "OxfordPets"))
    os.makedirs(tmp_path / "food-101")
    with pytest.raises(FileNotFoundError, match="split_zhou_Food101.json not found, and the fallback needs .*food-101/images"):
        build_dataset(make_data_cfg(tmp_path, "Food101"))


def test_listed_but_absent_image(tmp_path):
    info = make_dataset(tmp_path, "EuroSAT")
    rel = info["val"][1][0]
    os.remove(os.path.join(info["image_dir"], rel))
    split_path = os.path.join(info["dataset_dir"], "split_zhou_EuroSAT.json")
    with pytest.raises(FileNotFoundError, match=f"image not found: .*{rel} \\(listed in {split_path} \\[val\\] of dataset EuroSAT\\)"):
        build_dataset(make_data_cfg(tmp_path, "EuroSAT"))


def test_corrupt_split_json(tmp_path):
    info = make_dataset(tmp_path, "EuroSAT")
    split_path = os.path.join(info["dataset_dir"], "split_zhou_EuroSAT.json")
    with open(split_path, "w") as f:
        f.write("{not json")
    with pytest.raises(ValueError, match=f"{split_path}: corrupt split file"):
        build_dataset(make_data_cfg(tmp_path, "EuroSAT"))
    with open(split_path, "w") as f:
        json.dump({"train": [], "test": []}, f)
    with pytest.raises(ValueError, match="expected keys train, val, test; found \\['test', 'train'\\]"):
        build_dataset(make_data_cfg(tmp_path, "EuroSAT"))


def test_empty_split_names_dataset_and_split(tmp_path):
    info = make_dataset(tmp_path, "EuroSAT")
    split_path = os.path.join(info["dataset_dir"], "split_zhou_EuroSAT.json")
    with open(split_path, "w") as f:
        json.dump({"train": info["train"], "val": info["val"], "test": []}, f)
    with pytest.raises(ValueError, match="dataset EuroSAT: the test split is empty"):
        build_dataset(make_data_cfg(tmp_path, "EuroSAT"))


def test_fgvc_missing_list_file(tmp_path):
    info = make_dataset(tmp_path, "FGVCAircraft")
    os.remove(os.path.join(info["dataset_dir"], "images_variant_val.txt"))
    with pytest.raises(FileNotFoundError, match="missing .*images_variant_val.txt"):
        build_dataset(make_data_cfg(tmp_path, "FGVCAircraft"))


def test_datum_is_read_only_and_checks_the_file(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(b"\xff")
    item = Datum(str(path), 3, classname="cat")
    assert (item.impath, item.label, item.domain, item.classname) == (str(path), 3, 0, "cat")
    with pytest.raises(AttributeError):
        item.label = 4
    with pytest.raises(FileNotFoundError, match="image not found: .*nope.jpg \\(listed in split.json\\)"):
        Datum(str(tmp_path / "nope.jpg"), 0, source="split.json")


def test_data_root_fixture_holds_readable_datasets(data_root):
    for name in ("OxfordPets", "EuroSAT", "DescribableTextures", "Caltech101", "FGVCAircraft", "ImageNet"):
        dataset = build_dataset(make_data_cfg(data_root, name))
        assert dataset.num_classes == 3 and len(dataset.train_x) == 18


def test_learnable_images_have_one_colour_per_class(tmp_path):
    from PIL import Image

    info = make_dataset(tmp_path, "EuroSAT", n_classes=4, learnable=True)
    means = defaultdict(list)
    for rel, label, _ in info["train"]:
        means[label].append(np.asarray(Image.open(os.path.join(info["image_dir"], rel)), np.float32).mean((0, 1)))
    centres = {y: np.mean(m, 0) for y, m in means.items()}
    spread = max(np.abs(m - centres[y]).max() for y, ms in means.items() for m in ms)
    gap = min(np.abs(centres[a] - centres[b]).max() for a in centres for b in centres if a < b)
    assert spread < 5 and gap > 50
