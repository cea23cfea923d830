"""Linear-probe CLIP (CoOp's lpclip, docs/reference.md 9.4): logistic regression on frozen CLIP image features.

Why a trainer: it then runs through train.py, writes the run folder, log.txt (the result block after "Finish
training"), and a Dassl-layout checkpoint like every method, so scripts, dpt-results and --eval-only work
unchanged. Features (test transform, no augmentation) are extracted once per split and cached on disk
beside DPT's selector features (feature_cache.py); evaluation runs the engine's loop over the cached
features instead of the images.
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

import torch
from torch import nn
from torch.utils.data import DataLoader

from dpt.data.data_manager import build_data_loader
from dpt.data.transforms import build_transform
from dpt.engine.checkpoint import checkpoint_name, load_checkpoint
from dpt.modeling.prompted_vit import PromptedVisionEncoder
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.clip_trainer import ClipTrainer
from dpt.trainers.feature_cache import SelectorFeatureCache, split_cache_path
from dpt.trainers.logistic_search import linear_weights, search_c, search_rows

CLASSIFIER = "classifier"


@TRAINER_REGISTRY.register()
class LinearProbeCLIP(ClipTrainer):
    """Reads MODEL.BACKBONE.NAME, TRAINER.COOP.PREC (``ClipTrainer``), TRAINER.LINEAR_PROBE.*, DATASET.NUM_SHOTS, SEED and
    DATALOADER.TEST.BATCH_SIZE / CACHE_DIR. One "epoch" (OPTIM.MAX_EPOCH must be 1) fits the classifier.

    Registered part "classifier": nn.Linear(E, n_cls) holding the fitted weights; checkpoints also record the
    class names, so an ImageNet probe evaluates on ImageNet-A/R (200 of its classes) by name.
    """

    def check_cfg(self, cfg) -> None:
        probe = cfg.TRAINER.LINEAR_PROBE
        checks = [
            ("OPTIM.MAX_EPOCH", cfg.OPTIM.MAX_EPOCH, cfg.OPTIM.MAX_EPOCH == 1, "1 (the probe is fitted once)"),
            ("TRAINER.LINEAR_PROBE.C_GRID", probe.C_GRID, len(probe.C_GRID) > 0 and all(
                isinstance(c, (int, float)) and c > 0 for c in probe.C_GRID), "a non-empty list of numbers C > 0"),
            ("TRAINER.LINEAR_PROBE.SEARCH_STEPS", probe.SEARCH_STEPS, probe.SEARCH_STEPS >= 0, ">= 0"),
            ("TRAINER.LINEAR_PROBE.MAX_ITER", probe.MAX_ITER, probe.MAX_ITER >= 1, ">= 1"),
            ("TRAINER.LINEAR_PROBE.SEARCH_VAL_SHOTS", probe.SEARCH_VAL_SHOTS, probe.SEARCH_VAL_SHOTS >= 1, ">= 1"),
        ]
        for key, value, ok, expected in checks:
            if not ok:
                raise ValueError(f"config key {key!r}: LinearProbeCLIP expects {expected}, got {value!r}")

    def build_model(self) -> None:
        clip_model = self.build_clip()
        for parameter in clip_model.parameters():
            parameter.requires_grad_(False)
        self.vision = PromptedVisionEncoder(clip_model.visual)
        self.classifier = nn.Linear(clip_model.text_projection.shape[1], self.num_classes).to(self.device)
        self.register_model(CLASSIFIER, self.classifier)
        self._features: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}

    def checkpoint_meta(self):
        return {**super().checkpoint_meta(), "classnames": list(self.classnames)}

    @torch.no_grad()
    def _encode(self, image: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.vision(image.to(self.device)).features.float()  # [B, E] raw, as lpclip

    def split_features(self, split: str) -> Tuple[torch.Tensor, torch.Tensor]:
        """Features [N, E] fp32 (CPU) and labels [N] int64 of "train", "val" or "test", cached on disk."""
        if split not in self._features:
            items = self.dm.dataset.train_x if split == "train" else getattr(self.dm.dataset, split)
            loader = {"val": self.val_loader, "test": self.test_loader}.get(split) or build_data_loader(
                self.cfg, "SequentialSampler", items, self.cfg.DATALOADER.TEST.BATCH_SIZE,
                build_transform(self.cfg, is_train=False), False, f"dataset {self.dm.dataset.name} {split}",
            )
            folder = self.dm.dataset.dataset_dir or self.output_dir
            path = split_cache_path(self.cfg, "clip_features", split, self.backbone_id, self.precision,
                                    loader.dataset.transform, items, folder)
            features = SelectorFeatureCache(len(items), path).fill(loader, self._encode)
            self._features[split] = features.float(), torch.tensor([item.label for item in items])
        return self._features[split]

    def run_epoch(self) -> None:
        """Fit: features of train and val, C searched on val (lpclip), weights copied into the classifier."""
        name = self.cfg.DATASET.NAME
        if not self.dm.dataset.val:
            raise ValueError(f"LinearProbeCLIP searches C on the val split, but dataset {name} has none")
        absent = sorted(set(range(self.num_classes)) - {item.label for item in self.dm.dataset.train_x})
        if absent:
            raise ValueError(f"LinearProbeCLIP: dataset {name} has no training image of class(es) {absent[:10]}")
        train_x, train_y = self.split_features("train")
        val_x, val_y = self.split_features("val")
        probe, shots = self.cfg.TRAINER.LINEAR_PROBE, self.cfg.DATASET.NUM_SHOTS
        per_class = min(shots, probe.SEARCH_VAL_SHOTS) if shots >= 1 else len(val_y)
        rows = search_rows(val_y, per_class, max(self.cfg.SEED, 0))
        print(f"Linear probe: {len(train_y):,} train and {len(rows):,} val features of dimension {train_x.shape[1]}")
        result = search_c((train_x.double().numpy(), train_y.numpy()),
                          (val_x[rows].double().numpy(), val_y[rows].numpy()),
                          probe.C_GRID, probe.SEARCH_STEPS, probe.MAX_ITER)
        print(f"Selected C = {result.c:.6g} (val accuracy {result.val_accuracy:.1f}%)")
        weight, bias = linear_weights(result.classifier, self.num_classes)
        with torch.no_grad():
            self.classifier.weight.copy_(weight)
            self.classifier.bias.copy_(bias)

    def load_model(self, directory: str, epoch: Optional[int] = None) -> None:
        """Load a probe's rows by class name, so a subset of its classes (ImageNet -> A / R) evaluates too."""
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        path = os.path.join(directory, CLASSIFIER, checkpoint_name(epoch))
        if not os.path.isfile(path):
            raise FileNotFoundError(f'model not found at "{path}" (expected {checkpoint_name(epoch)} for {CLASSIFIER})')
        ckpt = load_checkpoint(path)
        meta = ckpt.get("meta") or {}
        if meta.get("trainer") != self.cfg.TRAINER.NAME or "classnames" not in meta:
            raise ValueError(f"checkpoint {path} was written with trainer = {meta.get('trainer')!r}, but this run "
                             f"has trainer = {self.cfg.TRAINER.NAME!r}")
        row_of = {classname: row for row, classname in enumerate(meta["classnames"])}
        unknown = [c for c in self.classnames if c not in row_of]
        if unknown:
            raise KeyError(f"checkpoint {path}: class(es) {unknown[:5]} of dataset {self.cfg.DATASET.NAME} are not "
                           f"among the {len(row_of)} classes the probe was fitted on")
        rows = torch.tensor([row_of[c] for c in self.classnames])
        with torch.no_grad():
            self.classifier.weight.copy_(ckpt["state_dict"]["weight"][rows])
            self.classifier.bias.copy_(ckpt["state_dict"]["bias"][rows])
        print(f'Loading weights to {CLASSIFIER} from "{path}" (epoch = {ckpt["epoch"]})')

    def eval_loader(self, split: str) -> DataLoader:
        """The engine's evaluation runs over the split's cached features instead of its images."""
        features, labels = self.split_features(split)
        rows = [{"img": f, "label": y} for f, y in zip(features, labels)]
        return DataLoader(rows, batch_size=self.cfg.DATALOADER.TEST.BATCH_SIZE)

    def model_inference(self, image: torch.Tensor) -> torch.Tensor:
        """image: cached features [B, E] (see ``test``) -> logits [B, n_cls]."""
        return self.classifier(image.to(self.classifier.weight.dtype))

    open_vocabulary = False  # one fitted row per training class

    def image_logits(self, image: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] -> features as ``split_features`` computes them -> logits [B, n_cls]."""
        return self.model_inference(self._encode(image))
