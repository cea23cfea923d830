"""One's own images: ImageFolder and CSV datasets, their seeded split, DATASET.TEMPLATE and their bad input."""
from __future__ import annotations

import json
import os
import random
import shutil

import numpy as np
import pytest

import torch
import torch.nn.functional as F

from dpt.config.merge import setup_cfg
from dpt.data import build_dataset
from dpt.data.custom_dataset import SPLIT_SEED
from dpt.datasets.image_folder import ImageFolder
from dpt.demo.synthetic import make_dataset, write_image
from dpt.modeling.backbones.clip_import import clip
from dpt.tools.check_data import main as check_data
from dpt.train import build_parser, main
from helpers import REPO, make_data_cfg


def keys(items, root):
    return [(os.path.relpath(d.impath, root), d.label, d.classname) for d in items]


def folder_cfg(root, **opts):
    return make_data_cfg(root, "ImageFolder", opts=opts or None)


def reference_split(root, classes):
    """CoOp's fallback on the sorted files of each class, shuffled by random.Random(SPLIT_SEED), 50/20/30."""
    rng = random.Random(SPLIT_SEED)
    out = {"train": [], "val": [], "test": []}
    for label, folder in enumerate(classes):
        files = sorted(os.path.join(folder, f) for f in os.listdir(os.path.join(root, folder)))
        rng.shuffle(files)
        n_train, n_val = round(len(files) * 0.5), round(len(files) * 0.2)
        name = folder.replace("_", " ")
        out["train"] += [(f, label, name) for f in files[:n_train]]
        out["val"] += [(f, label, name) for f in files[n_train:n_train + n_val]]
        out["test"] += [(f, label, name) for f in files[n_train + n_val:]]
    return out


def test_class_folders_are_split_with_a_fixed_seed_saved_and_reused(tmp_path, capsys):
    root = tmp_path / "photos"
    info = make_dataset(root, "ImageFolder", n_classes=3, n_train=5, n_val=2, n_test=3, with_split=False)
    random.seed(123)
    state = random.getstate()
    first = build_dataset(folder_cfg(root))
    assert random.getstate() == state  # the split does not consume the run's RNG
    ref = reference_split(root, ["barn_owl", "golden_retriever", "red_fox"])
    assert [keys(s, root) for s in (first.train_x, first.val, first.test)] == [ref["train"], ref["val"], ref["test"]]
    assert first.classnames == info["classnames"] == ["barn owl", "golden retriever", "red fox"]
    split_path = root / "split_ImageFolder.json"
    assert f"Saved split to {split_path}" in capsys.readouterr().out
    assert json.loads(split_path.read_text())["val"][0] == list(ref["val"][0])

    few = build_dataset(make_data_cfg(root, "ImageFolder", num_shots=2, seed=7))  # another seed: same split
    assert "Reading split from" in capsys.readouterr().out
    assert {k for k in keys(few.train_x, root)} <= set(ref["train"]) and len(few.train_x) == 6
    again = build_dataset(folder_cfg(root))  # the caches beside the class folders are not classes
    assert (root / "split_fewshot").is_dir() and again.classnames == first.classnames


def test_split_folders_are_used_as_given(tmp_path):
    root = tmp_path / "photos"
    info = make_dataset(root, "ImageFolder", n_classes=3, n_train=3, n_val=1, n_test=2)
    dataset = build_dataset(folder_cfg(root))
    for split, items in (("train", dataset.train_x), ("val", dataset.val), ("test", dataset.test)):
        assert sorted(keys(items, root)) == sorted(tuple(e) for e in info[split])
    assert not (root / "split_ImageFolder.json").exists()
    shutil.rmtree(root / "val")  # val/ is optional
    dataset = build_dataset(folder_cfg(root))
    assert dataset.val == [] and len(dataset.test) == 6


def test_sub_folders_are_read_and_other_files_ignored(tmp_path):
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for name in ("cat/2019/a.jpg", "cat/b.PNG", "dog/c.jpeg", "dog/d.webp", "dog/e.jpg", "cat/f.jpg"):
        write_image(str(root / name), rng)
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "dog" / ".hidden.jpg").write_text("hidden")
    (root / "labels.csv").write_text("a file beside the classes")
    listed, _ = ImageFolder.__new__(ImageFolder).list_images(str(root))
    assert sorted(os.path.relpath(item.path, root) for item in listed) == [
        "cat/2019/a.jpg", "cat/b.PNG", "cat/f.jpg", "dog/c.jpeg", "dog/d.webp", "dog/e.jpg"]


def test_the_saved_split_must_match_the_folder(tmp_path):
    root = tmp_path / "photos"
    make_dataset(root, "ImageFolder", n_classes=2, n_train=5, n_val=2, n_test=3, with_split=False)
    build_dataset(folder_cfg(root))
    write_image(str(root / "red_fox" / "new.jpg"), np.random.default_rng(1))
    with pytest.raises(ValueError, match=r"split_ImageFolder.json does not match .*photos: 1 listed image\(s\) not in "
                                         r"it \(e.g. red_fox/new.jpg\); delete it and .*split_fewshot to split again"):
        build_dataset(folder_cfg(root))


def test_fewshot_cache_of_another_split_is_resampled(tmp_path, capsys):
    root = tmp_path / "photos"
    make_dataset(root, "ImageFolder", n_classes=2, n_train=5, n_val=2, n_test=3, with_split=False)
    build_dataset(make_data_cfg(root, "ImageFolder", num_shots=2))
    os.remove(root / "split_ImageFolder.json")  # a new split would be the same; fake another one
    split = json.loads(json.dumps({"train": [], "val": [], "test": []}))
    dataset = build_dataset(folder_cfg(root))
    for name, items in (("train", dataset.test), ("val", dataset.val), ("test", dataset.train_x)):
        split[name] = [[os.path.relpath(d.impath, root), d.label, d.classname] for d in items]
    (root / "split_ImageFolder.json").write_text(json.dumps(split))
    capsys.readouterr()
    resampled = build_dataset(make_data_cfg(root, "ImageFolder", num_shots=2))
    assert "shot_2-seed_1.json was sampled from another train list" in capsys.readouterr().out
    assert {d.impath for d in resampled.train_x} <= {d.impath for d in dataset.test}  # the new split's train


@pytest.mark.parametrize("layout, message", [
    ({"cat/a.jpg": 1, "cat/b.jpg": 1, "cat/c.jpg": 1, "dog/readme.txt": 0}, r"dog: empty class folder \(no .jpg"),
    ({"cat/a.jpg": 1, "cat/b.jpg": 1, "cat/c.jpg": 1}, r"found 1 class \('cat'\); a classifier needs at least 2"),
    ({"train/cat/a.jpg": 1, "train/dog/b.jpg": 1, "test/cat/c.jpg": 1, "test/fox/d.jpg": 1},
     r"class 'fox' has test images \(folder .*test/fox\) but no training images"),
    ({"golden_retriever/a.jpg": 1, "golden retriever/b.jpg": 1, "cat/c.jpg": 1},
     r"classes 'golden retriever' and 'golden_retriever' both become the class name 'golden retriever'"),
    ({"train/cat/a.jpg": 1, "test/cat/b.jpg": 1, "dog/c.jpg": 1}, r"holds train/ and test/ but also dog/"),
    ({"cat/a.jpg": 1, "cat/b.jpg": 1, "dog/c.jpg": 1, "dog/d.jpg": 1},
     r"class 0 \('cat'\) has 2 images: too few for a train/val/test split; add images or give the split"),
])
def test_bad_folders_are_one_line_errors(tmp_path, capsys, layout, message):
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for name, is_image in layout.items():
        if is_image:
            write_image(str(root / name), rng)
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text("x")
    with pytest.raises(ValueError, match=message):
        build_dataset(folder_cfg(root))
    assert check_data(["image_folder", "--root", str(root)]) == 1  # the checker reports the same, writes nothing
    assert "NOT USABLE" in capsys.readouterr().out
    assert not (root / "split_ImageFolder.json").exists()


def test_missing_root_is_one_line_error(tmp_path, tiny_clip_path, capsys):
    argv = ["--root", str(tmp_path / "nowhere"), "--trainer", "ZeroshotCLIP", "--eval-only",
            "--dataset-config-file", str(REPO / "configs/datasets/image_folder.yaml"),
            "--output-dir", str(tmp_path / "o"), "TRAINER.COOP.PREC", "fp32", "MODEL.BACKBONE.NAME", str(tiny_clip_path),
            "INPUT.SIZE", "(32, 32)"]  # the tiny CLIP's size: the preflight would report 224 too
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"dataset ImageFolder: folder not found: {tmp_path / 'nowhere'}" in err[0]
    assert not (tmp_path / "o").exists()  # found by the preflight: no run folder


# ---- CSV --------------------------------------------------------------------------------------------------


def csv_cfg(root, csv_file="labels.csv"):
    return make_data_cfg(root, "CSV", opts={"DATASET.CSV": csv_file})


def test_csv_with_split_column(tmp_path):
    info = make_dataset(tmp_path, "CSV", n_classes=3, n_train=3, n_val=1, n_test=2)
    dataset = build_dataset(csv_cfg(tmp_path))
    for split, items in (("train", dataset.train_x), ("val", dataset.val), ("test", dataset.test)):
        assert keys(items, tmp_path) == [tuple(e) for e in info[split]]
    assert dataset.classnames == info["classnames"]


def test_csv_without_split_is_split_once_into_its_cache_folder(tmp_path):
    make_dataset(tmp_path, "CSV", n_classes=2, n_train=5, n_val=2, n_test=3, with_split=False)
    (tmp_path / "other.csv").write_text((tmp_path / "labels.csv").read_text().replace(",barn_owl", ",owl"))
    dataset = build_dataset(make_data_cfg(tmp_path, "CSV", num_shots=2, opts={"DATASET.CSV": "labels.csv"}))
    assert (len(dataset.train_x), len(dataset.val), len(dataset.test)) == (4, 4, 6)
    assert (tmp_path / "labels_cache" / "split.json").is_file()
    assert (tmp_path / "labels_cache" / "split_fewshot" / "shot_2-seed_1.json").is_file()
    other = build_dataset(make_data_cfg(tmp_path, "CSV", num_shots=2, opts={"DATASET.CSV": "other.csv"}))
    assert other.classnames == ["golden retriever", "owl"]  # its own caches: no subset of labels.csv is reused
    assert (tmp_path / "other_cache" / "split_fewshot" / "shot_2-seed_1.json").is_file()


def test_csv_labels_order_numerically_and_name_classes(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i, (label, name, split) in enumerate([(10, "zebra", "train"), (2, "ant", "train"), (10, "zebra", "test"),
                                              (2, "ant", "test"), (7, "yak", "train")]):
        write_image(str(tmp_path / "img" / f"{i}.jpg"), rng)
        rows.append(f"img/{i}.jpg,{label},{name},{split}")
    (tmp_path / "labels.csv").write_text("path,label,classname,split\n" + "\n".join(rows) + "\n")
    dataset = build_dataset(csv_cfg(tmp_path))
    assert dataset.classnames == ["ant", "yak", "zebra"]  # labels 2 < 7 < 10, not "10" < "2" < "7"
    assert keys(dataset.test, tmp_path) == [("img/2.jpg", 2, "zebra"), ("img/3.jpg", 0, "ant")]


@pytest.mark.parametrize("text, message", [
    ("file,label\na.jpg,cat\n", r"labels.csv line 1: expected a header with path and label or classname"),
    ("path,label\na.jpg,cat\nb.jpg\n", r"labels.csv line 3: expected 2 fields \(path,label\), got 1"),
    ("path,classname\na.jpg,cat\nb.jpg,\n", r"labels.csv line 3: empty classname"),
    ("path,label,split\na.jpg,cat,train\nb.jpg,dog,holdout\n", r"labels.csv line 3: split 'holdout'; expected train"),
    ("path,label\n\na.jpg,cat\n../b.jpg,dog\n", r"labels.csv line 4: path '../b.jpg' is outside .* \(paths are "
                                                r"relative to the CSV file's folder"),
    ("path,label,classname\na.jpg,1,cat\nb.jpg,1,dog\n", r"labels.csv line 3: label 1 is named 'dog' here but 'cat' "
                                                          r"on line 2"),
    ("path,label\na.jpg,cat\nb.jpg,dog\n./a.jpg,dog\n", r"labels.csv line 4: path './a.jpg' is listed again \(first on "
                                                        r"line 2\)"),
    ("path,label\na.jpg,cat\nmissing.jpg,dog\n", r"image not found: .*missing.jpg \(listed in .*labels.csv line 3\)"),
])
def test_bad_csv_rows_name_the_line(tmp_path, text, message):
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.jpg"):
        write_image(str(tmp_path / name), rng)
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        build_dataset(csv_cfg(tmp_path))


def test_non_utf8_csv_and_missing_file(tmp_path, capsys):
    (tmp_path / "labels.csv").write_bytes(b"path,label\na.jpg,cat\nb.jpg,caf\xe9\n")
    with pytest.raises(ValueError, match=r"labels.csv line 3: not UTF-8 text .*save the file as UTF-8"):
        build_dataset(csv_cfg(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"DATASET.CSV: file not found: .*nope.csv; expected a CSV file with "
                                                r"the columns path,label"):
        build_dataset(csv_cfg(tmp_path, "nope.csv"))


def test_check_data_lists_own_images_without_writing(tmp_path, capsys):
    root = tmp_path / "photos"
    make_dataset(root, "ImageFolder", n_classes=3, n_train=5, n_val=2, n_test=3, with_split=False)
    assert check_data(["image_folder", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"ImageFolder ({root}): ok - 3 classes; train 15, val 6, test 9 images" in out
    assert "the first run splits the images 50/20/30 per class (fixed seed)" in out
    assert sorted(os.listdir(root)) == ["barn_owl", "golden_retriever", "red_fox"]
    make_dataset(tmp_path / "listed", "CSV", n_classes=2, n_train=2, n_val=1, n_test=1)
    os.remove(tmp_path / "listed" / "images" / "barn_owl_0.jpg")
    os.rename(tmp_path / "listed" / "labels.csv", tmp_path / "listed" / "mine.csv")
    assert check_data(["csv", "--root", str(tmp_path / "listed"), "--csv", "mine.csv"]) == 1
    out = capsys.readouterr().out
    assert f"CSV ({tmp_path / 'listed' / 'mine.csv'}): NOT USABLE" in out and "missing 1 listed image(s)" in out
    assert check_data(["--root", str(root)]) == 1  # one's own images are only checked when named
    assert "no dataset folder found" in capsys.readouterr().out


# ---- templates and transfer to one's own classes ----------------------------------------------------------


def test_template_defaults_and_override(tmp_path, tiny_clip_path):
    from dpt.engine.build import build_trainer

    root = tmp_path / "photos"
    make_dataset(root, "ImageFolder", n_classes=2, n_train=2, n_val=1, n_test=1)
    make_dataset(tmp_path, "EuroSAT", n_classes=2, n_train=2, n_val=1, n_test=1)

    def trainer(dataset, data_root, *opts):
        argv = ["--root", str(data_root), "--trainer", "ZeroshotCLIP", "--output-dir", str(tmp_path / "o"),
                "--dataset-config-file", str(REPO / f"configs/datasets/{dataset}.yaml"),
                "--config-file", str(REPO / "configs/trainers/CoOp/vit_b32.yaml"),
                "MODEL.BACKBONE.NAME", str(tiny_clip_path), "INPUT.SIZE", "(32, 32)", "TRAINER.COOP.PREC", "fp32",
                "DATALOADER.NUM_WORKERS", "0", *opts]
        return build_trainer(setup_cfg(build_parser().parse_args(argv)))

    assert trainer("image_folder", root).template() == "a photo of a {}."
    default = trainer("eurosat", tmp_path)
    assert default.template() == "a centered satellite photo of {}."
    custom = trainer("eurosat", tmp_path, "DATASET.TEMPLATE", "a satellite image of {}, from space.")
    assert custom.template() == "a satellite image of {}, from space."
    tokens = clip.tokenize([f"a satellite image of {name}, from space." for name in custom.classnames])
    with torch.no_grad():
        expected = F.normalize(custom.model.text_encoder.encode_text_tokens(tokens), dim=-1)
    torch.testing.assert_close(custom.model.zs_text_features, expected)
    assert not torch.allclose(custom.model.zs_text_features, default.model.zs_text_features)
    for bad in ("a photo", "{} and {}"):
        with pytest.raises(ValueError, match=r"config key 'DATASET.TEMPLATE': expected one '\{\}' where the class "
                                             r"name goes, got"):
            setup_cfg(build_parser().parse_args(["DATASET.TEMPLATE", bad]))


def test_model_trained_on_a_dataset_evaluates_on_a_folder_with_another_class_count(tmp_path, tiny_clip_path):
    make_dataset(tmp_path / "data", "EuroSAT", n_classes=5, n_train=4, n_val=1, n_test=1, learnable=True)
    photos = tmp_path / "photos"
    make_dataset(photos, "ImageFolder", n_classes=3, n_train=2, n_val=1, n_test=2, learnable=True, with_split=False)
    common = ["MODEL.BACKBONE.NAME", str(tiny_clip_path), "INPUT.SIZE", "(32, 32)", "TRAINER.COOP.PREC", "fp32",
              "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1", "DATASET.NUM_SHOTS", "4"]
    run = tmp_path / "run"
    assert main(["--root", str(tmp_path / "data"), "--output-dir", str(run), "--seed", "1", "--trainer", "DPT",
                 "--dataset-config-file", str(REPO / "configs/datasets/eurosat.yaml"),
                 "--config-file", str(REPO / "configs/trainers/DPT/vit_b32.yaml"), *common]) == 0
    ev = tmp_path / "ev"
    assert main(["--root", str(photos), "--output-dir", str(ev), "--seed", "1",
                 "--config-file", str(run / "config.yaml"), "--eval-only", "--model-dir", str(run), "--load-epoch", "1",
                 "DATASET.NAME", "ImageFolder", "DATASET.NUM_SHOTS", "-1"]) == 0
    log = (ev / "log.txt").read_text()
    assert "Dataset    ImageFolder" in log and "# classes  3" in log and "# test     6" in log
    assert "capped at the number of classes 3" in log and "* accuracy:" in log
