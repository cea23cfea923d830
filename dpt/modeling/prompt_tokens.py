"""Token ids of one prompt per class, with a clear error when a class name does not fit CLIP's context.

Why: clip's tokenizer stops on an over-long prompt with "Input ... is too long for context length 77", naming
neither the class nor what else takes the context. Here the budget of a class name is spelled out: the
context length minus the learned context tokens minus SOS, EOT and the template's own tokens.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch

from dpt.modeling.backbones.clip_import import clip


class ClassNameTooLong(ValueError):
    """A class name whose prompt exceeds the context; ``n_ctx`` > 0 when learned context tokens share it.

    Attributes: ``too_long`` ``[(class name, its tokens)]``, ``budget`` (tokens left for a name), ``n_ctx``.
    """

    def __init__(self, message: str, too_long: List[Tuple[str, int]], budget: int, n_ctx: int) -> None:
        super().__init__(message)
        self.too_long = too_long
        self.budget = budget
        self.n_ctx = n_ctx


def _count(text: str) -> int:
    """BPE tokens of ``text`` without SOS / EOT."""
    return len(clip.clip._tokenizer.encode(text))


def tokenize_class_prompts(
    classnames: Sequence[str], template: str, context_length: int = 77, context_prefix: str = "", n_ctx: int = 0
) -> torch.Tensor:
    """``clip.tokenize`` of ``"<context_prefix> <template with the name>"`` per class: [n_cls, context_length] int64.

    Args:
        classnames: names as they go into the prompt (underscores already replaced).
        template: text with one "{}" for the class name, e.g. "a photo of a {}." or "{}." after learned context.
        context_length: CLIP's context (77).
        context_prefix: placeholder or initial words of the learned context ("X X X ..."), "" for none.
        n_ctx: how many of the prompt's tokens are learned context (for the message).

    Raises:
        ClassNameTooLong: naming each class whose prompt does not fit, its token count and the budget.
    """
    prompts = [f"{context_prefix} {template.format(name)}".strip() for name in classnames]
    fixed = _count(f"{context_prefix} {template.format('')}".strip()) + 2  # + SOS and EOT
    budget = context_length - fixed
    lengths = [_count(prompt) + 2 for prompt in prompts]
    too_long = [(name, n - fixed) for name, n in zip(classnames, lengths) if n > context_length]
    if too_long:
        shown = ", ".join(f"{name!r} ({n} tokens)" for name, n in too_long[:3])
        more = f" and {len(too_long) - 3} more" if len(too_long) > 3 else ""
        subject = f"class {shown} does" if len(too_long) == 1 else f"classes {shown}{more} do"
        context = f" - {n_ctx} context tokens" if n_ctx else ""
        raise ClassNameTooLong(
            f"{subject} not fit CLIP's context: the budget for a class name is {budget} tokens "
            f"({context_length}{context} - {fixed - n_ctx} for SOS, EOT and the template {template!r})",
            too_long, budget, n_ctx,
        )
    return clip.tokenize(prompts, context_length=context_length)
