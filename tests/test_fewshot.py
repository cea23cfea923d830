"""Few-shot subsets against an independent re-statement of Dassl's sampler, and the JSON cache."""
import hashlib
import json
import os
import pickle
import random
import time

import pytest

from dpt.cache.atomic import CLAIM_TIMEOUT_S, replace_json_once
from dpt.data import build_dataset, generate_fewshot_dataset
from dpt.data.datum import Datum
from dpt.data.fewshot import SAMPLER_VERSION
from dpt.demo.synthetic import make_dataset
from helpers import make_data_cfg, reference_fewshot


def json_split(info, split):
    return [(os.path.join(info["image_dir"], rel), label, cname) for rel, label, cname in info[split]]


def keys(items):
    return [(d.impath, d.label, d.classname) for d in items]


@pytest.fixture
def pets(tmp_path):
    """5 classes; 12 train / 6 val images per class in a class-interleaved JSON order."""
    info = make_dataset(tmp_path, "OxfordPets", n_classes=5, n_train=12, n_val=6, n_test=2, seed=3)
    return tmp_path, info


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("shots", [1, 2, 4, 8])
def test_subset_matches_reference_sampler(pets, seed, shots):
    root, info = pets
    random.seed(seed)
    dataset = build_dataset(make_data_cfg(root, "OxfordPets", num_shots=shots, seed=seed))
    random.seed(seed)
    expected_train = reference_fewshot(json_split(info, "train"), shots)
    expected_val = reference_fewshot(json_split(info, "val"), min(shots, 4))
    assert keys(dataset.train_x) == expected_train
    assert keys(dataset.val) == expected_val
    assert len(dataset.train_x) == 5 * shots
    assert len(dataset.val) == 5 * min(shots, 4)
    assert len(dataset.test) == 10  # test is never sampled


def test_labels_visited_in_first_appearance_order(pets):
    root, info = pets
    first_seen = list(dict.fromkeys(label for _, label, _ in info["train"]))
    assert first_seen != sorted(first_seen), "fixture should interleave classes out of label order"
    random.seed(5)
    dataset = build_dataset(make_data_cfg(root, "OxfordPets", num_shots=2, seed=5))
    assert [d.label for d in dataset.train_x][::2] == first_seen


def test_fewer_images_than_shots_warns_and_takes_all(pets):
    root, info = pets
    random.seed(1)
    with pytest.warns(UserWarning, match="fewer than 16 shots; taking all"):
        dataset = build_dataset(make_data_cfg(root, "OxfordPets", num_shots=16, seed=1))
    assert sorted(keys(dataset.train_x)) == sorted(json_split(info, "train"))
    random.seed(1)
    assert keys(dataset.train_x) == reference_fewshot(json_split(info, "train"), 16)
    assert len(dataset.val) == 5 * 4


def test_generate_fewshot_without_shots_returns_all(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x")
    items = [Datum(str(path), i % 2) for i in range(5)]
    assert generate_fewshot_dataset(items, 0) == items
    assert generate_fewshot_dataset(items, -1) == items


def test_cache_round_trip_atomic_and_reused(pets, capsys):
    root, info = pets
    cfg = make_data_cfg(root, "OxfordPets", num_shots=4, seed=7)
    random.seed(7)
    first = build_dataset(cfg)
    cache = os.path.join(info["dataset_dir"], "split_fewshot", "shot_4-seed_7.json")
    assert f"Saving preprocessed few-shot data to {cache}" in capsys.readouterr().out
    assert sorted(os.listdir(os.path.dirname(cache))) == ["shot_4-seed_7.json"]  # no temporary file left
    with open(cache) as f:
        data = json.load(f)
    assert set(data) == {"train", "val", "source"}
    full_train = "".join(f"{r}\t{y}\t{c}\n" for r, y, c in info["train"])  # the list it was sampled from
    assert data["source"] == {"sampler": SAMPLER_VERSION, "shots": 4, "seed": 7,
                              "train_sha256": hashlib.sha256(full_train.encode()).hexdigest(),
                              "val_sha256": data["source"]["val_sha256"]}
    image_dir = info["image_dir"]
    assert [(os.path.join(image_dir, r), y, c) for r, y, c in data["train"]] == keys(first.train_x)
    assert [(os.path.join(image_dir, r), y, c) for r, y, c in data["val"]] == keys(first.val)
    assert all(not os.path.isabs(r) for r, _, _ in data["train"])

    inode = os.stat(cache).st_ino
    random.seed(12345)  # a different RNG state must not matter once the cache exists
    second = build_dataset(cfg)
    assert f"Loading preprocessed few-shot data from {cache}" in capsys.readouterr().out
    assert os.stat(cache).st_ino == inode  # read, not rewritten
    assert keys(second.train_x) == keys(first.train_x)
    assert keys(second.val) == keys(first.val)


def test_cache_survives_moving_the_data_folder(pets):
    root, info = pets
    random.seed(2)
    before = build_dataset(make_data_cfg(root, "OxfordPets", num_shots=2, seed=2))
    moved = root.parent / "moved"
    os.rename(root, moved)
    random.seed(99)
    after = build_dataset(make_data_cfg(moved, "OxfordPets", num_shots=2, seed=2))
    assert [d.impath.replace(str(moved), str(root)) for d in after.train_x] == [d.impath for d in before.train_x]


class _Explodes:
    """Unpickling this creates a marker file; the reader must never unpickle Dassl caches."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_dassl_pickle_cache_is_ignored(pets, tmp_path, capsys):
    root, info = pets
    marker = tmp_path / "unpickled"
    pkl = os.path.join(info["dataset_dir"], "split_fewshot", "shot_2-seed_1.pkl")
    os.makedirs(os.path.dirname(pkl))
    with open(pkl, "wb") as f:
        pickle.dump({"train": _Explodes(str(marker))}, f)
    random.seed(1)
    dataset = build_dataset(make_data_cfg(root, "OxfordPets", num_shots=2, seed=1))
    assert not marker.exists()
    assert f"ignoring Dassl pickle cache {pkl}" in capsys.readouterr().out
    random.seed(1)
    assert keys(dataset.train_x) == reference_fewshot(json_split(info, "train"), 2)


def _write_split(info, split):
    path = os.path.join(info["dataset_dir"], "split_zhou_OxfordPets.json")
    with open(path, "w") as f:
        json.dump(split, f)


def test_changed_class_name_resamples_and_replaces_the_cache(pets, capsys):
    """A class renamed in the split file after a run: the next run must not use the old names."""
    root, info = pets
    cfg = make_data_cfg(root, "OxfordPets", num_shots=2, seed=1)
    random.seed(1)
    build_dataset(cfg)
    cache = os.path.join(info["dataset_dir"], "split_fewshot", "shot_2-seed_1.json")
    old = json.loads(open(cache).read())
    split = {k: [list(e) for e in info[k]] for k in ("train", "val", "test")}
    renamed = split["train"][0][2]
    for entries in split.values():
        for entry in entries:
            if entry[2] == renamed:
                entry[2] = "great pyrenees"
    _write_split(info, split)
    capsys.readouterr()
    random.seed(1)
    dataset = build_dataset(cfg)
    out = capsys.readouterr().out
    assert (f"Note: few-shot cache {cache} was sampled from another train list (an image, label or class name "
            f"changed); resampling and replacing it") in out
    assert "great pyrenees" in dataset.classnames and renamed not in dataset.classnames
    random.seed(1)
    expected = reference_fewshot([(os.path.join(info["image_dir"], r), y, c) for r, y, c in split["train"]], 2)
    assert keys(dataset.train_x) == expected
    new = json.loads(open(cache).read())
    assert new["source"]["train_sha256"] != old["source"]["train_sha256"]
    assert [e[2] for e in new["train"]].count("great pyrenees") == 2
    assert sorted(os.listdir(os.path.dirname(cache))) == ["shot_2-seed_1.json"]  # no claim or temporary left


@pytest.mark.parametrize("content,reason", [
    ('{"train": [["Abyssinian_1.jpg", 0', "is unreadable (Expecting"),
    (json.dumps({"train": []}), "lacks the keys train, val"),
    (None, "records no source (an older version wrote it)"),
    ("other seed", "was sampled with seed 2, not 1"),
])
def test_unusable_caches_are_resampled_with_a_note(pets, capsys, content, reason):
    root, info = pets
    cache = os.path.join(info["dataset_dir"], "split_fewshot", "shot_1-seed_1.json")
    if content is None:  # the layout before caches recorded their source
        random.seed(1)
        build_dataset(make_data_cfg(root, "OxfordPets", num_shots=1, seed=1))
        data = json.loads(open(cache).read())
        content = json.dumps({"train": data["train"], "val": data["val"]})
    elif content == "other seed":  # a cache copied under another name
        random.seed(2)
        build_dataset(make_data_cfg(root, "OxfordPets", num_shots=1, seed=2))
        content = open(cache.replace("seed_1", "seed_2")).read()
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    with open(cache, "w") as f:
        f.write(content)
    capsys.readouterr()
    random.seed(1)
    dataset = build_dataset(make_data_cfg(root, "OxfordPets", num_shots=1, seed=1))
    assert f"Note: few-shot cache {cache} {reason}" in capsys.readouterr().out
    random.seed(1)
    assert keys(dataset.train_x) == reference_fewshot(json_split(info, "train"), 1)
    assert json.loads(open(cache).read())["source"]["seed"] == 1


def test_cache_listing_missing_image_names_it(pets):
    root, info = pets
    random.seed(1)
    build_dataset(make_data_cfg(root, "OxfordPets", num_shots=1, seed=1))
    cache = os.path.join(info["dataset_dir"], "split_fewshot", "shot_1-seed_1.json")
    data = json.loads(open(cache).read())
    data["train"][0] = ["gone_1.jpg", 0, "gone"]  # its source record still matches the split
    with open(cache, "w") as f:
        json.dump(data, f)
    missing = os.path.join(info["image_dir"], "gone_1.jpg")
    with pytest.raises(FileNotFoundError, match=f"image not found: {missing} .*{cache} \\[train\\] of dataset OxfordPets"):
        build_dataset(make_data_cfg(root, "OxfordPets", num_shots=1, seed=1))


def test_replace_json_once_lets_one_run_replace_a_stale_file(tmp_path):
    path = tmp_path / "shot_1-seed_1.json"
    path.write_text('{"stale": 1}')
    stale = os.stat(path)
    claim = tmp_path / f".shot_1-seed_1.json.replacing-{stale.st_ino}"
    os.link(path, claim)  # another run holds the claim
    assert not replace_json_once({"mine": 1}, str(path), stale)
    assert json.loads(path.read_text()) == {"stale": 1} and claim.exists()
    os.remove(claim)  # that run finished without replacing it
    assert replace_json_once({"mine": 1}, str(path), stale)
    assert json.loads(path.read_text()) == {"mine": 1}
    assert not replace_json_once({"late": 1}, str(path), stale)  # replaced since this run read it
    assert json.loads(path.read_text()) == {"mine": 1}
    assert sorted(os.listdir(tmp_path)) == ["shot_1-seed_1.json"]


def test_a_killed_runs_claim_is_taken_over(tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    path.write_text("{}")
    stale = os.stat(path)
    os.link(path, tmp_path / f".c.json.replacing-{stale.st_ino}")
    assert not replace_json_once({"a": 1}, str(path), stale)  # fresh claim: someone is writing
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + CLAIM_TIMEOUT_S + 1)
    assert not replace_json_once({"a": 1}, str(path), stale)  # abandoned: removed ...
    assert replace_json_once({"a": 1}, str(path), stale)  # ... so the next call replaces the file
    assert json.loads(path.read_text()) == {"a": 1} and os.listdir(tmp_path) == ["c.json"]


def test_imagenet_samples_train_only_and_keeps_full_val(tmp_path):
    info = make_dataset(tmp_path, "ImageNet", n_classes=3, n_train=5, n_test=4)
    random.seed(3)
    dataset = build_dataset(make_data_cfg(tmp_path, "ImageNet", num_shots=2, seed=3))
    with open(os.path.join(info["dataset_dir"], "split_fewshot", "shot_2-seed_3.json")) as f:
        data = json.load(f)
        assert set(data) == {"train", "source"} and data["source"]["val_sha256"] is None
    train_dir = os.path.join(info["image_dir"], "train")
    full_train = [
        (os.path.join(train_dir, w, f"{w}_{k + 1}.JPEG"), y, c)
        for y, (w, c) in enumerate(zip(info["wnids"], info["classnames"]))
        for k in sorted(range(5), key=lambda k: f"{w}_{k + 1}.JPEG")
    ]
    random.seed(3)
    assert keys(dataset.train_x) == reference_fewshot(full_train, 2)
    assert len(dataset.val) == len(dataset.test) == 12
    assert keys(dataset.val) == keys(dataset.test)


def test_no_shots_touches_no_cache(pets):
    root, info = pets
    dataset = build_dataset(make_data_cfg(root, "OxfordPets", num_shots=-1))
    assert len(dataset.train_x) == 60
    assert not os.path.exists(os.path.join(info["dataset_dir"], "split_fewshot"))
