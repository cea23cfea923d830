"""VPT-deep visual prompts (docs/reference.md 7.4): learned tokens appended to chosen ViT blocks' inputs, stripped after.

Why: VPT, VLP and DPT's lower blocks share this one vision-side part; its state dict is the official
``image_encoder.transformer.ctx_learner`` (``ctx``), so official checkpoints load into it unchanged.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn

from dpt.modeling.parts import BlockPrompts, PromptContext


class VisualPrompts(BlockPrompts):
    """VPT-deep context ``ctx`` [len(blocks), n_ctx, width] ~ N(0, 0.02); row r is appended to block blocks[r].

    Args:
        blocks: 0-based ViT blocks that get prompts (all blocks for VPT / VLP; below CAVPT for DPT).
        n_ctx: TRAINER.VPT.N_CTX tokens per block (0 allowed: then it changes nothing).
        width: the ViT width W.
    """

    def __init__(self, blocks: Sequence[int], n_ctx: int, width: int) -> None:
        super().__init__()
        self.blocks = tuple(int(b) for b in blocks)
        if n_ctx < 0:
            raise ValueError(f"VisualPrompts: expected n_ctx >= 0, got {n_ctx}")
        self.ctx = nn.Parameter(nn.init.normal_(torch.empty(len(self.blocks), n_ctx, width), std=0.02))
        self._rows = {block: row for row, block in enumerate(self.blocks)}

    def tokens_for(self, block_index: int, x: torch.Tensor, context: PromptContext) -> Optional[torch.Tensor]:
        """The block's row of ``ctx``, the same for every image: [B, n_ctx, W]."""
        return self.ctx[self._rows[block_index]].to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
