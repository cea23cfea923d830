"""Sizes of a CLIP's two towers, read from its modules (OpenAI CLIP, or open_clip through the adapter).

Why: the parts are sized by the tower they prompt (blocks to prompt, token width), whatever the backbone.
"""
from __future__ import annotations


def vision_layers(clip_model) -> int:
    """Number of blocks of CLIP's vision transformer (12 for ViT-B, 24 for ViT-L)."""
    return len(clip_model.visual.transformer.resblocks)


def vision_width(clip_model) -> int:
    """Width W of CLIP's vision transformer (768 for ViT-B)."""
    return clip_model.visual.conv1.weight.shape[0]


def text_layers(clip_model) -> int:
    """Number of blocks of CLIP's text transformer (12)."""
    return len(clip_model.transformer.resblocks)


def text_width(clip_model) -> int:
    """Width D of CLIP's text transformer (512 for ViT-B)."""
    return clip_model.ln_final.weight.shape[0]
