"""An open_clip CLIP presented with OpenAI CLIP's attribute surface, so the one ViT and text path serve both.

Why: docs/design.md "Where new things go": another backbone family is an adapter, not a branch in the prompt modules.
The prompted encoders read OpenAI's names (``visual.conv1 / class_embedding / positional_embedding / ln_pre /
transformer.resblocks / ln_post / proj``, ``token_embedding / positional_embedding / transformer / ln_final /
text_projection / logit_scale``) and call blocks and the text transformer on sequence-first ``[L, B, D]``
tensors with the causal mask inside. open_clip's blocks are batch-first and take the mask as an argument; the
views below translate exactly that, around open_clip's own modules (nothing is copied, so casts, device moves
and freezing reach them). Which open_clip towers are CLIP-equivalent is decided when loading
(``open_clip_loader.unsupported_reason``); this module does not import open_clip.
"""
from __future__ import annotations

from typing import List, NamedTuple, Tuple

import torch
import torch.nn as nn

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class ImagePreprocess(NamedTuple):
    """What a backbone expects at its input: size (H, W); per-channel mean / std after ToTensor; resize
    interpolation; resize_mode "shortest" (shorter side, then center crop: this project's test transform),
    "squash" or "longest" (open_clip's other modes)."""

    size: Tuple[int, int]
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"


class SequenceFirstBlock:
    """An open_clip residual block called like OpenAI's: ``block(x)`` and ``attn`` on ``[L, B, D]`` tensors.

    Not an ``nn.Module``: the block itself is registered once, in the wrapped vision tower.
    """

    def __init__(self, block: nn.Module, batch_first: bool) -> None:
        self.block = block
        self.batch_first = batch_first

    @property
    def ln_1(self) -> nn.Module:
        return self.block.ln_1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [L, B, D] -> [L, B, D]."""
        if not self.batch_first:
            return self.block(x)
        return self.block(x.transpose(0, 1)).transpose(0, 1)

    def attn(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, **kwargs):
        """``nn.MultiheadAttention`` on [L, B, D] inputs -> (output [L, B, D], weights as the module returns them)."""
        if not self.batch_first:
            return self.block.attn(query, key, value, **kwargs)
        output, weights = self.block.attn(query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1), **kwargs)
        return output.transpose(0, 1), weights


class _Blocks:
    """``transformer.resblocks`` of the vision view: a list of ``SequenceFirstBlock``."""

    def __init__(self, blocks: List[SequenceFirstBlock]) -> None:
        self.resblocks = blocks


class OpenCLIPVisionTower(nn.Module):
    """An open_clip ``VisionTransformer`` under OpenAI's names, blocks taking [L, B, width].

    ``forward`` is open_clip's own (``encode_image``). Patch dropout is skipped by the prompted path, which
    equals open_clip in eval mode (the frozen backbone never trains).
    """

    def __init__(self, tower: nn.Module) -> None:
        super().__init__()
        self.tower = tower
        batch_first = bool(getattr(tower.transformer, "batch_first", False))
        self.transformer = _Blocks([SequenceFirstBlock(block, batch_first) for block in tower.transformer.resblocks])
        self.input_resolution: int = tower.image_size[0]

    conv1 = property(lambda self: self.tower.conv1)
    class_embedding = property(lambda self: self.tower.class_embedding)
    positional_embedding = property(lambda self: self.tower.positional_embedding)
    ln_pre = property(lambda self: self.tower.ln_pre)
    ln_post = property(lambda self: self.tower.ln_post)
    proj = property(lambda self: self.tower.proj)
    output_dim = property(lambda self: self.tower.output_dim)  # E, read by CoCoOp's meta-net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image [B, 3, H, W] -> [B, E] (open_clip's forward)."""
        return self.tower(image)


class SequenceFirstTextTransformer(nn.Module):
    """open_clip's text ``Transformer`` called like OpenAI's: x [L, N, D] -> [L, N, D] under a causal mask.

    The mask is built for the actual length L (equal to open_clip's ``attn_mask[:L, :L]``), so the text
    encoder's cut at the longest EOT stays exact, as with OpenAI's blocks that slice their mask.
    """

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transformer(x.transpose(0, 1), attn_mask=_causal_mask(x)).transpose(0, 1)  # takes [N, L, D]

    @property
    def resblocks(self) -> List["CausalTextBlock"]:
        """The blocks one at a time (for block prompts), each called like OpenAI's on [L, N, D]."""
        batch_first = bool(getattr(self.transformer, "batch_first", True))
        return [CausalTextBlock(block, batch_first) for block in self.transformer.resblocks]


def _causal_mask(x: torch.Tensor) -> torch.Tensor:
    """[L, L] additive causal mask for x [L, N, D]."""
    length = x.shape[0]
    return torch.full((length, length), float("-inf"), device=x.device).triu_(1)


class CausalTextBlock(SequenceFirstBlock):
    """An open_clip text block called like OpenAI's: ``block(x)`` on [L, N, D] under the causal mask."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.batch_first:
            return self.block(x, attn_mask=_causal_mask(x))
        return self.block(x.transpose(0, 1), attn_mask=_causal_mask(x)).transpose(0, 1)


class OpenCLIP(nn.Module):
    """An open_clip ``CLIP`` (CLIP-style towers) with the attributes the prompted CLIP reads from OpenAI's CLIP.

    Args:
        model: ``open_clip.model.CLIP`` whose towers passed ``unsupported_reason``; its modules are taken over.
        preprocess: the input its weights expect (INPUT.SIZE / PIXEL_MEAN / PIXEL_STD are checked against it).

    ``visual`` is an ``OpenCLIPVisionTower`` for a ViT, or open_clip's ``ModifiedResNet`` as is (its forward
    equals OpenAI's; ZeroshotCLIP / CoOp only, as with OpenAI's ResNets).
    """

    def __init__(self, model: nn.Module, preprocess: ImagePreprocess) -> None:
        super().__init__()
        is_vit = hasattr(model.visual, "class_embedding")  # ResNets have none
        self.visual = OpenCLIPVisionTower(model.visual) if is_vit else model.visual
        self.token_embedding = model.token_embedding
        self.positional_embedding = model.positional_embedding
        self.transformer = SequenceFirstTextTransformer(model.transformer)
        self.ln_final = model.ln_final
        self.text_projection = model.text_projection
        self.logit_scale = model.logit_scale
        self.context_length: int = model.context_length
        self.vocab_size: int = model.vocab_size
        self.preprocess = preprocess

    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype (fp16 or fp32), as OpenAI's ``CLIP.dtype``."""
        return self.visual.conv1.weight.dtype

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """image [B, 3, H, W] -> [B, E] unnormalised, through open_clip's own forward (as OpenAI's ``encode_image``)."""
        return self.visual(image.type(self.dtype))
