"""VPT: deep visual prompts in every block, frozen hand-crafted text (docs/reference.md 7.4)."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping

import torch

from dpt.config.access import get_key
from dpt.modeling.tower_sizes import vision_layers, vision_width
from dpt.modeling.visual_prompts import VisualPrompts
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.base import PromptTrainer
from dpt.trainers.learned_prompts import PromptTokens

VISUAL_PROMPTS = "image_encoder.transformer.ctx_learner"  # the part folder, the official code's registered name


def check_length(cfg, key: str) -> None:
    """A length key (``"TRAINER.VPT.N_CTX"``) must be >= 0."""
    value = get_key(cfg, key)
    if value < 0:
        raise ValueError(f"config key {key!r}: expected a length >= 0, got {value}")


def visual_prompt_facts(state: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    """Facts of a visual prompt state: ``ctx`` [blocks, n, W] gives TRAINER.VPT.N_CTX, the width and the blocks."""
    ctx = state.get("ctx")
    blocks, facts = 0, {}
    if ctx is not None and ctx.dim() == 3:
        blocks, facts["TRAINER.VPT.N_CTX"], facts["vision width"] = ctx.shape
    return {**facts, "visual prompt blocks": blocks} if state else facts


def visual_prompt_tokens(states: Mapping[str, Mapping[str, torch.Tensor]],
                         meta: Mapping[str, Any]) -> List[PromptTokens]:
    """The VPT-deep tokens [blocks, n, W] in the blocks ``meta`` names (an official run's: 1..blocks)."""
    ctx = (states.get(VISUAL_PROMPTS) or {}).get("ctx")
    if ctx is None or ctx.dim() != 3 or not ctx.shape[0]:
        return []
    blocks = [b + 1 for b in meta.get("vpt_layers", range(ctx.shape[0]))]
    return [PromptTokens(f"{VISUAL_PROMPTS}: L2 norm of each visual prompt token per block", ctx, blocks)]


@TRAINER_REGISTRY.register()
class VPT(PromptTrainer):
    """Reads TRAINER.VPT.N_CTX and OPTIM (used as is: no ImageNet exception)."""

    def check_cfg(self, cfg) -> None:
        check_length(cfg, "TRAINER.VPT.N_CTX")

    def checkpoint_meta(self):
        return {**super().checkpoint_meta(), "vpt_layers": list(self.model.visual_prompts.blocks)}

    @classmethod
    def vision_parts(cls, cfg, clip_model, classnames):
        """VPT-deep prompts of TRAINER.VPT.N_CTX tokens in every block."""
        n_ctx = cfg.TRAINER.VPT.N_CTX
        return {"visual_prompts": VisualPrompts(range(vision_layers(clip_model)), n_ctx, vision_width(clip_model))}

    def register_parts(self, model) -> None:
        self.register_learnable(VISUAL_PROMPTS, model.visual_prompts, self.optim_spec())

    @classmethod
    def describe_checkpoint(cls, states):
        """Facts of the visual prompts (TRAINER.VPT.N_CTX, blocks)."""
        return visual_prompt_facts(states.get(VISUAL_PROMPTS) or {})

    @classmethod
    def prompt_tokens(cls, states, meta):
        return visual_prompt_tokens(states, meta)
