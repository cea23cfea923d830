"""The switch sets the tests and goldens were written with, composed from the modeling parts.

Why: goldens and equivalence tests name a model by its old switches (learn_text, vpt_layers, ...); this one
helper turns them into parts in the order the trainers build them (text part, VPT-deep, CAVPT: the RNG order
of the goldens), so the tests exercise the same composition as the trainers.
"""
from __future__ import annotations

from typing import Dict, Sequence

import torch

from dpt.modeling import (
    BlockPrompts,
    ClassAwarePrompts,
    ConditionedPromptLearner,
    PromptedCLIP,
    PromptLearner,
    VisualPrompts,
)


def compose_clip(
    clip_model,
    classnames: Sequence[str],
    template: str,
    *,
    learn_text: bool,
    n_ctx: int = 16,
    ctx_init: str = "",
    csc: bool = False,
    class_token_position: str = "end",
    image_conditioned: bool = False,
    vpt_layers: Sequence[int] = (),
    n_vpt_ctx: int = 0,
    cavpt_layers: Sequence[int] = (),
    n_cavpt: int = 0,
    n_key_tokens: int = 10,
    attn_dim: int = 32,
    shared_cavpt: bool = False,
    text_chunk_size: int = 256,
) -> PromptedCLIP:
    """PromptedCLIP with parts ``prompt_learner`` (CoOp / CoCoOp), ``visual_prompts`` and ``cavpt``."""
    text = None
    if image_conditioned:
        text = ConditionedPromptLearner(clip_model, classnames, n_ctx, ctx_init)
    elif learn_text:
        text = PromptLearner(clip_model, classnames, n_ctx, ctx_init, csc, class_token_position)
    vision: Dict[str, BlockPrompts] = {}
    width = clip_model.visual.conv1.weight.shape[0]
    if len(vpt_layers):
        vision["visual_prompts"] = VisualPrompts(vpt_layers, n_vpt_ctx, width)
    if len(cavpt_layers):
        text_dim = clip_model.text_projection.shape[1]
        vision["cavpt"] = ClassAwarePrompts(
            cavpt_layers, n_cavpt, text_dim, width, len(classnames), n_key_tokens, attn_dim, shared_cavpt
        )
    return PromptedCLIP(clip_model, classnames, template, text=text, vision=vision, text_chunk_size=text_chunk_size)


def vpt_part(blocks: Sequence[int], prompts: torch.Tensor) -> VisualPrompts:
    """A VPT-deep part for ``blocks`` whose ``ctx`` is ``prompts`` [len(blocks), n, W]."""
    part = VisualPrompts(blocks, prompts.shape[1], prompts.shape[2])
    with torch.no_grad():
        part.ctx.copy_(prompts)
    return part
