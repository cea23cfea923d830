"""dpt-cache: lists the few-shot, test-image and selector caches (sizes, ages) and clears them safely."""
from __future__ import annotations

import os
import random
import time
from pathlib import Path

import torch

from dpt.data import DataManager, build_dataset
from dpt.demo.synthetic import make_dataset
from dpt.tools.cache import main
from helpers import make_data_cfg

DAY = 86400


def _age(path: Path, days: float) -> None:
    then = time.time() - days * DAY
    os.utime(path, (then, then))


def _setup(tmp_path: Path):
    """A EuroSAT folder whose runs left a few-shot cache, two test-image caches, a selector cache, temporaries."""
    root = tmp_path / "data"
    info = make_dataset(root, "EuroSAT", n_classes=2, n_train=3, n_val=2, n_test=2, seed=1)
    random.seed(1)
    DataManager(make_data_cfg(root, "EuroSAT", num_shots=2, seed=1, opts={"DATALOADER.CACHE_TEST": True}))
    dataset_dir = Path(info["dataset_dir"])
    images = sorted((dataset_dir / "image_cache").glob("EuroSAT_*.npy"))
    selector = dataset_dir / "image_cache" / f"selector_EuroSAT_test_{'a1' * 12}.pt"
    torch.save(torch.zeros(4, 8), selector)
    old_tmp = dataset_dir / "split_fewshot" / ".shot_2-seed_1.json.k3j_x9q2.tmp"  # a killed writer's, 2 days old
    young_tmp = dataset_dir / "image_cache" / f".{images[0].name}.ab12cd34.tmp"  # a writer at work
    old_tmp.write_text("{")
    young_tmp.write_bytes(b"\0" * 100)
    _age(old_tmp, 2)
    (dataset_dir / "split_fewshot" / "shot_2-seed_1.pkl").write_bytes(b"Dassl's")  # not ours: never listed
    (dataset_dir / "image_cache" / "README.txt").write_text("user notes")
    fewshot = dataset_dir / "split_fewshot" / "shot_2-seed_1.json"
    return root, fewshot, images, selector, old_tmp, young_tmp


def _rows(out: str):
    """(kind, path) of each table row."""
    return [(line.split()[0], line.split()[-1]) for line in out.splitlines()
            if line.split() and line.split()[0] in ("fewshot", "images", "selector", "temporary")]


def test_list_shows_every_cache_with_size_and_age(tmp_path, capsys):
    root, fewshot, images, selector, old_tmp, young_tmp = _setup(tmp_path)
    _age(images[0], 10)
    capsys.readouterr()
    assert main(["list", str(root)]) == 0
    out = capsys.readouterr().out
    assert sorted(_rows(out)) == sorted([("fewshot", str(fewshot)), ("images", str(images[0])),
                                         ("images", str(images[1])), ("selector", str(selector)),
                                         ("temporary", str(old_tmp)), ("temporary", str(young_tmp))])
    line = next(line for line in out.splitlines() if line.endswith(str(images[0])))
    assert line.split()[1] == "EuroSAT" and " 10.0 " in line  # unused for 10 days
    assert next(line for line in out.splitlines() if line.endswith(str(fewshot))).split()[1] == "EuroSAT"
    total = sum(os.path.getsize(p) for p in (fewshot, *images, selector, old_tmp, young_tmp))
    assert out.strip().splitlines()[-1].startswith("6 cache file(s), ")
    assert f"{total / 1000:.1f} KB" in out.strip().splitlines()[-1]
    assert main(["list", str(root), "--older-than", "5"]) == 0
    assert _rows(capsys.readouterr().out) == [("images", str(images[0]))]


def test_clear_removes_old_caches_and_spares_what_may_be_in_use(tmp_path, capsys):
    root, fewshot, images, selector, old_tmp, young_tmp = _setup(tmp_path)
    _age(images[0], 10)
    capsys.readouterr()
    assert main(["clear", str(root), "--older-than", "5", "--kind", "images"]) == 0
    assert "removed 1 cache file(s)" in capsys.readouterr().out
    assert not images[0].exists() and images[1].exists() and fewshot.exists()
    first = [d.impath for d in build_dataset(make_data_cfg(root, "EuroSAT", num_shots=2, seed=1)).train_x]
    assert main(["clear", str(root)]) == 0
    assert "removed 4 cache file(s)" in capsys.readouterr().out  # few-shot, image, selector, the old temporary
    assert not any(p.exists() for p in (fewshot, images[1], selector, old_tmp))
    assert young_tmp.exists()  # maybe a running job's file being written
    assert (fewshot.parent / "shot_2-seed_1.pkl").exists() and (images[1].parent / "README.txt").exists()
    random.seed(1)  # a cleared few-shot cache is drawn again: the same subset
    assert [d.impath for d in build_dataset(make_data_cfg(root, "EuroSAT", num_shots=2, seed=1)).train_x] == first


def test_cache_dir_is_scanned_too(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DATA", str(tmp_path / "no_data"))
    cache_dir = tmp_path / "fast_disk"
    cache_dir.mkdir()
    selector = cache_dir / f"selector_ImageNet_test_{'0' * 24}.pt"
    selector.write_bytes(b"\0" * 2500)
    assert main(["list", "--cache-dir", str(cache_dir)]) == 0  # $DATA absent: only the cache dir
    out = capsys.readouterr().out
    assert _rows(out) == [("selector", str(selector))] and "ImageNet" in out and "2.5 KB" in out


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["list", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nowhere'}: folder not found (pass ROOT, set " \
                                              f"$DATA, or use --cache-dir)"
    assert main(["clear", str(tmp_path), "--older-than", "-1"]) == 2
    assert "--older-than -1.0: expected a number of days >= 0" in capsys.readouterr().err
