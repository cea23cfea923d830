"""dpt-cache: lists the caches of the kind table (sizes, ages) and clears them safely; the table and atomic writes."""
from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

from dpt.cache.atomic import atomic_path, temporary_target, write_text_atomic
from dpt.cache.kinds import CACHE_KINDS, DATASET_FOLDER, kind_of
from dpt import train
from dpt.cache.in_use import holders, is_live, lock_caches, release_locks
from dpt.data import DataManager, build_dataset
from dpt.demo.synthetic import make_dataset
from dpt.tools.cache import main
from dpt.trainers.feature_cache import split_cache_path
from helpers import REPO, argv, make_data_cfg

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
    selector = dataset_dir / "image_cache" / f"selector_EuroSAT_test_{'a1' * 10}.pt"
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
            if line.split() and line.split()[0] in {kind.name for kind in CACHE_KINDS}]


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


def test_fallback_splits_are_listed_and_cleared_but_downloaded_ones_never(tmp_path, capsys):
    """A split the fallback saved carries its "source" record; CoOp's download (and a file we cannot read) do not."""
    root = tmp_path / "data"
    official = Path(make_dataset(root, "EuroSAT", n_classes=2, n_train=3, n_val=2, n_test=2)["dataset_dir"])
    official /= "split_zhou_EuroSAT.json"
    dtd = make_dataset(root, "DescribableTextures", n_classes=2, n_train=5, n_val=2, n_test=3, with_split=False)
    fallback = Path(dtd["dataset_dir"]) / "split_zhou_DescribableTextures.json"
    corrupt = Path(make_dataset(root, "OxfordPets", n_classes=2, n_train=3, n_val=2, n_test=2)["dataset_dir"])
    corrupt /= "split_zhou_OxfordPets.json"
    corrupt.write_text('{"train": [')
    lookalike = fallback.parent / ("notes_" + "0" * 20 + ".npy")  # a test-image cache's name, but in the data
    lookalike.write_bytes(b"user data")
    random.seed(3)
    first = build_dataset(make_data_cfg(root, "DescribableTextures", seed=3))  # the fallback saves the split
    official_text = official.read_text()
    assert fallback.is_file() and "source" in json.loads(fallback.read_text())
    capsys.readouterr()
    assert main(["list", str(root)]) == 0
    out = capsys.readouterr().out
    assert _rows(out) == [("fallback_split", str(fallback))]
    assert next(line for line in out.splitlines() if line.endswith(str(fallback))).split()[1] == "DescribableTextures"
    assert main(["clear", str(root), "--kind", "fewshot"]) == 0 and fallback.is_file()  # only the kinds asked for
    assert main(["clear", str(root)]) == 0
    assert "removed 1 cache file(s)" in capsys.readouterr().out
    assert not fallback.exists() and official.read_text() == official_text
    assert corrupt.read_text() == '{"train": [' and lookalike.read_bytes() == b"user data"
    random.seed(3)  # the next run builds it again; with the same RNG state, the same division
    again = build_dataset(make_data_cfg(root, "DescribableTextures", seed=3))
    assert fallback.is_file() and [d.impath for d in again.test] == [d.impath for d in first.test]
    assert [d.impath for d in build_dataset(make_data_cfg(root, "EuroSAT")).test] == [
        str(official.parent / "2750" / r) for r, _, _ in json.loads(official_text)["test"]]


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


def test_linear_probe_features_are_listed_and_cleared_by_kind(tmp_path, capsys):
    root, fewshot, images, selector, old_tmp, young_tmp = _setup(tmp_path)
    cfg = make_data_cfg(root, "EuroSAT", num_shots=2, seed=1)
    dataset = build_dataset(cfg)
    features = Path(split_cache_path(cfg, "clip_features", "test", "ViT-B/32", "fp32", "tfm", dataset.test,
                                     dataset.dataset_dir))  # the path the linear probe writes
    features.write_bytes(b"\0" * 300)
    capsys.readouterr()
    assert main(["list", str(root), "--kind", "clip_features"]) == 0
    out = capsys.readouterr().out
    assert _rows(out) == [("clip_features", str(features))] and "EuroSAT" in out
    assert main(["clear", str(root), "--kind", "clip_features"]) == 0
    assert "removed 1 cache file(s)" in capsys.readouterr().out
    assert not features.exists() and selector.exists() and fewshot.exists() and all(p.exists() for p in images)


def test_every_kind_recognises_the_names_it_writes():
    fields = {"shots": 16, "seed": -1, "dataset": "Food_101", "split": "val", "digest": "0a" * 10, "target": "x.pt",
              "random": "k3j_x9q2", "inode": 77}
    for kind in CACHE_KINDS:
        name = os.path.basename(kind.path("folder", **fields))
        assert kind_of(name, kind.folder) is kind, name
    assert kind_of("split_zhou_EuroSAT.json") is None  # a split file counts only in the dataset folder itself
    assert kind_of("EuroSAT_" + "0" * 20 + ".npy", DATASET_FOLDER) is None  # there, only the split row applies
    assert kind_of("selector_ImageNet_test_" + "f" * 24 + ".pt").name == "selector"  # named before digests were shared
    assert kind_of("shot_2-seed_1.pkl") is None and kind_of("EuroSAT_" + "0" * 19 + ".npy") is None


def test_atomic_writes_use_the_one_temporary_name_and_leave_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "config.yaml"
    assert write_text_atomic("a: 1\n", str(target)) == str(target) and target.read_text() == "a: 1\n"
    try:
        with atomic_path(str(target)) as tmp:
            assert temporary_target(os.path.basename(tmp)) == "config.yaml"
            assert kind_of(os.path.basename(tmp)).name == "temporary"
            Path(tmp).write_text("half")
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert os.listdir(target.parent) == ["config.yaml"] and target.read_text() == "a: 1\n"
def test_clear_skips_caches_a_live_run_holds_and_drops_stale_locks(tmp_path, capsys):
    root, fewshot, images, selector, old_tmp, young_tmp = _setup(tmp_path)
    other_cache = tmp_path / "fast_disk"  # a DATALOADER.CACHE_DIR nobody holds
    other_cache.mkdir()
    free = other_cache / f"selector_ImageNet_test_{'0' * 24}.pt"
    free.write_bytes(b"\0" * 10)
    dataset_dir = fewshot.parent.parent
    locks = lock_caches([str(dataset_dir)])  # this process plays the running job
    assert [Path(h.path) for h in holders(str(dataset_dir))] == [Path(p) for p in locks]
    capsys.readouterr()
    assert main(["clear", str(root), "--cache-dir", str(other_cache)]) == 0
    out = capsys.readouterr().out
    assert f"skipped {fewshot}: in use by pid {os.getpid()} on " in out
    assert out.strip().splitlines()[-1].startswith("removed 1 cache file(s), 10 B, skipped 5 in use by a live run")
    assert fewshot.exists() and selector.exists() and all(p.exists() for p in images) and not free.exists()
    release_locks(locks)
    assert holders(str(dataset_dir)) == []

    ended = subprocess.run([sys.executable, "-c", "from dpt.cache.in_use import lock_caches; import sys; "
                            "print(lock_caches([sys.argv[1]])[0])", str(dataset_dir)],  # exits holding it: killed
                           capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    stale = ended.stdout.strip()
    assert Path(stale).is_file() and not is_live(holders(str(dataset_dir))[0])
    assert main(["clear", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"removed the stale lock {stale} (its run has ended)" in out and not Path(stale).exists()
    assert not fewshot.exists() and not selector.exists()


def test_a_run_holds_its_dataset_folder_until_it_ends(tmp_path, tiny_clip_path, monkeypatch):
    root = tmp_path / "data"
    info = make_dataset(root, "EuroSAT", n_classes=2, n_train=3, n_val=2, n_test=2, seed=1)
    seen = []

    def build_trainer(cfg):
        seen.extend(holders(info["dataset_dir"]))
        raise ValueError("stop here")

    monkeypatch.setattr(train, "build_trainer", build_trainer)
    assert train.main(argv("CoOp", root, tmp_path / "run", tiny_clip_path)) == 2
    assert [(h.pid, h.host) for h in seen] == [(os.getpid(), socket.gethostname())]
    assert holders(info["dataset_dir"]) == []  # released when the run ended
