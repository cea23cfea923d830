"""CoOp's learned text context as the trainers share it: built from TRAINER.COOP, saved in ``prompt_learner/``,
what its checkpoint's shapes say about the config it was trained with, and the remedy when a class name does
not fit beside it (docs/reference.md 7.1, 7.3)."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence

import torch

from dpt.compat.weights import CLASS_COUNT
from dpt.config.access import get_key
from dpt.modeling.prompt_learner import PromptLearner
from dpt.modeling.prompt_tokens import ClassNameTooLong

TEXT_PROMPTS = "prompt_learner"  # the part folder, the official code's registered name
CSC_CLASSES = "classes of the class-specific context"  # compared: a CSC context is learned per class
CSC_MESSAGE = ("{where} holds a class-specific context (TRAINER.COOP.CSC True) learned for {found} classes, but this "
               "run has {expected} classes: such a context only applies to the classes it was trained on (train "
               "with TRAINER.COOP.CSC False to transfer)")


def coop_text_part(cfg, clip_model, classnames: Sequence[str]) -> PromptLearner:
    """CoOp's learned context from TRAINER.COOP.{N_CTX, CTX_INIT, CSC, CLASS_TOKEN_POSITION}."""
    coop = cfg.TRAINER.COOP
    return PromptLearner(clip_model, classnames, coop.N_CTX, coop.CTX_INIT, coop.CSC, coop.CLASS_TOKEN_POSITION)


def class_name_error(cfg, err: ClassNameTooLong, key: str, n_ctx_name: str) -> ValueError:
    """``err`` with the dataset and the remedy: the learned context's config node ``key`` (TRAINER.COOP) and its
    length key ``n_ctx_name`` (N_CTX; IVLP: N_CTX_TEXT)."""
    remedy = "shorten the class name where the dataset lists it (split or class-name file)"
    if err.n_ctx:
        lower = f" or lower {key}.{n_ctx_name} ({err.n_ctx})"
        remedy += f" or shorten {key}.CTX_INIT" if get_key(cfg, key).CTX_INIT else lower
    return ValueError(f"dataset {cfg.DATASET.NAME}: {err}; {remedy}")


def text_context_facts(state: Mapping[str, torch.Tensor], key: str) -> Dict[str, Any]:
    """Facts of a text prompt learner's state (config node ``key``, e.g. "TRAINER.COOP").

    ``ctx`` [n_ctx, D] or [n_cls, n_ctx, D] (CSC) gives N_CTX, CSC and the text width; ``meta_net.*`` says
    CoCoOp; ``token_prefix`` [n_cls, 1, D] the class count (informational).
    """
    facts: Dict[str, Any] = {}
    if "ctx" in state:
        ctx = state["ctx"]
        facts[f"{key}.N_CTX"] = ctx.shape[-2]
        facts["TRAINER.COOP.CSC"] = ctx.dim() == 3  # CoOp's key: the other text contexts have no CSC
        if ctx.dim() == 3:
            facts[CSC_CLASSES] = ctx.shape[0]
        facts["text width"] = ctx.shape[-1]
        facts["CoCoOp meta-net"] = any(k.startswith("meta_net.") for k in state)
    if "token_prefix" in state:
        facts[CLASS_COUNT] = state["token_prefix"].shape[0]
    return facts
