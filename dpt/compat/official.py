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
from typing import Any, Callable, Dict, Mapping, Tuple

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
CSC_CLASSES = "classes of the class-specific context"  # compared: a CSC context is learned per class

State = Dict[str, torch.Tensor]

# Dassl model names of the deep-prompt methods (docs/reference.md 10.2-10.4): each registers its whole CustomCLIP,
# so a checkpoint holds the frozen CLIP too. Per model: (official key pattern, our key from the match); our part
# names are the trainers' (prompt_learner, deep_text, deep_vision, coupled). Unmatched official keys (the frozen
# towers, PromptSRC's second image tower, logit_scale) are dropped; the block prompts of block j are our j-1.
MAPLE_MODEL = "MultiModalPromptLearner"
IVLP_MODEL = "VLPromptLearner"
_Rule = Tuple["re.Pattern[str]", Callable[["re.Match[str]"], str]]
DEEP_PROMPT_NAMES: Dict[str, Tuple[_Rule, ...]] = {
    IVLP_MODEL: (
        (re.compile(r"^prompt_learner\.(ctx|token_prefix|token_suffix)$"), lambda m: f"prompt_learner.{m[1]}"),
        (re.compile(r"^text_encoder\.transformer\.resblocks\.(\d+)\.VPT_shallow$"),
         lambda m: f"deep_text.prompts.{int(m[1]) - 1}"),
        (re.compile(r"^image_encoder\.VPT$"), lambda m: "deep_vision.first"),
        (re.compile(r"^image_encoder\.transformer\.resblocks\.(\d+)\.VPT_shallow$"),
         lambda m: f"deep_vision.prompts.{int(m[1]) - 1}"),
    ),
    MAPLE_MODEL: (
        (re.compile(r"^prompt_learner\.(ctx|token_prefix|token_suffix)$"), lambda m: f"prompt_learner.{m[1]}"),
        (re.compile(r"^prompt_learner\.compound_prompts_text\.(\d+)$"), lambda m: f"deep_text.prompts.{m[1]}"),
        (re.compile(r"^prompt_learner\.proj\.(weight|bias)$"), lambda m: f"coupled.couplings.0.{m[1]}"),
        (re.compile(r"^prompt_learner\.compound_prompt_projections\.(\d+)\.(weight|bias)$"),
         lambda m: f"coupled.couplings.{int(m[1]) + 1}.{m[2]}"),
    ),
}
_OFFICIAL_FROZEN = re.compile(r"^(image_encoder|text_encoder|prompt_learner)\.|^logit_scale$")


def _deep_prompts_to_ours(rules: Tuple[_Rule, ...], state: Mapping[str, torch.Tensor]) -> State:
    out: State = {}
    for key, value in state.items():
        for pattern, ours in rules:
            match = pattern.match(key)
            if match:
                out[ours(match)] = value
                break
        else:
            if not _OFFICIAL_FROZEN.match(key):
                out[key] = value  # already ours
    return out


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


# The official KgCoOp prompt learner also saves modules its method never uses (docs/reference.md 10.5).
KGCOOP_UNUSED = ("bias_vectors", "meta_net.linear1.weight", "meta_net.linear1.bias")


def _without_kgcoop_unused(state: Mapping[str, torch.Tensor]) -> State:
    """A text prompt learner's state without KgCoOp's unused tensors (recognised by ``bias_vectors``; CoCoOp's
    meta-net, which also has ``linear2``, stays), so an official KgCoOp checkpoint is a CoOp checkpoint."""
    if "bias_vectors" not in state or "meta_net.linear2.weight" in state:
        return dict(state)
    return {k: v for k, v in state.items() if k not in KGCOOP_UNUSED}


def to_ours(part: str, state: Mapping[str, torch.Tensor]) -> State:
    """Official parameter names of ``part`` -> ours (keys already ours pass unchanged)."""
    if part in DEEP_PROMPT_NAMES:
        return _deep_prompts_to_ours(DEEP_PROMPT_NAMES[part], state)
    if part != CAVPT:
        return _without_kgcoop_unused(state) if part == TEXT_PROMPTS else dict(state)
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
            facts[CSC_CLASSES] = ctx.shape[0]
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
