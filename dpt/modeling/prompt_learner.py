"""CoOp's learnable text context (docs/reference.md 7.1): [SOS] + context vectors + class name + "." + [EOT].

The text-side part of CoOp, VLP and DPT; CoCoOp's image-conditioned context extends it
(``conditioned_prompt_learner.py``).
"""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn

from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.parts import BlockPrompts, TextPrompts
from dpt.modeling.prompt_tokens import tokenize_class_prompts

CLASS_TOKEN_POSITIONS = ("end", "middle", "front")


def _assembly_index(name_lens: Sequence[int], n_ctx: int, position: str, context_length: int) -> torch.Tensor:
    """Per class, where each output token comes from in the "end" layout [SOS, ctx, class, rest] -> [n_cls, 77].

    Why: middle/front are permutations of the end layout within the first EOT+1 positions, so one gather
    assembles all classes at once (CoOp loops over classes) and EOT positions stay where the tokens say.
    """
    rows: List[List[int]] = []
    for name_len in name_lens:
        ctx = list(range(1, 1 + n_ctx))
        name = list(range(1 + n_ctx, 1 + n_ctx + name_len))
        rest = list(range(1 + n_ctx + name_len, context_length))
        if position == "front":
            rows.append([0] + name + ctx + rest)
        else:
            half = n_ctx // 2
            rows.append([0] + ctx[:half] + name + ctx[half:] + rest)
    return torch.tensor(rows, dtype=torch.long)


class PromptLearner(TextPrompts):
    """Learned context vectors shared by all classes (or per class with ``csc``), assembled into prompts.

    Args:
        clip_model: frozen CLIP; its token embedding gives the SOS/class/EOT embeddings and ``ctx_init``.
        classnames: class names ("_" becomes a space), in label order.
        n_ctx: TRAINER.COOP.N_CTX, context length when ``ctx_init`` is empty.
        ctx_init: TRAINER.COOP.CTX_INIT; words whose token embeddings initialise the context (n_ctx = word
            count, as CoOp: one token per word assumed). Empty: ctx ~ N(0, 0.02).
        csc: TRAINER.COOP.CSC, class-specific contexts [n_cls, n_ctx, D] (ignored with ``ctx_init``, as CoOp).
        class_token_position: TRAINER.COOP.CLASS_TOKEN_POSITION, "end" / "middle" / "front".
        template: the fixed text after the context, with "{}" for the class name (IVLP / MaPLe keep the
            unlearned words of their CTX_INIT here, e.g. "of a {}."); other layouts than "end" need "{}.".

    Raises ``ClassNameTooLong`` (a ValueError) when a class name does not fit beside the context.

    State dict (CoOp's keys, so official checkpoints load unchanged): ``ctx`` [n_ctx, D] or [n_cls, n_ctx, D],
    ``token_prefix`` [n_cls, 1, D] and ``token_suffix`` [n_cls, 77 - 1 - n_ctx, D] (class-name dependent;
    loaders drop them). Non-persistent: ``tokenized_prompts`` [n_cls, 77] int64.
    """

    def __init__(
        self,
        clip_model: clip.model.CLIP,
        classnames: Sequence[str],
        n_ctx: int = 16,
        ctx_init: str = "",
        csc: bool = False,
        class_token_position: str = "end",
        template: str = "{}.",
    ) -> None:
        super().__init__()
        if class_token_position not in CLASS_TOKEN_POSITIONS:
            raise ValueError(
                f"TRAINER.COOP.CLASS_TOKEN_POSITION: expected one of {CLASS_TOKEN_POSITIONS}, "
                f"got {class_token_position!r}"
            )
        if not classnames:
            raise ValueError("PromptLearner: classnames is empty")
        if template != "{}." and class_token_position != "end":
            raise ValueError(f"PromptLearner template {template!r}: only the 'end' class token position takes "
                             f"fixed words after the context, got {class_token_position!r}")
        embedding = clip_model.token_embedding
        dtype = clip_model.dtype
        device = embedding.weight.device
        ctx_dim = clip_model.ln_final.weight.shape[0]
        context_length = clip_model.context_length

        ctx_init = ctx_init.replace("_", " ").strip()
        if ctx_init:
            n_ctx = len(ctx_init.split(" "))
            with torch.no_grad():
                init_tokens = clip.tokenize(ctx_init).to(device)
                ctx_vectors = embedding(init_tokens).float()[0, 1 : 1 + n_ctx].clone()  # [n_ctx, D]
            prompt_prefix = ctx_init
        else:
            if n_ctx < 1:
                raise ValueError(f"TRAINER.COOP.N_CTX: expected >= 1 without CTX_INIT, got {n_ctx}")
            shape = (len(classnames), n_ctx, ctx_dim) if csc else (n_ctx, ctx_dim)
            ctx_vectors = nn.init.normal_(torch.empty(shape, device=device), std=0.02)
            prompt_prefix = " ".join(["X"] * n_ctx)
        # fp32 master weights even for a fp16 CLIP, so one loss scaler can unscale every optimiser's gradients
        self.ctx = nn.Parameter(ctx_vectors)

        names = [name.replace("_", " ") for name in classnames]
        tokenized = tokenize_class_prompts(names, template, context_length, prompt_prefix, n_ctx).to(device)
        name_tokens = clip.tokenize(names, context_length=context_length)
        self.name_lens: List[int] = [int((row != 0).sum()) - 2 for row in name_tokens]  # minus SOS and EOT
        with torch.no_grad():
            token_embeds = embedding(tokenized).type(dtype)  # [n_cls, 77, D]
        self.register_buffer("token_prefix", token_embeds[:, :1].clone())  # SOS
        self.register_buffer("token_suffix", token_embeds[:, 1 + n_ctx :].clone())  # class, ".", EOT, padding
        self.register_buffer("tokenized_prompts", tokenized, persistent=False)
        if class_token_position != "end":
            index = _assembly_index(self.name_lens, n_ctx, class_token_position, context_length)
            self.register_buffer("assembly_index", index.to(device), persistent=False)
        self.n_cls = len(names)
        self.n_ctx = n_ctx
        self.prompt_prefix = prompt_prefix
        self.class_token_position = class_token_position

    def forward(self) -> torch.Tensor:
        """Prompt embeddings [n_cls, 77, D] (CLIP dtype), to pair with ``tokenized_prompts``."""
        ctx = self.ctx.to(self.token_prefix.dtype)
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(self.n_cls, -1, -1)  # [n_cls, n_ctx, D]
        prompts = torch.cat([self.token_prefix, ctx, self.token_suffix], dim=1)  # end layout [n_cls, 77, D]
        if self.class_token_position == "end":
            return prompts
        index = self.assembly_index.unsqueeze(-1).expand(-1, -1, prompts.shape[-1])  # [n_cls, 77, D]
        return prompts.gather(1, index)

    def encode(self, encoder: nn.Module, blocks: Sequence[BlockPrompts] = ()) -> torch.Tensor:
        """Class text features [n_cls, E] (unnormalised, CLIP dtype) of the assembled prompts."""
        return encoder(self(), self.tokenized_prompts, blocks)

    def assemble(self, ctx: torch.Tensor, classes: torch.Tensor, length: int) -> torch.Tensor:
        """[SOS, ctx_i, class tokens, ".", EOT, ...] for (context, class) pairs, cut to ``length`` tokens.

        Args:
            ctx: [n, n_ctx, D] one context per prompt (e.g. CoCoOp's per-image contexts).
            classes: [n] int64 class of each prompt.
            length: tokens to keep (> n_ctx), e.g. the chunk's longest EOT + 1.

        Returns:
            [n, length, D] prompt embeddings in CLIP dtype (the end layout).
        """
        suffix = self.token_suffix[classes, : length - 1 - self.n_ctx]  # [n, length - 1 - n_ctx, D]
        return torch.cat([self.token_prefix[classes], ctx.to(suffix.dtype), suffix], dim=1)
