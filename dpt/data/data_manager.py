"""DataManager: dataset -> transforms -> train/val/test loaders, as Dassl builds them (REFERENCE 3)."""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
import torchvision.transforms as T
from tabulate import tabulate
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler
from yacs.config import CfgNode

from dpt.data.build import build_dataset
from dpt.data.datum import Datum
from dpt.data.images import read_image
from dpt.data.transforms import build_transform, interpolation_mode

Transform = Callable[[Any], Any]

SAMPLERS = {"RandomSampler": RandomSampler, "SequentialSampler": SequentialSampler}


class DatasetWrapper(Dataset):
    """Datums -> sample dicts: ``img`` (transformed), ``label``, ``domain``, ``impath``, ``index``.

    With a list of transforms the outputs are ``img``, ``img2``, ...; with K_TRANSFORMS = K > 1
    (train only) each is a list of K augmented views; RETURN_IMG0 adds ``img0``, the image
    resized to INPUT.SIZE without augmentation. Images are [3, H, W] float32 after ToTensor.
    """

    def __init__(
        self, cfg: CfgNode, data_source: Sequence[Datum],
        transform: Optional[Union[Transform, Sequence[Transform]]] = None, is_train: bool = False,
    ) -> None:
        self.data_source = data_source
        self.transform = transform
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
        img0 = read_image(item.impath)
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
) -> DataLoader:
    """A loader with Dassl's settings: ``drop_last = is_train and len >= batch_size`` (REFERENCE 3).

    Args:
        where: "<dataset> <split>", named in the error for an empty split.
    Config keys read: DATALOADER.NUM_WORKERS, K_TRANSFORMS, RETURN_IMG0, USE_CUDA, INPUT.*.
    """
    if not data_source:
        raise ValueError(f"{where}: the split is empty, cannot build a data loader")
    num_workers = cfg.DATALOADER.NUM_WORKERS
    loader = DataLoader(
        DatasetWrapper(cfg, data_source, transform=tfm, is_train=is_train),
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

        name, loader_cfg = self.dataset.name, cfg.DATALOADER
        self.train_loader_x = build_data_loader(
            cfg, loader_cfg.TRAIN_X.SAMPLER, self.dataset.train_x, loader_cfg.TRAIN_X.BATCH_SIZE,
            tfm_train, True, f"dataset {name} train_x",
        )
        self.val_loader = None
        if self.dataset.val:
            self.val_loader = build_data_loader(
                cfg, loader_cfg.TEST.SAMPLER, self.dataset.val, loader_cfg.TEST.BATCH_SIZE,
                tfm_test, False, f"dataset {name} val",
            )
        self.test_loader = build_data_loader(
            cfg, loader_cfg.TEST.SAMPLER, self.dataset.test, loader_cfg.TEST.BATCH_SIZE,
            tfm_test, False, f"dataset {name} test",
        )
        self.num_classes = self.dataset.num_classes
        self.num_source_domains = len(cfg.DATASET.SOURCE_DOMAINS)
        self.lab2cname = self.dataset.lab2cname
        self.classnames = self.dataset.classnames
        if cfg.VERBOSE:
            self.show_dataset_summary()

    def show_dataset_summary(self) -> None:
        """Print Dassl's two-column table: Dataset, # classes, # train_x, # val, # test."""
        cfg, ds = self.cfg, self.dataset
        table: List[List[str]] = [["Dataset", cfg.DATASET.NAME]]
        if cfg.DATASET.SOURCE_DOMAINS:
            table.append(["Source", str(list(cfg.DATASET.SOURCE_DOMAINS))])
        if cfg.DATASET.TARGET_DOMAINS:
            table.append(["Target", str(list(cfg.DATASET.TARGET_DOMAINS))])
        table.append(["# classes", f"{self.num_classes:,}"])
        table.append(["# train_x", f"{len(ds.train_x):,}"])
        if ds.val:
            table.append(["# val", f"{len(ds.val):,}"])
        table.append(["# test", f"{len(ds.test):,}"])
        print(tabulate(table))
