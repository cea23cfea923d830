"""Zero-shot CLIP with the dataset's template (ZeroshotCLIP) or the 7-template ensemble (ZeroshotCLIP2)."""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F

from dpt.modeling.prompt_tokens import ClassNameTooLong, tokenize_class_prompts
from dpt.modeling.prompted_clip import TextFeatures
from dpt.modeling.templates import IMAGENET_TEMPLATES_SELECT
from dpt.registry import DATASET_REGISTRY, TRAINER_REGISTRY
from dpt.trainers.base import PromptTrainer


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(PromptTrainer):
    """No learnable parts; text features of CUSTOM_TEMPLATES[DATASET.NAME] (docs/reference.md 7.2)."""


@TRAINER_REGISTRY.register()
class ZeroshotCLIP2(ZeroshotCLIP):
    """Mean of normalised text features over IMAGENET_TEMPLATES_SELECT (+ the dataset's template when its class
    says ``template_in_ensemble``; not for ImageNet, as CoOp)."""

    def templates(self) -> List[str]:
        templates = list(IMAGENET_TEMPLATES_SELECT)
        if DATASET_REGISTRY.get(self.cfg.DATASET.NAME).template_in_ensemble:
            templates.append(self.template())
        return templates

    def before_test(self) -> None:
        templates = self.templates()
        names = [c.replace("_", " ") for c in self.classnames]
        features = []
        for template in templates:
            try:
                tokens = tokenize_class_prompts(names, template).to(self.device)
            except ClassNameTooLong as err:
                raise self.class_name_error(err) from err
            with self.autocast():
                features.append(F.normalize(self.model.text_encoder.encode_text_tokens(tokens).float(), dim=-1))
        ensemble = F.normalize(torch.stack(features).mean(dim=0), dim=-1)  # [n_cls, E]
        self._text_features = TextFeatures(raw=ensemble, normalized=ensemble)
