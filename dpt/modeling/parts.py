"""The part protocol: what a method adds to the frozen CLIP, and the one helper that puts it into a tower.

Why: a method is a composition of parts (a text-side part, block prompts in the vision and text towers),
not a row of switches in one constructor. The ViT forward (``prompted_vit.py``) and the text forward
(``text_encoder.py``) exist once and ask each ``BlockPrompts`` part what to put into the token sequence before
a block and whether to strip it after; a new kind of prompt is a new part class, never a branch there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn


class TextFeatures(NamedTuple):
    """Learned (or zero-shot) text features: raw [n_cls, E] unnormalised (CAVPT queries), normalized [n_cls, E]."""

    raw: torch.Tensor
    normalized: torch.Tensor


@dataclass
class PromptContext:
    """What parts may read during one forward pass of the prompted CLIP, and what they record.

    text: the class text features of this pass (learned, or zero-shot without a text part).
    zs_text: [n_cls, E] normalised zero-shot text features of the template.
    zs_image: [B, E] normalised frozen image features, when a part ``needs_zero_shot_image`` (else None).
    logit_scale: exp(CLIP's logit_scale), 0-dim.
    records: outputs of the parts by name; the prompted CLIP returns ``layer_logits`` (list of tensors) and
        ``topk_indices`` from here; a part may also keep what it prepared for its blocks under its own key.
    """

    text: Optional[TextFeatures] = None
    zs_text: Optional[torch.Tensor] = None
    zs_image: Optional[torch.Tensor] = None
    logit_scale: Optional[torch.Tensor] = None
    records: Dict[str, Any] = field(default_factory=dict)


class BlockPrompts(nn.Module):
    """A learnable part that puts tokens into one tower's sequence before some of its blocks.

    Subclasses set ``blocks`` (0-based block indices, in construction) and implement ``tokens_for``. The tower
    forward, for each block i in ``blocks``, calls ``tokens_for(i, x, context)`` with x [B, L, W] (the block's
    input, batch first) and puts the returned [B, n, W] tokens (None: nothing) into the sequence:

    - ``position = "end"``: after the last token; ``"front"``: after the first token (SOS / CLS), at 1..n;
    - ``replace = False``: inserted, and removed right after the block when ``strip`` (VPT-deep, CAVPT);
      ``replace = True``: the n tokens at that position are overwritten and flow on (deep text prompts of
      IVLP / MaPLe replace positions 1..n; MaPLe's vision prompts replace the last n);
    - ``embedding_tokens(x, context)``: [B, n, W] appended once after the vision embedding (CLS + patches +
      positions), before ln_pre, never stripped (MaPLe / IVLP layer-0 vision prompts). The text tower does not
      call it: its input prompts come from the text part.

    ``prepare(context)`` runs once per forward before the blocks (e.g. CAVPT's top-K selection). A part that
    is computed from another one (MaPLe's coupled vision prompts) keeps it as a plain reference, not a
    submodule, so each parameter is registered in one part only. Set ``needs_zero_shot_image`` /
    ``needs_learned_text`` when ``prepare`` reads ``context.zs_image`` / learned ``context.text``.
    """

    blocks: Tuple[int, ...] = ()
    position: ClassVar[str] = "end"
    replace: ClassVar[bool] = False
    strip: ClassVar[bool] = True
    needs_zero_shot_image: ClassVar[bool] = False
    needs_learned_text: ClassVar[bool] = False

    def prepare(self, context: PromptContext) -> None:
        """Compute per-forward inputs of the blocks (default: nothing)."""

    def embedding_tokens(self, x: torch.Tensor, context: PromptContext) -> Optional[torch.Tensor]:
        """[B, n, W] tokens appended after the vision embedding x [B, L, W], before ln_pre (default: none)."""
        return None

    def tokens_for(self, block_index: int, x: torch.Tensor, context: PromptContext) -> Optional[torch.Tensor]:
        """[B, n, W] tokens for block ``block_index`` given its input x [B, L, W], or None."""
        raise NotImplementedError(f"{type(self).__name__}.tokens_for")


class TextPrompts(nn.Module):
    """A text-side part: the class prompts' embeddings (CoOp's learned context, CoCoOp's per-image context).

    Without a text part the prompted CLIP uses the template's zero-shot text features. ``encode`` gives the
    class features [n_cls, E] through the one text forward, with ``blocks`` the text tower's block parts.
    An ``image_conditioned`` part instead implements ``encode_for_images`` ([B, E] -> [B, n_cls, E]), and
    the logits are then per image.
    """

    image_conditioned: ClassVar[bool] = False

    def encode(self, encoder: nn.Module, blocks: Sequence[BlockPrompts] = ()) -> torch.Tensor:
        """Unnormalised class text features [n_cls, E] in CLIP dtype."""
        raise NotImplementedError(f"{type(self).__name__}.encode")

    def encode_for_images(
        self, encoder: nn.Module, image_features: torch.Tensor, blocks: Sequence[BlockPrompts] = ()
    ) -> torch.Tensor:
        """Normalised text features of every (image, class) prompt: [B, E] -> [B, n_cls, E]."""
        raise NotImplementedError(f"{type(self).__name__}.encode_for_images")


def parts_by_block(parts: Sequence[BlockPrompts], n_blocks: int, tower: str) -> Dict[int, BlockPrompts]:
    """Block index -> the one part prompting it; checks each part's blocks are distinct and in range."""
    table: Dict[int, BlockPrompts] = {}
    for part in parts:
        name = type(part).__name__
        blocks = list(part.blocks)
        if len(set(blocks)) != len(blocks) or any(not 0 <= b < n_blocks for b in blocks):
            raise ValueError(f"{tower} part {name} blocks: expected distinct 0-based block indices in "
                             f"[0, {n_blocks}), got {blocks}")
        shared = sorted(set(blocks) & set(table))
        if shared:
            raise ValueError(f"{tower} parts {type(table[shared[0]]).__name__} and {name} overlap in blocks {shared}")
        table.update({block: part for block in blocks})
    return table


def insert_tokens(
    x: torch.Tensor, part: Optional[BlockPrompts], block_index: int, context: PromptContext
) -> Tuple[torch.Tensor, int]:
    """Put ``part``'s tokens for this block into x [L, B, W] (sequence first, as CLIP's blocks take it).

    Returns the new x and how many inserted tokens to strip after the block (0: none).
    """
    if part is None:
        return x, 0
    tokens = part.tokens_for(block_index, x.permute(1, 0, 2), context)  # [B, n, W] or None
    if tokens is None:
        return x, 0
    tokens = tokens.to(x.dtype).permute(1, 0, 2)  # [n, B, W]
    n = tokens.shape[0]
    front = part.position == "front"
    if part.replace:
        rest = x[1 + n :] if front else x[: x.shape[0] - n]
        return (torch.cat([x[:1], tokens, rest]) if front else torch.cat([rest, tokens])), 0
    x = torch.cat([x[:1], tokens, x[1:]]) if front else torch.cat([x, tokens])
    return x, (n if part.strip else 0)


def strip_tokens(x: torch.Tensor, part: Optional[BlockPrompts], n: int) -> torch.Tensor:
    """Remove the ``n`` tokens ``insert_tokens`` put into x [L, B, W] for ``part`` (after the block)."""
    if n == 0:
        return x
    if part.position == "front":
        return torch.cat([x[:1], x[1 + n :]])
    return x[: x.shape[0] - n]

