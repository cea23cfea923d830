"""DataManager: dataset -> transforms -> train/val/test loaders, as Dassl builds them (docs/reference.md 3)."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from tabulate import tabulate
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler
from yacs.config import CfgNode

from dpt.cache.kinds import image_cache_folder
from dpt.data.build import build_dataset
from dpt.data.datum import Datum
from dpt.data.image_cache import PackedImages, image_shapes, load_test_cache
from dpt.data.images import read_image
from dpt.data.transforms import build_transform, interpolation_mode, split_at_to_tensor

Transform = Callable[[Any], Any]

SAMPLERS = {"RandomSampler": RandomSampler, "SequentialSampler": SequentialSampler}


class DatasetWrapper(Dataset):
    """Datums -> sample dicts: ``img`` (transformed), ``label``, ``domain``, ``impath``, ``index``.

    With a list of transforms the outputs are ``img``, ``img2``, ...; with K_TRANSFORMS = K > 1
    (train only) each is a list of K augmented views; RETURN_IMG0 adds ``img0``, the image
    resized to INPUT.SIZE without augmentation. Images are [3, H, W] float32 after ToTensor.

    Args:
        images: decoded uint8 ``[H, W, 3]`` arrays aligned with ``data_source`` (preloaded or
            cached, see ``image_cache``), used instead of reading the files.
    """

    def __init__(
        self, cfg: CfgNode, data_source: Sequence[Datum],
        transform: Optional[Union[Transform, Sequence[Transform]]] = None, is_train: bool = False,
        images: Optional[Sequence[np.ndarray]] = None,
    ) -> None:
        self.data_source = data_source
        self.transform = transform
        self.images = images
        self.k_tfm = cfg.DATALOADER.K_TRANSFORMS if is_train else 1
        self.return_img0 = cfg.DATALOADER.RETURN_IMG0
        if self.k_tfm > 1 and transform is None:
            raise ValueError(f"DATALOADER.K_TRANSFORMS = {self.k_tfm} needs a transform, but INPUT.NO_TRANSFORM is set")
        to_tensor: List[Transform] = [
            T.Resize(tuple(cfg.INPUT.SIZE), interpolation=interpolation_mode(cfg)),
            T.ToTensor(),
        ]
        if "normalize" in cfg.INPUT.TRANSFORMS:
            to_tensor.append(T.Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD))
        self.to_tensor = T.Compose(to_tensor)

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, idx: int) -> Dict[str, Any]:
        item = self.data_source[idx]
        output: Dict[str, Any] = {"label": item.label, "domain": item.domain, "impath": item.impath, "index": idx}
        img0 = read_image(item.impath) if self.images is None else Image.fromarray(self.images[idx])
        if self.transform is None:
            output["img"] = img0
        elif isinstance(self.transform, (list, tuple)):
            for i, tfm in enumerate(self.transform):
                output["img" if i == 0 else f"img{i + 1}"] = self._views(tfm, img0)
        else:
            output["img"] = self._views(self.transform, img0)
        if self.return_img0:
            output["img0"] = self.to_tensor(img0)
        return output

    def _views(self, tfm: Transform, img0: Any) -> Any:
        views = [tfm(img0) for _ in range(self.k_tfm)]
        return views[0] if len(views) == 1 else views


def build_sampler(sampler_type: str, data_source: Sequence[Datum]) -> Sampler:
    """RandomSampler (torch default generator, no replacement) or SequentialSampler."""
    if sampler_type not in SAMPLERS:
        raise ValueError(f"DATALOADER sampler {sampler_type!r} is not supported; valid: {', '.join(SAMPLERS)}")
    return SAMPLERS[sampler_type](data_source)


def build_data_loader(
    cfg: CfgNode,
    sampler_type: str,
    data_source: Sequence[Datum],
    batch_size: int,
    tfm: Optional[Union[Transform, Sequence[Transform]]],
    is_train: bool,
    where: str,
    images: Optional[Sequence[np.ndarray]] = None,
) -> DataLoader:
    """A loader with Dassl's settings: ``drop_last = is_train and len >= batch_size`` (docs/reference.md 3).

    Args:
        where: "<dataset> <split>", named in the error for an empty split.
        images: decoded images replacing the file reads (see ``DatasetWrapper``).
    Config keys read: DATALOADER.NUM_WORKERS, K_TRANSFORMS, RETURN_IMG0, USE_CUDA, INPUT.*.
    """
    if not data_source:
        raise ValueError(f"{where}: the split is empty, cannot build a data loader")
    num_workers = cfg.DATALOADER.NUM_WORKERS
    loader = DataLoader(
        DatasetWrapper(cfg, data_source, transform=tfm, is_train=is_train, images=images),
        batch_size=batch_size,
        sampler=build_sampler(sampler_type, data_source),
        num_workers=num_workers,
        drop_last=is_train and len(data_source) >= batch_size,
        pin_memory=torch.cuda.is_available() and cfg.USE_CUDA,
        persistent_workers=num_workers > 0,
    )
    assert len(loader) > 0
    return loader


class DataManager:
    """Builds the dataset (DATASET.NAME), the transforms and the train_x / val / test loaders.

    Attributes: ``dataset``, ``train_loader_x``, ``val_loader`` (None without a val split),
    ``test_loader``, ``num_classes``, ``num_source_domains``, ``lab2cname``, ``classnames``.
    A batch is a dict: ``img`` [B, 3, H, W] float32, ``label`` / ``domain`` / ``index`` [B] int64,
    ``impath`` list of B str. Config keys read: DATASET.*, DATALOADER.*, INPUT.*, USE_CUDA, VERBOSE.

    Args:
        custom_tfm_train, custom_tfm_test: replace the transforms built from INPUT.TRANSFORMS.
    """

    def __init__(
        self, cfg: CfgNode,
        custom_tfm_train: Optional[Union[Transform, Sequence[Transform]]] = None,
        custom_tfm_test: Optional[Union[Transform, Sequence[Transform]]] = None,
    ) -> None:
        self.cfg = cfg
        self.dataset = build_dataset(cfg)
        if custom_tfm_train is None:
            tfm_train = build_transform(cfg, is_train=True)
        else:
            print("* Using custom transform for training")
            tfm_train = custom_tfm_train
        if custom_tfm_test is None:
            tfm_test = build_transform(cfg, is_train=False)
        else:
            print("* Using custom transform for testing")
            tfm_test = custom_tfm_test

        loader_cfg = cfg.DATALOADER
        self.train_loader_x = build_data_loader(
            cfg, loader_cfg.TRAIN_X.SAMPLER, self.dataset.train_x, loader_cfg.TRAIN_X.BATCH_SIZE,
            tfm_train, True, f"dataset {self.dataset.name} train_x", images=self._preload(self.dataset.train_x),
        )
        use_cache = self._use_test_cache(tfm_test, custom_tfm_test is not None)
        self.val_loader = self._eval_loader("val", tfm_test, use_cache) if self.dataset.val else None
        self.test_loader = self._eval_loader("test", tfm_test, use_cache)
        self.num_classes = self.dataset.num_classes
        self.num_source_domains = len(cfg.DATASET.SOURCE_DOMAINS)
        self.lab2cname = self.dataset.lab2cname
        self.classnames = self.dataset.classnames
        if cfg.VERBOSE:
            self.show_dataset_summary()

    def _preload(self, items: Sequence[Datum]) -> Optional[PackedImages]:
        """DATALOADER.PRELOAD_TRAIN: decode the training images once, if within DATALOADER.PRELOAD_MAX_GB."""
        loader_cfg = self.cfg.DATALOADER
        if not loader_cfg.PRELOAD_TRAIN:
            return None
        budget_gb = loader_cfg.PRELOAD_MAX_GB
        shapes = image_shapes(items, max_bytes=int(budget_gb * 2**30))
        if shapes is None:
            print(f"Note: not preloading {len(items):,} training images: more than "
                  f"DATALOADER.PRELOAD_MAX_GB = {budget_gb} GiB decoded")
            return None
        need_gb = sum(h * w * c for h, w, c in shapes) / 2**30
        print(f"Preloading {len(items):,} training images ({need_gb:.3f} GiB) into memory")
        return PackedImages(items, shapes)

    def _use_test_cache(self, tfm_test: Any, custom: bool) -> bool:
        """DATALOADER.CACHE_TEST, unless the test transform is custom or absent, or img0 is asked for."""
        if not self.cfg.DATALOADER.CACHE_TEST:
            return False
        reasons = [
            why for why, bad in (
                ("a custom test transform is used", custom),
                ("INPUT.NO_TRANSFORM is set", tfm_test is None),
                ("DATALOADER.RETURN_IMG0 needs the original images", self.cfg.DATALOADER.RETURN_IMG0),
            ) if bad
        ]
        if reasons:
            print(f"Note: DATALOADER.CACHE_TEST ignored: {'; '.join(reasons)}")
        return not reasons

    def _eval_loader(self, split: str, tfm_test: Any, use_cache: bool) -> DataLoader:
        """Val / test loader; with the cache the resize + crop come from disk, ToTensor onwards run live."""
        cfg, items, images = self.cfg, getattr(self.dataset, split), None
        if use_cache and items:
            prefix, tfm_test = split_at_to_tensor(tfm_test)
            cache_dir = cfg.DATALOADER.CACHE_DIR
            if not cache_dir and not self.dataset.dataset_dir:
                raise ValueError(f"dataset {self.dataset.name} has no folder: set DATALOADER.CACHE_DIR for CACHE_TEST")
            cache_dir = image_cache_folder(cache_dir, self.dataset.dataset_dir)
            images = load_test_cache(items, prefix, cache_dir, self.dataset.name, split, cfg.DATALOADER.NUM_WORKERS)
        return build_data_loader(
            cfg, cfg.DATALOADER.TEST.SAMPLER, items, cfg.DATALOADER.TEST.BATCH_SIZE,
            tfm_test, False, f"dataset {self.dataset.name} {split}", images=images,
        )

    def show_dataset_summary(self) -> None:
        """Print Dassl's two-column table: Dataset, # classes, # train_x, # val, # test (after the class subset,
        plus a Subsample row naming it)."""
        cfg, ds = self.cfg, self.dataset
        table: List[List[str]] = [["Dataset", cfg.DATASET.NAME]]
        if cfg.DATASET.SOURCE_DOMAINS:
            table.append(["Source", str(list(cfg.DATASET.SOURCE_DOMAINS))])
        if cfg.DATASET.TARGET_DOMAINS:
            table.append(["Target", str(list(cfg.DATASET.TARGET_DOMAINS))])
        table.append(["# classes", f"{self.num_classes:,}"])
        if ds.subsampled_from:
            table.append(["Subsample", f"{cfg.DATASET.SUBSAMPLE_CLASSES} classes of {ds.subsampled_from:,}"])
        table.append(["# train_x", f"{len(ds.train_x):,}"])
        if ds.val:
            table.append(["# val", f"{len(ds.val):,}"])
        table.append(["# test", f"{len(ds.test):,}"])
        print(tabulate(table))
