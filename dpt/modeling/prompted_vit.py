"""CLIP's ViT forward with block-prompt parts (VPT-deep, CAVPT, ...): the one ViT path.

Why: every method is CLIP's frozen ViT plus tokens put into some blocks' inputs (docs/reference.md 7.4, 7.6
steps 3-4); one block loop asks each part (``parts.py``) what to insert and strip, and without parts it
equals ``clip_model.encode_image``.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence

import torch
import torch.nn as nn

from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.backbones.open_clip_adapter import OpenCLIPVisionTower
from dpt.modeling.parts import BlockPrompts, PromptContext, insert_tokens, parts_by_block, strip_tokens


class VisionOutput(NamedTuple):
    """features: [B, E] unnormalised; layer_logits: per CAVPT layer [B, K, n_cls] (``context.records``);
    attention: last block's CLS-to-patch attention [B, n_patches] (head mean) or None."""

    features: torch.Tensor
    layer_logits: List[torch.Tensor]
    attention: Optional[torch.Tensor]


class PromptedVisionEncoder(nn.Module):
    """CLIP ViT (conv1 -> CLS + positions -> ln_pre -> blocks -> ln_post(CLS) @ proj) with block-prompt parts.

    Holds a reference to CLIP's frozen ``visual`` module (OpenAI's ViT, or an open_clip ViT through the
    adapter's view with the same names); widths are read from it. A ResNet backbone (RN50, ... for
    ZeroshotCLIP / CoOp) is accepted without parts and runs CLIP's own forward.
    """

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual
        self.is_vit = isinstance(visual, (clip.model.VisionTransformer, OpenCLIPVisionTower))
        self.width: int = visual.conv1.weight.shape[0] if self.is_vit else 0
        self.n_blocks: int = len(visual.transformer.resblocks) if self.is_vit else 0

    def _embed(self, image: torch.Tensor) -> torch.Tensor:
        """image [B, 3, H, W] -> tokens [B, 1 + n_patches, width] with positions, before ln_pre."""
        visual = self.visual
        x = visual.conv1(image.type(visual.conv1.weight.dtype))  # [B, width, grid, grid]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, grid**2, width]
        zeros = torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
        cls = visual.class_embedding.to(x.dtype) + zeros  # [B, 1, width]
        return torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)  # [B, 1 + grid**2, width]

    def forward(
        self,
        image: torch.Tensor,
        parts: Sequence[BlockPrompts] = (),
        context: Optional[PromptContext] = None,
        return_attention: bool = False,
    ) -> VisionOutput:
        """Encode images, asking each part for tokens before its blocks (``parts.py`` says where they go).

        Args:
            image: [B, 3, R, R] normalised images.
            parts: vision-side block prompts (VPT-deep, CAVPT, ...), at most one per block.
            context: what the parts read (``prepare`` has run) and record; a fresh one if None.
            return_attention: also return the last block's CLS-to-patch attention.
        """
        if not self.is_vit:
            if parts or return_attention:
                raise ValueError(
                    f"visual prompts and attention maps need a ViT CLIP backbone, got {type(self.visual).__name__}"
                )
            features = self.visual(image.type(self.visual.conv1.weight.dtype))
            return VisionOutput(features=features, layer_logits=[], attention=None)
        context = PromptContext() if context is None else context
        by_block = parts_by_block(parts, self.n_blocks, "vision")

        x = self._embed(image)  # [B, L, width]
        n_tokens = x.shape[1]  # CLS + patches
        for part in parts:
            extra = part.embedding_tokens(x, context)  # [B, n, width] or None
            if extra is not None:
                x = torch.cat([x, extra.to(x.dtype)], dim=1)
        x = self.visual.ln_pre(x).permute(1, 0, 2)  # NLD -> LND [L, B, width]
        attention: Optional[torch.Tensor] = None
        for index, block in enumerate(self.visual.transformer.resblocks):
            part = by_block.get(index)
            x, inserted = insert_tokens(x, part, index, context)
            if return_attention and index == self.n_blocks - 1:
                attention = self._cls_attention(block, x, n_tokens)
            x = strip_tokens(block(x), part, inserted)

        features = self.visual.ln_post(x[0]) @ self.visual.proj  # CLS [B, width] -> [B, E]
        return VisionOutput(features, context.records.get("layer_logits", []), attention)

    @staticmethod
    def _cls_attention(block: nn.Module, x: torch.Tensor, n_tokens: int) -> torch.Tensor:
        """Head-averaged attention of CLS to the patches in ``block`` for input x [L, B, width] -> [B, n_patches]."""
        hidden = block.ln_1(x)
        _, weights = block.attn(hidden, hidden, hidden, need_weights=True, average_attn_weights=True)  # [B, L, L]
        return weights[:, 0, 1:n_tokens]
