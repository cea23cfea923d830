"""Deep prompts in both towers (IVLP, MaPLe, PromptSRC; docs/reference.md 10.1-10.3), as block-prompt parts.

Why: these methods learn the layer-0 text context (the text part, ``word_initialised_context``), one prompt
per further text block (``DeepTextPrompts``: positions 1..n replaced before text blocks 1..J_t-1) and vision
prompts, either independent (``DeepVisionPrompts``: appended after the embedding before ln_pre, then the last
n tokens replaced before blocks 1..J_v-1) or computed from the text prompts (``CoupledVisionPrompts``, MaPLe:
vision prompt i = Linear_i(text prompt i)). The one text and ViT forward run them; nothing here is a forward.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn

from dpt.modeling.parts import BlockPrompts, PromptContext
from dpt.modeling.prompt_learner import PromptLearner


def prompted_blocks(depth: int, n_blocks: int, what: str) -> Tuple[int, ...]:
    """Blocks 1..depth-1 (block 0 takes the layer-0 prompts), clipped to the tower with one printed line."""
    if depth > n_blocks:
        print(f"Note: {what} is {depth} but the tower has {n_blocks} blocks; prompting blocks 0..{n_blocks - 1}")
    return tuple(range(1, min(depth, n_blocks)))


def _normal_prompts(count: int, n_ctx: int, width: int) -> nn.ParameterList:
    return nn.ParameterList(nn.Parameter(nn.init.normal_(torch.empty(n_ctx, width), std=0.02)) for _ in range(count))


def word_initialised_context(clip_model, classnames: Sequence[str], n_ctx: int, ctx_init: str) -> PromptLearner:
    """Prompts "<ctx_init> {class}." whose first ``n_ctx`` words are learned (from their token embeddings).

    With n_ctx 2 and "a photo of a", "a photo" is learned and "of a" stays fixed; an empty ``ctx_init`` gives
    ``n_ctx`` N(0, 0.02) vectors before "{class}.".
    """
    words = ctx_init.replace("_", " ").split()
    if not words:
        return PromptLearner(clip_model, classnames, n_ctx)
    learned, fixed = " ".join(words[:n_ctx]), " ".join(words[n_ctx:])
    return PromptLearner(clip_model, classnames, ctx_init=learned, template=f"{fixed} {{}}.".strip())


class DeepTextPrompts(BlockPrompts):
    """One [n_ctx, width] prompt per text block in ``blocks`` (N(0, 0.02)); replaces positions 1..n_ctx."""

    position = "front"
    replace = True

    def __init__(self, blocks: Sequence[int], n_ctx: int, width: int) -> None:
        super().__init__()
        self.blocks = tuple(blocks)
        self.prompts = _normal_prompts(len(self.blocks), n_ctx, width)
        self._index = {block: i for i, block in enumerate(self.blocks)}

    def prompt(self, block_index: int) -> torch.Tensor:
        """[n_ctx, width] prompt of text block ``block_index``."""
        return self.prompts[self._index[block_index]]

    def tokens_for(self, block_index: int, x: torch.Tensor, context: PromptContext) -> Optional[torch.Tensor]:
        return self.prompt(block_index).expand(x.shape[0], -1, -1)


class DeepVisionPrompts(BlockPrompts):
    """Independent vision prompts: ``first`` [n_ctx, W] appended before ln_pre, one prompt per block in
    ``blocks`` replacing the last n_ctx tokens (all N(0, 0.02))."""

    replace = True

    def __init__(self, blocks: Sequence[int], n_ctx: int, width: int) -> None:
        super().__init__()
        self.blocks = tuple(blocks)
        self.first = nn.Parameter(nn.init.normal_(torch.empty(n_ctx, width), std=0.02))
        self.prompts = _normal_prompts(len(self.blocks), n_ctx, width)
        self._index = {block: i for i, block in enumerate(self.blocks)}

    def embedding_tokens(self, x: torch.Tensor, context: PromptContext) -> Optional[torch.Tensor]:
        return self.first.expand(x.shape[0], -1, -1)

    def tokens_for(self, block_index: int, x: torch.Tensor, context: PromptContext) -> Optional[torch.Tensor]:
        return self.prompts[self._index[block_index]].expand(x.shape[0], -1, -1)


class CoupledVisionPrompts(BlockPrompts):
    """MaPLe: vision prompt i = couplings[i](text prompt i), a Linear(text width -> vision width) per block.

    couplings[0] maps the layer-0 text context (appended before ln_pre); couplings[k] the deep text prompt of
    block ``deep_text.blocks[k - 1]``, replacing the last n tokens before that vision block. The text parts are
    plain references, so their parameters stay registered in their own parts.
    """

    replace = True

    def __init__(self, context: PromptLearner, deep_text: DeepTextPrompts, text_width: int, width: int) -> None:
        super().__init__()
        self.blocks = deep_text.blocks
        self._text = (context, deep_text)
        self.couplings = nn.ModuleList(nn.Linear(text_width, width) for _ in range(1 + len(self.blocks)))

    def embedding_tokens(self, x: torch.Tensor, context: PromptContext) -> Optional[torch.Tensor]:
        ctx = self._text[0].ctx
        return self.couplings[0](ctx.to(self.couplings[0].weight.dtype)).expand(x.shape[0], -1, -1)

    def tokens_for(self, block_index: int, x: torch.Tensor, context: PromptContext) -> Optional[torch.Tensor]:
        coupling = self.couplings[1 + self.blocks.index(block_index)]
        return coupling(self._text[1].prompt(block_index)).expand(x.shape[0], -1, -1)
