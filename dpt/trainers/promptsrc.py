"""PromptSRC: IVLP prompts + consistency with the frozen CLIP + Gaussian prompt aggregation (docs/reference.md 10.4).

Loss = CE + KL(zero-shot || prompted) + TEXT_LOSS_WEIGHT * L1_text + IMAGE_LOSS_WEIGHT * L1_image against frozen
targets: the normalised mean of the unnormalised text features of CLIP's 60 ImageNet templates (computed once)
and the plain CLIP image features. The text prompts do not touch the image tower and vice versa, so L1_text
reaches only the text prompts and L1_image only the vision prompts. GPA: after each epoch e the learnable
prompts (only those, not the frozen CLIP as the official code also does) are added to a running aggregate with
weight N(e; GPA_MEAN, GPA_STD) normalised over epochs 1..MAX_EPOCH; after the last epoch the aggregate is
loaded. The aggregate is a buffer of the registered module, so checkpoints carry it and resuming continues it.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.templates import IMAGENET_TEMPLATES
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.base import accuracy
from dpt.trainers.ivlp import IVLP, IVLP_MODEL, VLPROMPT_NAMES


def gaussian_weights(mean: float, std: float, max_epoch: int) -> torch.Tensor:
    """[max_epoch] float64 weights of epochs 1..max_epoch: the normal density at each, normalised to sum 1."""
    epochs = torch.arange(1, max_epoch + 1, dtype=torch.float64)
    density = torch.exp(-0.5 * ((epochs - mean) / std) ** 2)
    return density / density.sum()


class PromptAggregate(nn.Module):
    """Running Gaussian-weighted sum of some parameters, flattened into one buffer ``aggregate``."""

    def __init__(self, parameters: List[nn.Parameter], weights: torch.Tensor) -> None:
        super().__init__()
        self._targets = parameters  # a plain list: they stay registered in their own parts
        self.weights = weights
        total = sum(p.numel() for p in parameters)
        self.register_buffer("aggregate", torch.zeros(total, device=parameters[0].device))

    def accumulate(self, epoch: int) -> None:
        """Add weight[epoch - 1] x the current parameters (``epoch`` 1-based)."""
        with torch.no_grad():
            flat = torch.cat([p.detach().float().flatten() for p in self._targets])
            self.aggregate += float(self.weights[epoch - 1]) * flat

    def load(self) -> None:
        """Overwrite the parameters with the aggregate."""
        with torch.no_grad():
            nn.utils.vector_to_parameters(self.aggregate.clone(), self._targets)


@TRAINER_REGISTRY.register()
class PromptSRC(IVLP):
    """Reads TRAINER.PROMPTSRC.{N_CTX_TEXT, N_CTX_VISION, CTX_INIT, PROMPT_DEPTH_TEXT, PROMPT_DEPTH_VISION,
    TEXT_LOSS_WEIGHT, IMAGE_LOSS_WEIGHT, GPA_MEAN, GPA_STD, PREC} and OPTIM."""

    precision_key = "TRAINER.PROMPTSRC.PREC"
    text_prompt_key = "TRAINER.PROMPTSRC"
    part_names = ("prompt_learner", "deep_text", "deep_vision", "gpa")
    official_names = {IVLP_MODEL: replace(VLPROMPT_NAMES, ours_only=r"gpa\.")}  # the official code has no aggregate

    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)
        if cfg.TRAINER.PROMPTSRC.GPA_STD <= 0:
            raise ValueError(f"config key 'TRAINER.PROMPTSRC.GPA_STD' is {cfg.TRAINER.PROMPTSRC.GPA_STD}: expected > 0")

    def learnable(self, model) -> nn.ModuleDict:
        holder = super().learnable(model)
        keys = self.cfg.TRAINER.PROMPTSRC
        weights = gaussian_weights(keys.GPA_MEAN, keys.GPA_STD, self.max_epoch)
        holder["gpa"] = PromptAggregate(list(holder.parameters()), weights)
        return holder

    def build_model(self) -> None:
        super().build_model()
        self.frozen_text_features = self.template_ensemble(self.model, self.classnames)

    @staticmethod
    def template_ensemble(model, classnames) -> torch.Tensor:
        """[n_cls, E] normalised mean over IMAGENET_TEMPLATES of the frozen CLIP's unnormalised text features."""
        names = [name.replace("_", " ") for name in classnames]
        tokens = clip.tokenize([t.format(n) for t in IMAGENET_TEMPLATES for n in names])  # one batch, chunked
        with torch.no_grad():
            features = model.text_encoder.encode_text_tokens(tokens.to(model.zs_text_features.device)).float()
        return F.normalize(features.reshape(len(IMAGENET_TEMPLATES), len(names), -1).mean(dim=0), dim=-1)

    def keys_to_skip_on_load(self, name: str) -> List[str]:
        """Official checkpoints have no aggregate; evaluation does not need it."""
        return super().keys_to_skip_on_load(name) + (["gpa.aggregate"] if name == self.model_name else [])

    def losses(self, image: torch.Tensor, label: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The four terms and ``logits`` [B, n_cls] of one batch."""
        model = self.model
        text = model.encode_learned_text()
        output = model(image, text_features=text)
        logits = output.logits.float()
        frozen_image = model.zero_shot_image_features(image).float()  # [B, E] normalised, no grad
        zs_logits = model.logit_scale.float() * frozen_image @ self.frozen_text_features.t()
        kl = F.kl_div(F.log_softmax(logits, dim=1), F.log_softmax(zs_logits, dim=1), reduction="sum",
                      log_target=True) / logits.numel()
        return {
            "logits": logits,
            "ce": F.cross_entropy(logits, label),
            "kl": kl,
            "l1_text": (text.normalized.float() - self.frozen_text_features).abs().mean(),
            "l1_image": (output.image_features.float() - frozen_image).abs().mean(),
        }

    def loss(self, terms: Dict[str, torch.Tensor]) -> torch.Tensor:
        keys = self.cfg.TRAINER.PROMPTSRC
        return (terms["ce"] + terms["kl"] + keys.TEXT_LOSS_WEIGHT * terms["l1_text"]
                + keys.IMAGE_LOSS_WEIGHT * terms["l1_image"])

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        with self.autocast():
            terms = self.losses(image, label)
            loss = self.loss(terms)
        self.model_backward_and_update(loss)
        return {"loss": loss.item(), "acc": accuracy(terms["logits"], label),
                **{k: v.item() for k, v in terms.items() if k != "logits"}}

    def after_epoch(self) -> None:
        """GPA before the epoch's checkpoint is written, so the checkpoint carries the aggregate."""
        gpa = self._models[self.model_name]["gpa"]
        gpa.accumulate(self.epoch + 1)
        if self.epoch + 1 == self.max_epoch:
            gpa.load()
            print(f"Loaded the Gaussian-aggregated prompts of epochs 1..{self.max_epoch}")
        super().after_epoch()
