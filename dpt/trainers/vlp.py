"""VLP: CoOp text prompt + VPT-deep in every block + general-knowledge guidance (docs/reference.md 7.5)."""
from __future__ import annotations

from typing import Dict, Sequence

import torch
import torch.nn.functional as F

from dpt.compat.official import TEXT_PROMPTS, VISUAL_PROMPTS
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.base import PromptTrainer, cross_entropy, vision_layers
from dpt.trainers.vpt import check_length


@TRAINER_REGISTRY.register()
class VLP(PromptTrainer):
    """Reads TRAINER.COOP.*, TRAINER.VPT.N_CTX, PRETRAIN.C, TRAINER.DPT.{BETA, TEXT_LR, TEXT_WARMUP_EPOCH,
    IMAGENET_WARMUP_EPOCH, IMAGENET_GUIDANCE_EPOCHS} and OPTIM."""

    def check_cfg(self, cfg) -> None:
        check_length(cfg, "TRAINER.VPT.N_CTX")

    def is_imagenet(self) -> bool:
        return self.cfg.DATASET.NAME == "ImageNet"

    def guidance_epochs(self) -> int:
        """PRETRAIN.C, or TRAINER.DPT.IMAGENET_GUIDANCE_EPOCHS on ImageNet (paper IV.A: 10) when >= 0."""
        override = self.cfg.TRAINER.DPT.IMAGENET_GUIDANCE_EPOCHS
        return override if self.is_imagenet() and override >= 0 else self.cfg.PRETRAIN.C

    def visual_spec(self):
        """OPTIM, with the official code's ImageNet-only visual warm-up (docs/reference.md 7.8 #17) as a key."""
        override = self.cfg.TRAINER.DPT.IMAGENET_WARMUP_EPOCH
        if self.is_imagenet() and override >= 0:
            return self.optim_spec(warmup_epoch=override)
        return self.optim_spec()

    def text_spec(self):
        """The text prompt's own lr and warm-up (the official code hard-codes 0.002 and 1)."""
        dpt = self.cfg.TRAINER.DPT
        return self.optim_spec(lr=dpt.TEXT_LR, warmup_epoch=dpt.TEXT_WARMUP_EPOCH)

    def layer_layout(self, n_layers: int) -> Dict[str, Sequence[int]]:
        """VPT-deep in every block."""
        return {"vpt_layers": range(n_layers)}

    def checkpoint_meta(self):
        return {**super().checkpoint_meta(), "vpt_layers": list(self.model.vpt_layers)}

    def build_model(self) -> None:
        clip_model = self.build_clip()
        model = self.build_prompted_clip(
            clip_model,
            **self.text_prompt_switches(),
            n_vpt_ctx=self.cfg.TRAINER.VPT.N_CTX,
            **self.layer_layout(vision_layers(clip_model)),
        )
        self.register_visual_parts(model)
        self.register_learnable(TEXT_PROMPTS, model.prompt_learner, self.text_spec())

    def register_visual_parts(self, model) -> None:
        if model.visual_prompts is not None:
            self.register_learnable(VISUAL_PROMPTS, model.visual_prompts, self.visual_spec())

    def needs_guidance(self) -> bool:
        return self.epoch < self.guidance_epochs()

    def loss(self, output, label: torch.Tensor) -> torch.Tensor:
        """Guidance epochs: CE(logits_zs_image) + CE(logits_zs_text) + beta CE(logits); then CE(logits)."""
        main = cross_entropy(output, label)
        if output.logits_zs_image is None:
            return main
        return (
            F.cross_entropy(output.logits_zs_image.float(), label)
            + F.cross_entropy(output.logits_zs_text.float(), label)
            + self.cfg.TRAINER.DPT.BETA * main
        )

    def forward_backward(self, batch):
        return self.supervised_step(batch, self.loss)
