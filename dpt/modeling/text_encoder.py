"""CLIP's text forward on prompt embeddings: the one text path for hand-crafted and learned prompts.

Why: CoOp-style prompt learning feeds embeddings, not token ids, into CLIP's frozen text transformer
(docs/reference.md 7.1). The fast path cuts every chunk of prompts to its longest EOT position + 1, which is
exact because the causal mask keeps positions after EOT from influencing the EOT row, and clip-anytorch's
ResidualAttentionBlock slices its mask to the sequence length. When gradients flow and there is more than
one chunk (ImageNet's 1000 classes), each chunk is activation-checkpointed, so training memory is bounded
by one chunk at the cost of a second forward of the text (same values and gradients). Prompts may also be
assembled chunk by chunk (``encode_assembled``), so CoCoOp's images x classes prompts never exist all at once.
Block-prompt parts of the text tower (``parts.py``, e.g. deep text prompts) are asked for tokens before
each block, as in the ViT forward.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.parts import BlockPrompts, PromptContext, insert_tokens, parts_by_block, strip_tokens


class TextEncoder(nn.Module):
    """Positional embedding -> CLIP transformer (causal) -> ln_final -> EOT row -> @ text_projection.

    Holds references to CLIP's frozen text modules (never copies). ``truncate=False`` is the plain
    77-token reference path, equal to ``clip_model.encode_text``. Both paths encode ``chunk_size`` prompts at
    a time.
    """

    def __init__(self, clip_model: clip.model.CLIP, truncate: bool = True, chunk_size: int = 256) -> None:
        super().__init__()
        if chunk_size < 1:
            raise ValueError(f"TextEncoder chunk_size: expected a positive int, got {chunk_size}")
        self.token_embedding = clip_model.token_embedding
        self.transformer = clip_model.transformer
        self.ln_final = clip_model.ln_final
        self.positional_embedding = clip_model.positional_embedding
        self.text_projection = clip_model.text_projection
        self.truncate = truncate
        self.chunk_size = chunk_size

    @property
    def dtype(self) -> torch.dtype:
        """CLIP's compute dtype on the text side (fp16 or fp32)."""
        return self.text_projection.dtype

    def _encode(self, embeds: torch.Tensor, eot: torch.Tensor, parts: Sequence[BlockPrompts] = ()) -> torch.Tensor:
        """embeds [N, L, D], eot [N] (each < L) -> [N, E]."""
        length = embeds.shape[1]
        x = embeds.type(self.dtype) + self.positional_embedding[:length].type(self.dtype)
        x = x.permute(1, 0, 2)  # NLD -> LND
        if parts:
            context = PromptContext()
            blocks = self.transformer.resblocks
            by_block = parts_by_block(parts, len(blocks), "text")
            for index, block in enumerate(blocks):
                part = by_block.get(index)
                x, inserted = insert_tokens(x, part, index, context)
                x = strip_tokens(block(x), part, inserted)
        else:
            x = self.transformer(x)  # CLIP's own block stack
        x = self.ln_final(x.permute(1, 0, 2)).type(self.dtype)  # LND -> NLD, [N, L, D]
        return x[torch.arange(x.shape[0], device=x.device), eot] @ self.text_projection

    def forward(
        self, prompt_embeds: torch.Tensor, tokenized: torch.Tensor, parts: Sequence[BlockPrompts] = ()
    ) -> torch.Tensor:
        """Encode prompts given as token embeddings.

        Args:
            prompt_embeds: [N, 77, D] token embeddings (CLIP dtype), D = transformer width.
            tokenized: [N, 77] int64 token ids; the EOT (highest id) position picks the output row.
            parts: text-tower block prompts (none: CLIP's plain text forward).

        Returns:
            [N, E] unnormalised text features in CLIP dtype.
        """
        return self.encode_assembled(
            lambda rows, length: prompt_embeds[rows, :length], tokenized.argmax(dim=-1), parts
        )

    def encode_assembled(
        self, assemble: Callable[[slice, int], torch.Tensor], eot: torch.Tensor, parts: Sequence[BlockPrompts] = ()
    ) -> torch.Tensor:
        """Encode N prompts whose embeddings are built one chunk at a time.

        Args:
            assemble: ``assemble(rows, length)`` -> [n, length, D] embeddings (CLIP dtype) of the prompts
                ``rows`` (a slice of range(N)), cut to their first ``length`` tokens. Under recomputation it
                runs again in the backward pass, so a chunk's embeddings are not kept either.
            eot: [N] int64 EOT position of each prompt (picks the output row; the fast path cuts there).
            parts: text-tower block prompts; their tokens must not move the EOT (deep prompts replace 1..n).

        Returns:
            [N, E] unnormalised text features in CLIP dtype.
        """
        n_prompts = eot.shape[0]
        recompute = torch.is_grad_enabled() and n_prompts > self.chunk_size
        chunks = []
        for start in range(0, n_prompts, self.chunk_size):
            rows = slice(start, start + self.chunk_size)
            chunk_eot = eot[rows]
            length = int(chunk_eot.max()) + 1 if self.truncate else self.positional_embedding.shape[0]
            encode = functools.partial(self._encode_rows, assemble, rows, length, chunk_eot, parts)
            chunks.append(checkpoint(encode, use_reentrant=False) if recompute else encode())
        return torch.cat(chunks)

    def _encode_rows(
        self,
        assemble: Callable[[slice, int], torch.Tensor],
        rows: slice,
        length: int,
        eot: torch.Tensor,
        parts: Sequence[BlockPrompts],
    ) -> torch.Tensor:
        return self._encode(assemble(rows, length), eot, parts)

    def encode_text_tokens(self, tokenized: torch.Tensor) -> torch.Tensor:
        """Hand-crafted prompts: tokenized [N, 77] int64 -> [N, E] unnormalised (CLIP dtype), embedded one chunk
        at a time (PromptSRC's 60 templates x 1000 classes would be 8.8 GiB of fp32 embeddings at once)."""
        return self.encode_assembled(lambda rows, length: self.token_embedding(tokenized[rows, :length]),
                                     tokenized.argmax(dim=-1))
