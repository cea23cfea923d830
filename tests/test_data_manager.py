"""DataManager: loaders, batch dicts, iterations per epoch, summary table and image errors."""
import os
import pickle
import random
import time

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import RandomSampler, SequentialSampler

from dpt.data import DataManager, build_data_loader, build_transform, read_image
from dpt.data.transforms import split_at_to_tensor
from dpt.demo.synthetic import make_dataset
from helpers import make_data_cfg


@pytest.fixture(scope="module")
def eurosat_10_classes(tmp_path_factory):
    """10 classes x 16 train images: 1 / 4 / 16 shots give 10 / 40 / 160 training images."""
    root = tmp_path_factory.mktemp("eurosat")
    make_dataset(root, "EuroSAT", n_classes=10, n_train=16, n_val=4, n_test=2, size=(16, 16))
    return root


@pytest.mark.parametrize("shots, n_train, iters", [(1, 10, 1), (4, 40, 1), (16, 160, 5)])
def test_iterations_per_epoch(eurosat_10_classes, shots, n_train, iters):
    random.seed(1)
    dm = DataManager(make_data_cfg(eurosat_10_classes, "EuroSAT", num_shots=shots, opts={"VERBOSE": False}))
    assert len(dm.dataset.train_x) == n_train
    assert len(dm.train_loader_x) == iters
    assert dm.train_loader_x.drop_last == (n_train >= 32)
    assert isinstance(dm.train_loader_x.sampler, RandomSampler)
    assert isinstance(dm.test_loader.sampler, SequentialSampler)
    assert len(dm.test_loader) == 1 and dm.test_loader.drop_last is False  # 20 test images, batch 32
    assert len(dm.val_loader.dataset) == 10 * min(shots, 4)


def test_batch_dict(eurosat_10_classes):
    random.seed(1)
    cfg = make_data_cfg(eurosat_10_classes, "EuroSAT", num_shots=4, size=(24, 24), opts={"VERBOSE": False})
    dm = DataManager(cfg)
    batch = next(iter(dm.train_loader_x))
    assert set(batch) == {"img", "label", "domain", "impath", "index"}
    assert batch["img"].shape == (32, 3, 24, 24) and batch["img"].dtype == torch.float32
    for key in ("label", "domain", "index"):
        assert batch[key].dtype == torch.int64 and batch[key].shape == (32,)
    assert batch["domain"].eq(0).all()
    items = dm.dataset.train_x
    assert [items[i].impath for i in batch["index"]] == list(batch["impath"])
    assert [items[i].label for i in batch["index"]] == batch["label"].tolist()
    test_batch = next(iter(dm.test_loader))
    assert test_batch["index"].tolist() == list(range(20))  # sequential
    assert dm.num_classes == 10 and dm.classnames[0] == "Annual Crop Land" and dm.lab2cname[9] == "Sea or Lake"


def test_k_transforms_and_img0(eurosat_10_classes):
    cfg = make_data_cfg(eurosat_10_classes, "EuroSAT", num_shots=1, size=(16, 16),
                        opts={"VERBOSE": False, "DATALOADER.K_TRANSFORMS": 2, "DATALOADER.RETURN_IMG0": True})
    random.seed(1)
    dm = DataManager(cfg)
    sample = dm.train_loader_x.dataset[0]
    assert isinstance(sample["img"], list) and len(sample["img"]) == 2
    assert all(v.shape == (3, 16, 16) for v in sample["img"])
    # img0: resized to INPUT.SIZE (the synthetic images are 16 x 16 already), to tensor, normalised.
    pixels = torch.from_numpy(np.asarray(read_image(sample["impath"]), dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean, std = torch.tensor(cfg.INPUT.PIXEL_MEAN).view(3, 1, 1), torch.tensor(cfg.INPUT.PIXEL_STD).view(3, 1, 1)
    torch.testing.assert_close(sample["img0"], (pixels - mean) / std, atol=1e-5, rtol=0)
    test_sample = dm.test_loader.dataset[0]
    assert torch.is_tensor(test_sample["img"])  # K views only for training


def test_summary_table(eurosat_10_classes, capsys):
    random.seed(1)
    DataManager(make_data_cfg(eurosat_10_classes, "EuroSAT", num_shots=2))
    out = capsys.readouterr().out
    assert "Loading dataset: EuroSAT" in out
    lines = out.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("Dataset")))
    rows = [line.split(None, 1) if not line.startswith("#") else line.rsplit(None, 1) for line in lines[start : start + 5]]
    assert rows == [["Dataset", "EuroSAT"], ["# classes", "10"], ["# train_x", "20"], ["# val", "20"], ["# test", "20"]]


def test_variant_has_no_val_loader(tmp_path):
    make_dataset(tmp_path, "ImageNetSketch", n_classes=2, n_test=3)
    dm = DataManager(make_data_cfg(tmp_path, "ImageNetSketch", opts={"VERBOSE": False}))
    assert dm.val_loader is None
    assert len(dm.train_loader_x.dataset) == len(dm.test_loader.dataset) == 6


def test_workers_are_persistent(eurosat_10_classes):
    random.seed(1)
    cfg = make_data_cfg(eurosat_10_classes, "EuroSAT", num_shots=1, opts={"VERBOSE": False, "DATALOADER.NUM_WORKERS": 1})
    dm = DataManager(cfg)
    assert dm.train_loader_x.num_workers == 1 and dm.train_loader_x.persistent_workers is True
    assert dm.train_loader_x.pin_memory is False  # no CUDA here


def test_corrupt_image_names_the_file(tmp_path):
    info = make_dataset(tmp_path, "DescribableTextures", n_classes=2, n_train=1, n_val=1, n_test=1)
    bad = os.path.join(info["image_dir"], info["test"][0][0])
    with open(bad, "wb") as f:
        f.write(b"not a jpeg")
    dm = DataManager(make_data_cfg(tmp_path, "DescribableTextures", opts={"VERBOSE": False}))
    with pytest.raises(OSError, match=f"cannot read image {bad}: cannot identify image file"):
        next(iter(dm.test_loader))


def test_truncated_image_names_the_file(tmp_path):
    path = tmp_path / "cut.jpg"
    make_dataset(tmp_path, "DescribableTextures", n_classes=2, n_train=1, n_val=1, n_test=1)
    src = next((tmp_path / "dtd" / "images" / "banded").iterdir())
    path.write_bytes(src.read_bytes()[:200])
    with pytest.raises(OSError, match=f"cannot read image {path}: .*[Tt]runcated"):
        read_image(str(path))


def test_empty_split_loader_error(tmp_path):
    cfg = make_data_cfg(tmp_path, "EuroSAT")
    with pytest.raises(ValueError, match="dataset EuroSAT val: the split is empty"):
        build_data_loader(cfg, "SequentialSampler", [], 4, None, False, "dataset EuroSAT val")


def test_unknown_sampler(eurosat_10_classes):
    random.seed(1)
    opts = {"VERBOSE": False, "DATALOADER.TRAIN_X.SAMPLER": "RandomDomainSampler"}
    cfg = make_data_cfg(eurosat_10_classes, "EuroSAT", num_shots=1, opts=opts)
    with pytest.raises(ValueError, match="sampler 'RandomDomainSampler' is not supported; valid: RandomSampler, SequentialSampler"):
        DataManager(cfg)


# ---- fast paths: preloaded training images and the on-disk test cache ------------------------

def batches(loader, seed):
    random.seed(seed)
    torch.manual_seed(seed)
    return list(loader)


def fast_cfg(root, name="EuroSAT", shots=2, **keys):
    cfg = make_data_cfg(root, name, num_shots=shots, size=(12, 12), opts={"VERBOSE": False})
    for key, value in keys.items():
        setattr(cfg.DATALOADER, key, value)
    return cfg


def test_preloaded_training_images_give_identical_batches(eurosat_10_classes, monkeypatch, capsys):
    random.seed(1)
    plain = DataManager(fast_cfg(eurosat_10_classes))
    random.seed(1)
    fast = DataManager(fast_cfg(eurosat_10_classes, PRELOAD_TRAIN=True))
    assert "Preloading 20 training images" in capsys.readouterr().out
    for seed in (0, 1):
        want = batches(plain.train_loader_x, seed)
        with monkeypatch.context() as patch:  # the preloaded path must not open any file
            patch.setattr("dpt.data.data_manager.read_image", lambda path: pytest.fail(f"read {path} again"))
            got = batches(fast.train_loader_x, seed)
        assert len(got) == len(want) == 1
        for w, g in zip(want, got):
            assert torch.equal(w["img"], g["img"]) and w["impath"] == g["impath"]


def test_preload_respects_the_memory_budget(eurosat_10_classes, capsys):
    random.seed(1)
    dm = DataManager(fast_cfg(eurosat_10_classes, PRELOAD_TRAIN=True, PRELOAD_MAX_GB=1e-6))
    assert "Note: not preloading 20 training images" in capsys.readouterr().out
    assert dm.train_loader_x.dataset.images is None


def test_test_cache_gives_identical_tensors_and_is_reused(tmp_path, capsys):
    make_dataset(tmp_path, "DescribableTextures", n_classes=3, n_train=2, n_val=2, n_test=3)
    cache_dir = tmp_path / "cache"
    plain = DataManager(fast_cfg(tmp_path, "DescribableTextures", shots=-1))
    fast = DataManager(fast_cfg(tmp_path, "DescribableTextures", shots=-1, CACHE_TEST=True, CACHE_DIR=str(cache_dir)))
    assert "Building test image cache" in capsys.readouterr().out
    files = sorted(os.listdir(cache_dir))
    assert len(files) == 2 and all(f.startswith("DescribableTextures_") and f.endswith(".npy") for f in files)
    for loader_name in ("test_loader", "val_loader"):
        want, got = list(getattr(plain, loader_name)), list(getattr(fast, loader_name))
        for w, g in zip(want, got):
            assert torch.equal(w["img"], g["img"]) and w["impath"] == g["impath"]
            assert torch.equal(w["label"], g["label"])
    inodes = {f: os.stat(cache_dir / f).st_ino for f in files}
    for f in files:  # made two days ago
        os.utime(cache_dir / f, (time.time() - 2 * 86400,) * 2)
    DataManager(fast_cfg(tmp_path, "DescribableTextures", shots=-1, CACHE_TEST=True, CACHE_DIR=str(cache_dir)))
    assert "Loading test image cache from" in capsys.readouterr().out
    assert {f: os.stat(cache_dir / f).st_ino for f in os.listdir(cache_dir)} == inodes  # reused, not rewritten
    assert all(time.time() - os.stat(cache_dir / f).st_mtime < 60 for f in files)  # marked as used now


def test_test_cache_follows_changed_images(tmp_path):
    info = make_dataset(tmp_path, "DescribableTextures", n_classes=2, n_train=1, n_val=1, n_test=2)
    cfg = fast_cfg(tmp_path, "DescribableTextures", shots=-1, CACHE_TEST=True, CACHE_DIR=str(tmp_path / "c"))
    before = DataManager(cfg).test_loader.dataset.images.path
    changed = os.path.join(info["image_dir"], info["test"][0][0])
    Image.new("RGB", (40, 32), (255, 0, 0)).save(changed)
    dm = DataManager(cfg)
    assert dm.test_loader.dataset.images.path != before
    index = [d.impath for d in dm.dataset.test].index(changed)
    red = dm.test_loader.dataset.images[index].reshape(-1, 3).mean(0)  # the new, (almost) pure red image
    assert red[0] > 250 and red[1] < 5 and red[2] < 5


def test_imagenet_val_and_test_share_one_cache_file(tmp_path):
    make_dataset(tmp_path, "ImageNet", n_classes=2, n_train=1, n_test=2)
    cache_dir = tmp_path / "c"
    dm = DataManager(fast_cfg(tmp_path, "ImageNet", shots=-1, CACHE_TEST=True, CACHE_DIR=str(cache_dir)))
    assert dm.val_loader.dataset.images.path == dm.test_loader.dataset.images.path
    assert len(os.listdir(cache_dir)) == 1


def test_test_cache_skipped_with_img0(tmp_path, capsys):
    make_dataset(tmp_path, "DescribableTextures", n_classes=2, n_train=1, n_val=1, n_test=1)
    cfg = fast_cfg(tmp_path, "DescribableTextures", shots=-1, CACHE_TEST=True, CACHE_DIR=str(tmp_path / "c"))
    cfg.DATALOADER.RETURN_IMG0 = True
    dm = DataManager(cfg)
    assert "CACHE_TEST ignored: DATALOADER.RETURN_IMG0 needs the original images" in capsys.readouterr().out
    assert dm.test_loader.dataset.images is None and not (tmp_path / "c").exists()


def _build_cache(args):
    items, cache_dir = args
    from dpt.data.image_cache import load_test_cache
    from dpt.data.transforms import build_transform, split_at_to_tensor

    prefix, _ = split_at_to_tensor(build_transform(fast_cfg("/unused"), is_train=False))
    return load_test_cache(items, prefix, cache_dir, "EuroSAT", "test").path


def test_concurrent_cache_writers(eurosat_10_classes, tmp_path):
    import multiprocessing

    random.seed(1)
    dm = DataManager(fast_cfg(eurosat_10_classes, shots=1))
    items, cache_dir = dm.dataset.test, str(tmp_path / "c")
    with multiprocessing.get_context("fork").Pool(3) as pool:
        paths = pool.map(_build_cache, [(items, cache_dir)] * 3)
    assert len(set(paths)) == 1 and os.listdir(cache_dir) == [os.path.basename(paths[0])]  # no temporary files
    cached = np.load(paths[0])
    prefix, _ = split_at_to_tensor(build_transform(fast_cfg(eurosat_10_classes), is_train=False))
    for i, item in enumerate(items):
        assert np.array_equal(cached[i], np.asarray(prefix(read_image(item.impath))))


def test_mapped_images_pickle_as_a_path(tmp_path):
    make_dataset(tmp_path, "DescribableTextures", n_classes=2, n_train=1, n_val=1, n_test=2)
    cfg = fast_cfg(tmp_path, "DescribableTextures", shots=-1, CACHE_TEST=True, CACHE_DIR=str(tmp_path / "c"))
    images = DataManager(cfg).test_loader.dataset.images
    blob = pickle.dumps(images)
    assert len(blob) < 1000
    clone = pickle.loads(blob)
    assert all(np.array_equal(clone[i], images[i]) for i in range(len(images)))


def test_building_the_test_cache_leaves_the_global_rng_alone(tmp_path):
    """A run that builds the cache must train exactly like one that finds it (same random numbers)."""
    make_dataset(tmp_path, "DescribableTextures", n_classes=3, n_train=2, n_val=2, n_test=3)
    cfg = fast_cfg(tmp_path, "DescribableTextures", shots=-1, CACHE_TEST=True, CACHE_DIR=str(tmp_path / "c"))
    torch.manual_seed(0)
    DataManager(cfg)  # builds the cache
    after_build = torch.rand(3)
    torch.manual_seed(0)
    DataManager(cfg)  # finds it
    assert torch.equal(after_build, torch.rand(3))
