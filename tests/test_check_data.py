"""dpt-check-data: layout, counts, missing/unreadable images and exit codes on synthetic dataset folders."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dpt.demo.synthetic import make_dataset
from dpt.tools.check_data import check_dataset, main, resolve_names


@pytest.fixture
def mixed_root(tmp_path: Path) -> Path:
    """EuroSAT (JSON split), FGVCAircraft (txt lists), ImageNetA (folders), DTD without its split JSON."""
    make_dataset(tmp_path, "EuroSAT", n_classes=3, n_train=4, n_val=2, n_test=3, seed=1)
    make_dataset(tmp_path, "FGVCAircraft", n_classes=2, seed=2)
    make_dataset(tmp_path, "ImageNetA", n_classes=2, n_test=2, seed=3)
    make_dataset(tmp_path, "DescribableTextures", n_classes=2, n_train=5, n_val=2, n_test=3, seed=4, with_split=False)
    return tmp_path


def test_all_present_folders_are_checked_and_counted(mixed_root, capsys):
    assert main(["--root", str(mixed_root)]) == 0
    out = capsys.readouterr().out
    assert "EuroSAT (" in out and "ok - 3 classes; train 12, val 6, test 9 images" in out
    assert "FGVCAircraft (" in out and "ok - 2 classes; train 12, val 4, test 6 images" in out
    assert "ImageNetA (" in out and "ok - 2 classes; test 4 images" in out
    assert "4 of 4 dataset(s) usable" in out
    # DTD without its JSON is usable through the fallback, with a note, and checking writes no split file
    assert "split_zhou_DescribableTextures.json is missing" in out
    assert not (mixed_root / "dtd" / "split_zhou_DescribableTextures.json").exists()
    assert not (mixed_root / "dtd" / "split_fewshot").exists()


def test_names_as_registry_names_yaml_stems_or_folders():
    assert resolve_names(["OxfordPets", "oxford_pets", "dtd", "caltech101", "imagenet_a", "fgvc_aircraft"]) == [
        "OxfordPets", "OxfordPets", "DescribableTextures", "Caltech101", "ImageNetA", "FGVCAircraft"]


def test_unknown_name_is_a_one_line_error_exit_2(mixed_root, capsys):
    assert main(["--root", str(mixed_root), "dtdd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown dataset 'dtdd'" in err[0] and "did you mean 'DescribableTextures'" in err[0]


def test_missing_root_exit_2(tmp_path, capsys):
    assert main(["--root", str(tmp_path / "nowhere")]) == 2
    assert "folder not found" in capsys.readouterr().err


def test_root_from_data_env(mixed_root, monkeypatch, capsys):
    monkeypatch.setenv("DATA", str(mixed_root))
    assert main(["eurosat"]) == 0
    assert f"EuroSAT ({mixed_root / 'eurosat'}): ok" in capsys.readouterr().out


def test_missing_and_unreadable_images_are_listed_with_counts(tmp_path, capsys):
    info = make_dataset(tmp_path, "EuroSAT", n_classes=3, n_train=4, n_val=2, n_test=3, seed=1)
    image_dir = Path(info["image_dir"])
    gone = [image_dir / e[0] for e in info["test"][:7]]
    for path in gone:
        path.unlink()
    broken = image_dir / info["train"][0][0]
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    assert main(["--root", str(tmp_path), "EuroSAT"]) == 1
    out = capsys.readouterr().out
    assert "EuroSAT (" in out and "NOT USABLE" in out
    assert "missing 7 listed image(s), first: " + ", ".join(str(p) for p in gone[:5]) in out
    assert str(gone[5]) not in out  # only the first few are listed
    assert f"unreadable 1 image(s), first: {broken} (" in out
    assert "http://madm.dfki.de/files/sentinel/EuroSAT.zip" in out and "split_zhou_EuroSAT.json" in out


def test_truncated_jpeg_needs_decode(tmp_path):
    info = make_dataset(tmp_path, "EuroSAT", n_classes=2, n_train=2, n_val=1, n_test=1, seed=1, size=(96, 96))
    path = Path(info["image_dir"]) / info["test"][0][0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert check_dataset(str(tmp_path), "EuroSAT").usable  # the header alone still opens
    report = check_dataset(str(tmp_path), "EuroSAT", decode=True)
    assert [p for p, _ in report.unreadable] == [str(path)] and "truncated" in report.unreadable[0][1]


def test_missing_split_without_fallback_files(tmp_path, capsys):
    info = make_dataset(tmp_path, "OxfordPets", n_classes=2, seed=1, with_split=False)
    for name in ("trainval.txt", "test.txt"):
        os.remove(Path(info["dataset_dir"]) / "annotations" / name)
    assert main(["--root", str(tmp_path), "oxford_pets"]) == 1
    out = capsys.readouterr().out
    assert "split file" in out and "split_zhou_OxfordPets.json not found" in out and "trainval.txt" in out
    assert "https://www.robots.ox.ac.uk/~vgg/data/pets/" in out


def test_missing_folder_and_empty_split(tmp_path, capsys):
    info = make_dataset(tmp_path, "EuroSAT", n_classes=2, seed=1)
    split_path = Path(info["dataset_dir"]) / "split_zhou_EuroSAT.json"
    split = json.loads(split_path.read_text())
    split["test"] = []
    split_path.write_text(json.dumps(split))
    assert main(["--root", str(tmp_path), "EuroSAT", "Food101"]) == 1
    out = capsys.readouterr().out
    assert "error: the test split is empty" in out
    assert "Food101 (no folder): NOT USABLE" in out and f"{tmp_path / 'food-101'}" in out
    assert "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/" in out
    assert "0 of 2 dataset(s) usable; not usable: EuroSAT, Food101" in out


def test_corrupt_split_json_names_the_file(tmp_path):
    info = make_dataset(tmp_path, "EuroSAT", n_classes=2, seed=1)
    split_path = Path(info["dataset_dir"]) / "split_zhou_EuroSAT.json"
    split_path.write_text(split_path.read_text()[:50])
    report = check_dataset(str(tmp_path), "EuroSAT")
    assert not report.usable and str(split_path) in report.error and "corrupt split file" in report.error


def test_empty_root_says_what_it_expected(tmp_path, capsys):
    assert main(["--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "no dataset folder found" in out and "oxford_pets" in out and "imagenet-rendition" in out
