"""CLIP's ViT forward with deep visual prompts (VPT) and class-aware prompts (CAVPT): the one ViT path.

Why: every method is CLIP's frozen ViT plus extra tokens appended to some blocks' inputs
(docs/reference.md 7.4, 7.6 steps 3-4); one block loop with one add/strip helper serves them all, and with
every switch off it equals ``clip_model.encode_image``.
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence

import torch
import torch.nn as nn

from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.backbones.open_clip_adapter import OpenCLIPVisionTower
from dpt.modeling.cavpt import ClassAwarePromptGenerator


class VisionOutput(NamedTuple):
    """features: [B, E] unnormalised; layer_logits: per CAVPT layer [B, K, n_cls];
    attention: last block's CLS-to-patch attention [B, n_patches] (head mean) or None."""

    features: torch.Tensor
    layer_logits: List[torch.Tensor]
    attention: Optional[torch.Tensor]


class VisualPrompts(nn.Module):
    """VPT-deep context: ``ctx`` [n_layers, n_ctx, width] ~ N(0, 0.02), one row per prompted block."""

    def __init__(self, n_layers: int, n_ctx: int, width: int) -> None:
        super().__init__()
        if n_layers < 0 or n_ctx < 0:
            raise ValueError(f"VisualPrompts: expected n_layers >= 0 and n_ctx >= 0, got {n_layers}, {n_ctx}")
        self.ctx = nn.Parameter(nn.init.normal_(torch.empty(n_layers, n_ctx, width), std=0.02))


def _layer_positions(layers: Sequence[int], n_blocks: int, what: str) -> Dict[int, int]:
    """Map block index -> row in the prompt tensor / CAVPT layer, checking range and uniqueness."""
    positions = {block: row for row, block in enumerate(layers)}
    if len(positions) != len(layers) or any(not 0 <= block < n_blocks for block in layers):
        raise ValueError(f"{what}: expected distinct 0-based block indices in [0, {n_blocks}), got {list(layers)}")
    return positions


class PromptedVisionEncoder(nn.Module):
    """CLIP ViT (conv1 -> CLS + positions -> ln_pre -> blocks -> ln_post(CLS) @ proj) with prompt switches.

    Holds a reference to CLIP's frozen ``visual`` module (OpenAI's ViT, or an open_clip ViT through the
    adapter's view with the same names); widths are read from it. A ResNet backbone (RN50, ... for
    ZeroshotCLIP / CoOp) is accepted with every switch off and runs CLIP's own forward.
    """

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual
        self.is_vit = isinstance(visual, (clip.model.VisionTransformer, OpenCLIPVisionTower))
        self.width: int = visual.conv1.weight.shape[0] if self.is_vit else 0
        self.n_blocks: int = len(visual.transformer.resblocks) if self.is_vit else 0

    def _embed(self, image: torch.Tensor) -> torch.Tensor:
        """image [B, 3, H, W] -> tokens [B, 1 + n_patches, width] after ln_pre (as CLIP's forward)."""
        visual = self.visual
        x = visual.conv1(image.type(visual.conv1.weight.dtype))  # [B, width, grid, grid]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, grid**2, width]
        zeros = torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
        cls = visual.class_embedding.to(x.dtype) + zeros  # [B, 1, width]
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)  # [B, 1 + grid**2, width]
        return visual.ln_pre(x)

    def forward(
        self,
        image: torch.Tensor,
        visual_prompts: Optional[torch.Tensor] = None,
        vpt_layers: Sequence[int] = (),
        cavpt: Optional[ClassAwarePromptGenerator] = None,
        cavpt_layers: Sequence[int] = (),
        class_queries: Optional[torch.Tensor] = None,
        return_attention: bool = False,
    ) -> VisionOutput:
        """Encode images, appending extra tokens at the end of chosen blocks' inputs and stripping them after.

        Args:
            image: [B, 3, R, R] normalised images.
            visual_prompts: [len(vpt_layers), n_ctx, width] VPT-deep ctx; row r goes to block vpt_layers[r].
            vpt_layers: 0-based blocks that get VPT tokens.
            cavpt: generator for CAVPT blocks; its layer j serves block cavpt_layers[j].
            cavpt_layers: 0-based blocks that get the K CAVPT tokens (no VPT tokens there, docs/reference.md 7.6).
            class_queries: [B, K, E] unnormalised learned text features of each image's top-K classes.
            return_attention: also return the last block's CLS-to-patch attention.
        """
        if not self.is_vit:
            if vpt_layers or cavpt_layers or return_attention:
                raise ValueError(
                    f"visual prompts and attention maps need a ViT CLIP backbone, got {type(self.visual).__name__}"
                )
            features = self.visual(image.type(self.visual.conv1.weight.dtype))
            return VisionOutput(features=features, layer_logits=[], attention=None)
        vpt_rows = _layer_positions(vpt_layers, self.n_blocks, "vpt_layers")
        cavpt_rows = _layer_positions(cavpt_layers, self.n_blocks, "cavpt_layers")
        if vpt_rows.keys() & cavpt_rows.keys():
            raise ValueError(f"vpt_layers {list(vpt_layers)} and cavpt_layers {list(cavpt_layers)} overlap")
        if vpt_rows and (visual_prompts is None or visual_prompts.shape[0] != len(vpt_rows)):
            raise ValueError(f"visual_prompts: expected {len(vpt_rows)} rows for vpt_layers {list(vpt_layers)}")
        if cavpt_rows and (cavpt is None or class_queries is None):
            raise ValueError("cavpt_layers given without a CAVPT generator and class_queries")

        x = self._embed(image).permute(1, 0, 2)  # NLD -> LND [L, B, width]
        batch, n_tokens = x.shape[1], x.shape[0]
        layer_logits: List[torch.Tensor] = []
        attention: Optional[torch.Tensor] = None
        for index, block in enumerate(self.visual.transformer.resblocks):
            extra: Optional[torch.Tensor] = None  # [n_extra, B, width]
            if index in vpt_rows:
                extra = visual_prompts[vpt_rows[index]].to(x.dtype).unsqueeze(1).expand(-1, batch, -1)
            elif index in cavpt_rows:
                generated = cavpt(cavpt_rows[index], x.detach().permute(1, 0, 2), class_queries)  # [B, K, *]
                extra = generated.tokens.to(x.dtype).permute(1, 0, 2)  # [K, B, width]
                layer_logits.append(generated.logits)
            if extra is not None:
                x = torch.cat([x, extra], dim=0)  # prompts at the end of the sequence, no positions
            if return_attention and index == self.n_blocks - 1:
                attention = self._cls_attention(block, x, n_tokens)
            x = block(x)[:n_tokens]  # strip the extra tokens right after the block

        features = self.visual.ln_post(x[0]) @ self.visual.proj  # CLS [B, width] -> [B, E]
        return VisionOutput(features=features, layer_logits=layer_logits, attention=attention)

    @staticmethod
    def _cls_attention(block: nn.Module, x: torch.Tensor, n_tokens: int) -> torch.Tensor:
        """Head-averaged attention of CLS to the patches in ``block`` for input x [L, B, width] -> [B, n_patches]."""
        hidden = block.ln_1(x)
        _, weights = block.attn(hidden, hidden, hidden, need_weights=True, average_attn_weights=True)  # [B, L, L]
        return weights[:, 0, 1:n_tokens]
