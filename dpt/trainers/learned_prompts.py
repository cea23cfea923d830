"""What ``dpt-interpret`` shows of a run, as each trainer finds it in its checkpoints' states (our names).

Why: only the trainer knows where its prompts live (CoOp's ``prompt_learner/ctx``, the VPT folder, CAVPT's key
tokens, the deep-prompt methods' whole-model folder), so the tool asks the trainer class and stays generic.
"""
from __future__ import annotations

import re
from typing import List, Mapping, NamedTuple

import torch


class TextContext(NamedTuple):
    """A learned context in token-embedding space: ``ctx`` [n_ctx, D] or [n_cls, n_ctx, D] (class-specific)."""

    where: str  # "prompt_learner", "VLPromptLearner: prompt_learner.ctx"
    ctx: torch.Tensor


class PromptTokens(NamedTuple):
    """Prompt tokens of some blocks: ``tokens`` [blocks, n, W], ``blocks`` 1-based, ``title`` the report's head."""

    title: str
    tokens: torch.Tensor
    blocks: List[int]


def indexed_prompts(state: Mapping[str, torch.Tensor], prefix: str) -> List[torch.Tensor]:
    """The tensors ``<prefix><i>`` of ``state`` in the order of i (e.g. ``deep_text.prompts.`` 0, 1, ...)."""
    found = {int(m.group(1)): value for key, value in state.items()
             if (m := re.fullmatch(re.escape(prefix) + r"(\d+)", key))}
    return [found[i] for i in sorted(found)]
