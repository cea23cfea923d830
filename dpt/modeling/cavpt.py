"""Class-aware visual prompt (CAVPT) generator of DPT (docs/reference.md 7.6 step 4).

Why: DPT turns the learned text features of each image's zero-shot top-K classes into K visual prompt
tokens by cross-attending to the image tokens; a per-layer n_cls-way classifier on the attended feature
gives the CAVPT loss.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dpt.modeling.parts import BlockPrompts, PromptContext


class CAVPTOutput(NamedTuple):
    """tokens: [B, K, W] prompts appended to the block input; logits: [B, K, n_cls] per-slot class logits."""

    tokens: torch.Tensor
    logits: torch.Tensor


class CAVPTLayer(nn.Module):
    """Weights of one CAVPT layer; built by ``ClassAwarePromptGenerator`` (which fixes the RNG order)."""

    def __init__(
        self,
        meta_net: nn.Linear,
        k_proj: nn.Linear,
        q_proj: nn.Linear,
        v_proj: nn.Linear,
        norm: nn.LayerNorm,
        classifier: nn.Linear,
        token_norm: nn.LayerNorm,
        key_tokens: torch.Tensor,
    ) -> None:
        super().__init__()
        self.meta_net = meta_net  # text_dim -> W, with bias: q0
        self.q_proj = q_proj  # W -> attn_dim, no bias
        self.k_proj = k_proj  # W -> attn_dim, no bias
        self.v_proj = v_proj  # W -> W, no bias, applied after aggregation
        self.norm = norm  # LN before the classifier
        self.classifier = classifier  # W -> n_cls, no bias
        self.token_norm = token_norm  # LN of o + q0 -> tokens
        self.key_tokens = nn.Parameter(key_tokens)  # [n_key_tokens, W] extra keys/values

    def forward(self, sequence: torch.Tensor, queries: torch.Tensor) -> CAVPTOutput:
        """sequence [B, L, W] (already detached by the caller), queries [B, K, text_dim] -> CAVPTOutput."""
        dtype = self.key_tokens.dtype
        q0 = self.meta_net(queries.to(dtype))  # [B, K, W]
        extra = self.key_tokens.unsqueeze(0).expand(sequence.shape[0], -1, -1)  # [B, n_key, W]
        kv = torch.cat([sequence.to(dtype), extra], dim=1)  # [B, L + n_key, W]
        # single head; scale 1/sqrt(attn_dim); values are kv itself, projected after aggregation
        attended = F.scaled_dot_product_attention(self.q_proj(q0), self.k_proj(kv), kv)  # [B, K, W]
        o = self.v_proj(attended)
        return CAVPTOutput(tokens=self.token_norm(o + q0), logits=self.classifier(self.norm(o)))


class ClassAwarePromptGenerator(nn.Module):
    """Per-layer CAVPT weights (``shared=True``: one set for all layers, the paper's sharing ablation).

    Args:
        n_layers: number of CAVPT layers (13 - BOTTOMLIMIT for ViT-B/32).
        text_dim: text feature size E (512 for ViT-B/32).
        width: vision width W (768 for ViT-B/32).
        n_cls: classes of the per-layer classifiers.
        n_key_tokens: extra learnable key/value tokens per layer (hard-coded 10 officially).
        attn_dim: query/key size of the single-head attention (32 officially).

    State dict: ``layers.{j}.{meta_net,q_proj,k_proj,v_proj,norm,classifier,token_norm}.*`` and
    ``layers.{j}.key_tokens``; ``n_cls_dependent_keys()`` names the classifier weights.
    """

    def __init__(
        self,
        n_layers: int,
        text_dim: int,
        width: int,
        n_cls: int,
        n_key_tokens: int = 10,
        attn_dim: int = 32,
        shared: bool = False,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"ClassAwarePromptGenerator n_layers: expected >= 1, got {n_layers}")
        if n_key_tokens < 0:
            raise ValueError(f"ClassAwarePromptGenerator n_key_tokens: expected >= 0, got {n_key_tokens}")
        n_sets = 1 if shared else n_layers
        # Construction order as the official code (docs/reference.md 7.7): meta nets, per-layer attention
        # (W_k, W_q, W_v), LNs, classifiers, LN2s, extra keys.
        meta_nets = [nn.Linear(text_dim, width) for _ in range(n_sets)]
        attentions = [  # (W_k, W_q, W_v)
            (
                nn.Linear(width, attn_dim, bias=False),
                nn.Linear(width, attn_dim, bias=False),
                nn.Linear(width, width, bias=False),
            )
            for _ in range(n_sets)
        ]
        norms = [nn.LayerNorm(width) for _ in range(n_sets)]
        classifiers = [nn.Linear(width, n_cls, bias=False) for _ in range(n_sets)]
        token_norms = [nn.LayerNorm(width) for _ in range(n_sets)]
        key_tokens = nn.init.normal_(torch.empty(n_sets, n_key_tokens, width), std=0.02)
        self.layers = nn.ModuleList(
            CAVPTLayer(meta_nets[j], *attentions[j], norms[j], classifiers[j], token_norms[j], key_tokens[j])
            for j in range(n_sets)
        )
        self.n_layers = n_layers
        self.shared = shared

    def n_cls_dependent_keys(self) -> List[str]:
        """State-dict keys whose shape depends on n_cls (skipped when loading across datasets)."""
        return [f"layers.{j}.classifier.weight" for j in range(len(self.layers))]

    def forward(self, layer: int, sequence: torch.Tensor, queries: torch.Tensor) -> CAVPTOutput:
        """CAVPT layer ``layer`` (0-based among CAVPT layers).

        Args:
            sequence: [B, L, W] current block input (CLS + patches), detached by the caller.
            queries: [B, K, E] learned, unnormalised text features of each image's top-K classes.
        """
        if not 0 <= layer < self.n_layers:
            raise IndexError(f"CAVPT layer {layer} out of range for {self.n_layers} layers")
        return self.layers[0 if self.shared else layer](sequence, queries)


class ClassAwarePrompts(ClassAwarePromptGenerator, BlockPrompts):
    """DPT's vision-side CAVPT part: K class-aware tokens appended to each of ``blocks``, stripped after.

    Before the blocks it selects each image's zero-shot top-K classes (frozen image features against the
    template's text features) and takes their learned, unnormalised text features as queries (docs/reference.md
    7.6 step 2, 7.8 #12); block blocks[j] gets the tokens of CAVPT layer j and records its logits.
    Records ``topk_indices`` [B, K] (descending) and ``layer_logits`` (per layer [B, K, n_cls]).

    Args:
        blocks: 0-based ViT blocks with CAVPT (blocks BOTTOMLIMIT-1 .. last, top-down).
        n_select: K = TRAINER.SELECTED_COVPT.CPN, capped at n_cls with a printed warning.
        text_dim, width, n_cls, n_key_tokens, attn_dim, shared: as ``ClassAwarePromptGenerator``.

    State dict: the generator's (``layers.{j}.*``), the official ``image_encoder.transformer.extractor``.
    """

    needs_zero_shot_image = True
    needs_learned_text = True

    def __init__(
        self,
        blocks: Sequence[int],
        n_select: int,
        text_dim: int,
        width: int,
        n_cls: int,
        n_key_tokens: int = 10,
        attn_dim: int = 32,
        shared: bool = False,
    ) -> None:
        super().__init__(len(blocks), text_dim, width, n_cls, n_key_tokens, attn_dim, shared)
        self.blocks = tuple(int(b) for b in blocks)
        if n_select > n_cls:
            print(f"Warning: CAVPT length {n_select} capped at the number of classes {n_cls}")
        self.n_select = max(0, min(n_select, n_cls))
        self._layers = {block: layer for layer, block in enumerate(self.blocks)}

    def prepare(self, context: PromptContext) -> None:
        """Zero-shot top-K classes of each image and their learned text features as queries [B, K, E]."""
        with torch.no_grad():
            zs_image = context.zs_image
            zs_logits = context.logit_scale * zs_image @ context.zs_text.to(zs_image.dtype).t()  # [B, n_cls]
            topk = zs_logits.topk(self.n_select, dim=-1).indices  # [B, K] descending
        context.records["topk_indices"] = topk
        context.records["layer_logits"] = []
        context.records["cavpt_queries"] = context.text.raw[topk]  # [B, K, E] unnormalised

    def tokens_for(self, block_index: int, x: torch.Tensor, context: PromptContext) -> Optional[torch.Tensor]:
        """The K tokens of this block's CAVPT layer from the detached block input x [B, L, W]: [B, K, W]."""
        generated = self(self._layers[block_index], x.detach(), context.records["cavpt_queries"])
        context.records["layer_logits"].append(generated.logits)
        return generated.tokens
