"""VLP: CoOp text prompt + VPT-deep in every block + general-knowledge guidance (docs/reference.md 7.5)."""
from __future__ import annotations

from typing import Dict, Sequence

import torch
import torch.nn.functional as F

from dpt.modeling.parts import BlockPrompts
from dpt.modeling.tower_sizes import vision_layers, vision_width
from dpt.modeling.visual_prompts import VisualPrompts
from dpt.registry import DATASET_REGISTRY, TRAINER_REGISTRY
from dpt.trainers.base import PromptTrainer, cross_entropy
from dpt.trainers.text_context import TEXT_PROMPTS, coop_text_part
from dpt.trainers.vpt import VISUAL_PROMPTS, check_length, visual_prompt_facts, visual_prompt_tokens


@TRAINER_REGISTRY.register()
class VLP(PromptTrainer):
    """Reads TRAINER.COOP.*, TRAINER.VPT.N_CTX, PRETRAIN.C, TRAINER.DPT.{BETA, TEXT_LR, TEXT_WARMUP_EPOCH,
    IMAGENET_WARMUP_EPOCH, IMAGENET_GUIDANCE_EPOCHS} and OPTIM."""

    def check_cfg(self, cfg) -> None:
        check_length(cfg, "TRAINER.VPT.N_CTX")

    def imagenet_schedule(self) -> bool:
        """The dataset class declares the official ImageNet schedule (``imagenet_schedule``)."""
        return DATASET_REGISTRY.get(self.cfg.DATASET.NAME).imagenet_schedule

    def guidance_epochs(self) -> int:
        """PRETRAIN.C, or TRAINER.DPT.IMAGENET_GUIDANCE_EPOCHS on ImageNet (paper IV.A: 10) when >= 0."""
        override = self.cfg.TRAINER.DPT.IMAGENET_GUIDANCE_EPOCHS
        return override if self.imagenet_schedule() and override >= 0 else self.cfg.PRETRAIN.C

    def visual_spec(self):
        """OPTIM, with the official code's ImageNet-only visual warm-up (docs/reference.md 7.8 #17) as a key."""
        override = self.cfg.TRAINER.DPT.IMAGENET_WARMUP_EPOCH
        if self.imagenet_schedule() and override >= 0:
            return self.optim_spec(warmup_epoch=override)
        return self.optim_spec()

    def text_spec(self):
        """The text prompt's own lr and warm-up (the official code hard-codes 0.002 and 1)."""
        dpt = self.cfg.TRAINER.DPT
        return self.optim_spec(lr=dpt.TEXT_LR, warmup_epoch=dpt.TEXT_WARMUP_EPOCH)

    @classmethod
    def vpt_blocks(cls, cfg, n_layers: int) -> Sequence[int]:
        """VPT-deep in every block."""
        return range(n_layers)

    def checkpoint_meta(self):
        visual = self.model.vision_parts.get("visual_prompts")
        return {**super().checkpoint_meta(), "vpt_layers": list(visual.blocks) if visual is not None else []}

    @classmethod
    def text_part(cls, cfg, clip_model, classnames):
        return coop_text_part(cfg, clip_model, classnames)

    @classmethod
    def check_layers(cls, cfg, n_layers: int) -> None:
        """The prompted blocks must exist (DPT: TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT / TRAINER.DPT.TOPLIMIT)."""
        cls.vpt_blocks(cfg, n_layers)

    @classmethod
    def vision_parts(cls, cfg, clip_model, classnames) -> Dict[str, BlockPrompts]:
        """VPT-deep prompts of TRAINER.VPT.N_CTX tokens in ``vpt_blocks`` (none when that is empty)."""
        blocks = cls.vpt_blocks(cfg, vision_layers(clip_model))
        if not len(blocks):
            return {}
        return {"visual_prompts": VisualPrompts(blocks, cfg.TRAINER.VPT.N_CTX, vision_width(clip_model))}

    @classmethod
    def describe_checkpoint(cls, states):
        """Facts of the text context and of the visual prompts."""
        return {**super().describe_checkpoint(states), **visual_prompt_facts(states.get(VISUAL_PROMPTS) or {})}

    @classmethod
    def prompt_tokens(cls, states, meta):
        return visual_prompt_tokens(states, meta)

    def register_parts(self, model) -> None:
        """Dassl's order of the official trainer: visual prompts (, CAVPT), then the text prompt."""
        self.register_visual_parts(model)
        self.register_learnable(TEXT_PROMPTS, model.prompt_learner, self.text_spec())

    def register_visual_parts(self, model) -> None:
        if "visual_prompts" in model.vision_parts:
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
