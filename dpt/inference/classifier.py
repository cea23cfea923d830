"""Classifier: a trained (or zero-shot) model that classifies images, rebuilt without the dataset.

Why: train.py only evaluates splits of a dataset. A Classifier is the same trainer (built over class names,
``TrainerX(cfg, classnames=...)``), loaded with the learned tensors, and driven the way the evaluation loop
drives it (``before_test`` once, then autocast + ``image_logits`` per batch, the test transform of the run's
config), so its top-1 equals ``--eval-only``'s image for image. Text features that do not depend on the image
are computed once per Classifier, not per call.
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Union

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from dpt.compat.weights import load_into
from dpt.config import get_cfg_default
from dpt.data.images import read_image
from dpt.data.transforms import build_transform
from dpt.engine.build import build_trainer
from dpt.engine.trainer import TrainerX
from dpt.inference.export import Export, LearnedState, backbone_hint, learned_state, read_export
from dpt.inference.run import config_from_text, load_run, prepare_config, resolve_device
from dpt.modeling.backbones.loader import backbone_id, image_preprocess, load_clip, resolve_backbone

ImageInput = Union[str, os.PathLike, Image.Image]
ZERO_SHOT_TEMPLATE = "a photo of a {}."


class Prediction(NamedTuple):
    """probs [N, n_cls] fp32 (softmax of the logits); top_k [N, K] int64 class indices by falling probability;
    top_k_probs [N, K] fp32; classes: the top-k class names per image."""

    probs: torch.Tensor
    top_k: torch.Tensor
    top_k_probs: torch.Tensor
    classes: List[List[str]]


class FileResult(NamedTuple):
    """One image file: its probabilities [n_cls] fp32, or None and the one-line reason it could not be read."""

    path: str
    probs: Optional[torch.Tensor]
    error: str


class _ImageFiles(Dataset):
    """Image files through the test transform; an unreadable file gives (index, None, reason)."""

    def __init__(self, paths: Sequence[str], transform) -> None:
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            return index, self.transform(read_image(self.paths[index])), ""
        except (OSError, ValueError, SyntaxError) as err:  # PIL raises SyntaxError for some broken headers
            return index, None, str(err).splitlines()[0] if str(err) else type(err).__name__


def _collate(items):
    return items


class Classifier:
    """A trainer rebuilt over class names with its learned tensors, for prediction.

    Attributes:
        classnames: class names in label order.
        trainer_name: TRAINER.NAME.
        batch_size: images per forward (default DATALOADER.TEST.BATCH_SIZE, as the evaluation).
    """

    def __init__(self, cfg, classnames: Sequence[str], state: LearnedState, meta: Optional[Dict[str, Any]] = None,
                 trainer: Optional[TrainerX] = None, source: str = "the learned state") -> None:
        """Build the trainer over ``classnames`` and load ``state`` into it (or take the already loaded
        ``trainer``, which the Classifier then owns), and cache what is fixed across calls (the text features).

        Args:
            cfg: the run's resolved config (frozen); state: ``learned_state`` of the trained model; meta: the
            export's metadata, if any; source: the run folder or file, named in errors.
        """
        self.cfg, self.state, self.meta, self.source = cfg, state, meta or {}, source
        with contextlib.redirect_stdout(io.StringIO()):  # the trainer's build log is for training runs
            if trainer is None:
                trainer = build_trainer(cfg, classnames=classnames)
                for name in trainer.get_model_names():
                    skip = trainer.keys_to_skip_on_load(name)
                    load_into(trainer._models[name], state.get(name, {}), skip, source, name)
            self.transform = build_transform(cfg, is_train=False)
            trainer.set_model_mode("eval")
            trainer.before_test()
        self.trainer = trainer
        self.trainer_name = cfg.TRAINER.NAME
        self.device = trainer.device
        self.batch_size = cfg.DATALOADER.TEST.BATCH_SIZE

    @property
    def classnames(self) -> List[str]:
        return list(self.trainer.classnames)

    def preprocess(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """PIL images (any mode, read as RGB like image files) or image paths -> [N, 3, H, W] fp32 through the run's
        test transform."""
        return torch.stack([self.transform(img.convert("RGB") if isinstance(img, Image.Image) else read_image(str(img)))
                            for img in images])

    @torch.no_grad()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_cls] fp32 of a preprocessed batch [B, 3, H, W] (the evaluation loop's precision)."""
        with self.trainer.autocast():
            logits = self.trainer.image_logits(batch.to(self.device, non_blocking=self.device.type == "cuda"))
        return logits.float()

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities [B, n_cls] fp32 on the CPU of a preprocessed batch, ``batch_size`` at a time."""
        return torch.cat([self.logits(chunk).softmax(dim=-1).cpu() for chunk in batch.split(self.batch_size)])

    def predict(self, images: Union[torch.Tensor, ImageInput, Sequence[ImageInput]], top_k: int = 5) -> Prediction:
        """Probabilities and the top-k classes of images: a PIL image or path, a list of them (read ``batch_size``
        at a time), or a preprocessed tensor batch [N, 3, H, W]. An unreadable path raises naming it
        (``predict_files`` reports it and goes on)."""
        if isinstance(images, torch.Tensor):
            return self.top(self.probabilities(images), top_k)
        if isinstance(images, (str, os.PathLike, Image.Image)):
            images = [images]
        if not len(images):
            raise ValueError("predict: no images given")
        size = self.batch_size
        probs = [self.probabilities(self.preprocess(images[i:i + size])) for i in range(0, len(images), size)]
        return self.top(torch.cat(probs), top_k)

    def top(self, probs: torch.Tensor, top_k: int) -> Prediction:
        """``Prediction`` of probabilities [N, n_cls]; k is capped at the number of classes."""
        if top_k < 1:
            raise ValueError(f"top_k: expected >= 1, got {top_k}")
        values, indices = probs.topk(min(top_k, probs.shape[1]), dim=1)
        names = self.classnames
        return Prediction(probs, indices, values, [[names[i] for i in row] for row in indices.tolist()])

    def predict_files(self, paths: Sequence[str], num_workers: int = 0, progress: bool = False
                      ) -> Iterator[FileResult]:
        """Probabilities of image files in order, ``batch_size`` per forward, decoded by ``num_workers``
        processes; an unreadable file is a result with its reason, and every other file is still predicted."""
        loader = DataLoader(_ImageFiles(paths, self.transform), batch_size=self.batch_size,
                            num_workers=num_workers, collate_fn=_collate, pin_memory=self.device.type == "cuda")
        for items in tqdm(loader, desc="predict", unit="batch", disable=not progress):
            good = [(index, image) for index, image, _ in items if image is not None]
            probs = self.logits(torch.stack([image for _, image in good])).softmax(dim=-1).cpu() if good else None
            row = {index: p for (index, _), p in zip(good, probs if probs is not None else [])}
            for index, _, error in items:
                yield FileResult(str(paths[index]), row.get(index), error)

    def with_classes(self, classnames: Sequence[str]) -> "Classifier":
        """The same learned model over other class names (the cross-dataset protocol): the text side is rebuilt
        from the names; tensors whose shape depends on the class count are not used."""
        if not self.trainer.open_vocabulary:
            raise ValueError(f"{self.trainer_name} cannot take new class names: its classifier is tied to the "
                             f"{len(self.classnames)} classes it was fitted on (use a prompt method or zero-shot)")
        return Classifier(self.cfg, list(classnames), self.state, self.meta, source=self.source)


def parse_classnames(value: str) -> List[str]:
    """Class names from a file (one per line, blank lines skipped) or a comma-separated list."""
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    else:
        names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise ValueError(f"--classes {value!r}: no class names (expected a file, one per line, or a comma-separated "
                         f"list)")
    return names


def check_backbone(meta: Dict[str, Any], backbone: Optional[str], source: str) -> str:
    """The backbone to load for an export: ``backbone`` or the one it names, which must have its identity."""
    expected, name = meta["backbone"]["id"], backbone or meta["backbone"]["name"]
    try:
        resolve_backbone(name)
    except ValueError:
        raise FileNotFoundError(f"{source}: its backbone weights file {name} is not found; pass --backbone "
                                f"(backbone=) {backbone_hint(expected, name)}") from None
    actual = backbone_id(name)
    if actual != expected:
        raise ValueError(f"{source} was trained on backbone {expected}, but {name} is {actual}; pass --backbone "
                         f"(backbone=) {backbone_hint(expected, meta['backbone']['name'])}")
    return name


def classifier_from_export(exported: Export, source: str, device: Optional[str] = None,
                           backbone: Optional[str] = None) -> Classifier:
    """Rebuild the export's trainer over its class names on ``device`` and load its learned tensors."""
    name = check_backbone(exported.meta, backbone, source)
    cfg = prepare_config(config_from_text(exported.meta["config"], source), resolve_device(device), name)
    return Classifier(cfg, exported.meta["classnames"], exported.state, exported.meta, source=source)


def zero_shot_classifier(backbone: str, classnames: Sequence[str], *, device: Optional[str] = None,
                         template: str = ZERO_SHOT_TEMPLATE) -> Classifier:
    """Zero-shot CLIP (ZeroshotCLIP) of ``backbone`` over ``classnames`` with one template, at the input size,
    normalisation and resizing the backbone's weights expect."""
    expected = image_preprocess(load_clip(backbone))
    cfg = get_cfg_default()
    cfg.TRAINER.NAME = "ZeroshotCLIP"
    cfg.DATASET.TEMPLATE = template
    cfg.INPUT.SIZE = tuple(expected.size)
    cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD = list(expected.mean), list(expected.std)
    cfg.INPUT.INTERPOLATION = expected.interpolation
    cfg.INPUT.TRANSFORMS = ("normalize",)
    cfg = prepare_config(cfg, resolve_device(device), backbone)
    return Classifier(cfg, list(classnames), {})


def load_classifier(source: Union[str, os.PathLike], *, device: Optional[str] = None,
                    backbone: Optional[str] = None, epoch: Optional[int] = None) -> Classifier:
    """A Classifier from a run folder (``load_run``: config.yaml or log.txt, checkpoints, the dataset's class
    names) or an export file (no dataset needed).

    Args:
        source: RUN_DIR or an export file written by ``dpt-export``.
        device: "cpu" or "cuda" (default: cuda when available).
        backbone: for an export, the CLIP weights to use instead of the name it records (same identity).
        epoch: for a run folder, the checkpoint to load (default: the one its final test used).
    """
    source = str(source)
    if os.path.isdir(source):
        with contextlib.redirect_stdout(io.StringIO()):
            trainer = load_run(source, device=device, epoch=epoch)
        return Classifier(trainer.cfg, trainer.classnames, learned_state(trainer), trainer=trainer, source=source)
    if not Path(source).is_file():
        raise FileNotFoundError(f"neither a run folder nor an export file: {source}")
    return classifier_from_export(read_export(source), source, device, backbone)
