"""The official code's names for the learnable parts, one table of parameter names, and what shapes say.

Why: runs of the official CoOp / CoCoOp / DPT code keep each learnable part in a folder named after its
registered module (docs/reference.md 4.4, 7.6), the same folders as ours. Inside, CoOp's and CoCoOp's prompt
learners and the VPT-deep context use our parameter names already; only DPT's CAVPT generator
(``image_encoder.transformer.extractor``) names its tensors differently and stacks the extra key tokens of
all layers into one ``ctx`` [layers, 10, W]. ``to_ours`` and ``to_official`` read the one table below in
opposite directions. ``describe_layout`` reads the config a run was built with from its tensors' shapes.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Tuple

import torch

TEXT_PROMPTS = "prompt_learner"
VISUAL_PROMPTS = "image_encoder.transformer.ctx_learner"
CAVPT = "image_encoder.transformer.extractor"
PARTS = (VISUAL_PROMPTS, CAVPT, TEXT_PROMPTS)  # Dassl's registration order in the official DPT trainer

# Per CAVPT layer {j}: (official prefix, our prefix). Official DPT.py spells "classfiers" (docs/reference.md 7.8 #13).
CAVPT_NAMES: Tuple[Tuple[str, str], ...] = (
    ("meta_nets.{j}.", "layers.{j}.meta_net."),
    ("attns.{j}.qmlp.", "layers.{j}.q_proj."),
    ("attns.{j}.kmlp.", "layers.{j}.k_proj."),
    ("attns.{j}.vmlp.", "layers.{j}.v_proj."),
    ("lns.{j}.", "layers.{j}.norm."),
    ("classfiers.{j}.", "layers.{j}.classifier."),
    ("lns2.{j}.", "layers.{j}.token_norm."),
)
OFFICIAL_KEY_TOKENS = "ctx"  # [layers, n_key_tokens, W] in the official extractor
OFFICIAL_CAVPT_SIZES = {"TRAINER.DPT.N_KEY_TOKENS": 10, "TRAINER.DPT.ATTN_DIM": 32}  # hard-coded there (7.8 #11)
OUR_KEY_TOKENS = "layers.{j}.key_tokens"  # [n_key_tokens, W] per layer
_OUR_KEY_TOKENS = re.compile(r"^layers\.(\d+)\.key_tokens$")
_OUR_LAYER = re.compile(r"^layers\.(\d+)\.")
CLASS_COUNT = "classes"  # a layout fact reported, never compared (class-dependent tensors are not loaded)

State = Dict[str, torch.Tensor]


def _pattern(prefix: str) -> "re.Pattern[str]":
    return re.compile("^" + re.escape(prefix).replace(re.escape("{j}"), r"(\d+)"))


def _rename(state: Mapping[str, torch.Tensor], pairs) -> State:
    """Rename keys by the first (source, target) prefix pair that matches; other keys are kept as they are."""
    compiled = [(_pattern(source), target) for source, target in pairs]
    out: State = {}
    for key, value in state.items():
        for pattern, target in compiled:
            match = pattern.match(key)
            if match:
                key = target.format(j=match.group(1)) + key[match.end():]
                break
        out[key] = value
    return out


def to_ours(part: str, state: Mapping[str, torch.Tensor]) -> State:
    """Official parameter names of ``part`` -> ours (keys already ours pass unchanged)."""
    if part != CAVPT:
        return dict(state)
    out = _rename({k: v for k, v in state.items() if k != OFFICIAL_KEY_TOKENS}, CAVPT_NAMES)
    if OFFICIAL_KEY_TOKENS in state:
        for j, tokens in enumerate(state[OFFICIAL_KEY_TOKENS]):  # [layers, n, W] -> per layer [n, W]
            out[OUR_KEY_TOKENS.format(j=j)] = tokens
    return out


def to_official(part: str, state: Mapping[str, torch.Tensor]) -> State:
    """Our parameter names of ``part`` -> the official code's (the same table read backwards)."""
    if part != CAVPT:
        return dict(state)
    tokens = {int(m.group(1)): v for k, v in state.items() if (m := _OUR_KEY_TOKENS.match(k))}
    out = _rename({k: v for k, v in state.items() if not _OUR_KEY_TOKENS.match(k)},
                  [(ours, official) for official, ours in CAVPT_NAMES])
    if tokens:
        if sorted(tokens) != list(range(len(tokens))):
            raise ValueError(f"CAVPT key tokens of layers {sorted(tokens)}: expected layers 0..{len(tokens) - 1}")
        out[OFFICIAL_KEY_TOKENS] = torch.stack([tokens[j] for j in range(len(tokens))])  # [layers, n, W]
    return out


def describe_layout(states: Mapping[str, Mapping[str, torch.Tensor]]) -> Dict[str, Any]:
    """Config facts read from the shapes of a run's parts (our names): {config key or fact: value}.

    Text ``ctx`` [n_ctx, D] or [n_cls, n_ctx, D] (CSC) gives TRAINER.COOP.N_CTX / CSC; visual ``ctx``
    [blocks, n, W] gives TRAINER.VPT.N_CTX; with a CAVPT part, the visual blocks are BOTTOMLIMIT - 1 (the
    official top-down layout) and its key tokens [n, W] and q_proj [attn, W] give N_KEY_TOKENS and ATTN_DIM.
    ``classes`` (text buffers, CAVPT classifiers) is informational. CPN (K) is in no tensor's shape.
    """
    facts: Dict[str, Any] = {}
    text = states.get(TEXT_PROMPTS) or {}
    visual = states.get(VISUAL_PROMPTS) or {}
    cavpt = states.get(CAVPT) or {}
    if "ctx" in text:
        ctx = text["ctx"]
        facts["TRAINER.COOP.N_CTX"] = ctx.shape[-2]
        facts["TRAINER.COOP.CSC"] = ctx.dim() == 3
        if ctx.dim() == 3:
            facts["classes of the class-specific context"] = ctx.shape[0]
        facts["text width"] = ctx.shape[-1]
        facts["CoCoOp meta-net"] = any(k.startswith("meta_net.") for k in text)
    if "token_prefix" in text:
        facts[CLASS_COUNT] = text["token_prefix"].shape[0]
    vpt_blocks = 0
    if "ctx" in visual and visual["ctx"].dim() == 3:
        vpt_blocks, n_ctx, width = visual["ctx"].shape
        facts["TRAINER.VPT.N_CTX"] = n_ctx
        facts["vision width"] = width
    layers = sorted({int(m.group(1)) for k in cavpt if (m := _OUR_LAYER.match(k))})
    if layers:
        facts["TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT"] = vpt_blocks + 1
        facts["CAVPT blocks"] = len(layers)
        first = f"layers.{layers[0]}."
        if first + "key_tokens" in cavpt:
            facts["TRAINER.DPT.N_KEY_TOKENS"] = cavpt[first + "key_tokens"].shape[0]
            facts["vision width"] = cavpt[first + "key_tokens"].shape[-1]
        if first + "q_proj.weight" in cavpt:
            facts["TRAINER.DPT.ATTN_DIM"] = cavpt[first + "q_proj.weight"].shape[0]
        if first + "classifier.weight" in cavpt:
            facts.setdefault(CLASS_COUNT, cavpt[first + "classifier.weight"].shape[0])
    elif visual:
        facts["visual prompt blocks"] = vpt_blocks
    return facts


def layout_text(facts: Mapping[str, Any]) -> str:
    """``TRAINER.COOP.N_CTX = 16, ..., classes = 37`` for log lines."""
    return ", ".join(f"{key} = {value}" for key, value in facts.items())
