"""CoCoOp's image-conditioned text context (docs/reference.md 9.1): a meta-net shifts the context by each image.

Why: CoCoOp is CoOp's learned context plus one small net, so it is a text-side part extending
``PromptLearner``; every (image, class) prompt still goes through the one text forward.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.parts import BlockPrompts
from dpt.modeling.prompt_learner import PromptLearner


class ConditionedPromptLearner(PromptLearner):
    """CoOp's shared context (class token at the end) + meta-net Linear(E, E // 16) -> ReLU -> Linear(E // 16, D).

    Args:
        clip_model, classnames: as ``PromptLearner``.
        n_ctx, ctx_init: TRAINER.COCOOP.N_CTX / CTX_INIT.

    State dict (CoCoOp's keys): ``ctx`` [n_ctx, D], ``meta_net.linear1.{weight,bias}``,
    ``meta_net.linear2.{weight,bias}``, ``token_prefix``, ``token_suffix``.
    """

    image_conditioned = True

    def __init__(self, clip_model: clip.model.CLIP, classnames: Sequence[str], n_ctx: int = 16, ctx_init: str = "") -> None:
        super().__init__(clip_model, classnames, n_ctx, ctx_init)
        vis_dim = clip_model.visual.output_dim
        if vis_dim < 16:
            raise ValueError(f"PromptLearner: CoCoOp's meta-net needs CLIP's output dim >= 16, got {vis_dim}")
        ctx_dim = self.ctx.shape[-1]
        self.meta_net = nn.Sequential(OrderedDict([
            ("linear1", nn.Linear(vis_dim, vis_dim // 16)),
            ("relu", nn.ReLU(inplace=True)),
            ("linear2", nn.Linear(vis_dim // 16, ctx_dim)),
        ])).to(self.ctx.device)

    def conditioned_context(self, image_features: torch.Tensor) -> torch.Tensor:
        """CoCoOp's per-image context: ctx + meta_net(f), the same shift on every context vector.

        image_features: [B, E] normalised CLIP image features -> [B, n_ctx, D] in the parameters' dtype (fp32).
        """
        weight = self.meta_net.linear1.weight
        shift = self.meta_net(image_features.to(weight.dtype))  # [B, D]
        return self.ctx.unsqueeze(0) + shift.unsqueeze(1)  # [1, n_ctx, D] + [B, 1, D]

    def encode_for_images(
        self, encoder: nn.Module, image_features: torch.Tensor, blocks: Sequence[BlockPrompts] = ()
    ) -> torch.Tensor:
        """Normalised text features of every (image, class) prompt: [B, E] -> [B, n_cls, E].

        The B x n_cls prompts are assembled chunk by chunk inside the text encoder (``encode_assembled``), so
        memory is bounded by its chunk size, not by B x n_cls. Pairs are ordered by the class's EOT position,
        so each chunk is cut close to its own prompts' length (exact under the causal mask).
        """
        ctx = self.conditioned_context(image_features)  # [B, n_ctx, D]
        n_images, n_cls = ctx.shape[0], self.n_cls
        class_eot = self.tokenized_prompts.argmax(dim=-1)  # [n_cls]
        classes = class_eot.argsort(stable=True).repeat_interleave(n_images)  # [B * n_cls], shortest first
        images = torch.arange(n_images, device=ctx.device).repeat(n_cls)  # [B * n_cls]
        features = encoder.encode_assembled(
            lambda rows, length: self.assemble(ctx[images[rows]], classes[rows], length), class_eot[classes], blocks
        )  # [B * n_cls, E] in pair order
        order = (images * n_cls + classes).argsort()  # pair order -> image-major
        return F.normalize(features[order].view(n_images, n_cls, -1), dim=-1)
