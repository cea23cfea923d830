"""DPT's checkpoint layout: the CAVPT generator's official names, what its shapes say, what the official code builds.

Why: the official DPT code (docs/reference.md 7.6, 7.8) names the CAVPT tensors differently from ours and
stacks the key tokens of all layers into one ``ctx`` [layers, 10, W]; it builds only the top-down layout,
with 10 key tokens and attention width 32 hard-coded, and keeps an empty visual-prompt tensor when
BOTTOMLIMIT is 1. ``DPT`` declares these facts from here.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Mapping, Optional

import torch

from dpt.compat.names import OfficialNames, Rename, Stacked
from dpt.compat.weights import CLASS_COUNT
from dpt.trainers.learned_prompts import PromptTokens, indexed_prompts
from dpt.trainers.vpt import VISUAL_PROMPTS

CAVPT = "image_encoder.transformer.extractor"  # the part folder, the official code's registered name
State = Dict[str, torch.Tensor]

# Per CAVPT layer {j}. The official DPT.py spells "classfiers" (docs/reference.md 7.8 #13).
CAVPT_NAMES = OfficialNames(
    renames=(
        Rename("meta_nets.{j}.", "layers.{j}.meta_net."),
        Rename("attns.{j}.qmlp.", "layers.{j}.q_proj."),
        Rename("attns.{j}.kmlp.", "layers.{j}.k_proj."),
        Rename("attns.{j}.vmlp.", "layers.{j}.v_proj."),
        Rename("lns.{j}.", "layers.{j}.norm."),
        Rename("classfiers.{j}.", "layers.{j}.classifier."),
        Rename("lns2.{j}.", "layers.{j}.token_norm."),
    ),
    stacked=(Stacked("ctx", "layers.{j}.key_tokens"),),
)
OFFICIAL_CAVPT_SIZES = {"TRAINER.DPT.N_KEY_TOKENS": 10, "TRAINER.DPT.ATTN_DIM": 32}  # hard-coded there (7.8 #11)
_LAYER = re.compile(r"^layers\.(\d+)\.")


def cavpt_facts(state: Mapping[str, torch.Tensor], vpt_blocks: int) -> Dict[str, Any]:
    """Facts of a CAVPT state: BOTTOMLIMIT (top-down: after the ``vpt_blocks`` VPT blocks), the number of CAVPT
    blocks, N_KEY_TOKENS and ATTN_DIM from the first layer's key tokens [n, W] and q_proj [attn, W]."""
    layers = sorted({int(m.group(1)) for k in state if (m := _LAYER.match(k))})
    if not layers:
        return {}
    facts: Dict[str, Any] = {"TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT": vpt_blocks + 1, "CAVPT blocks": len(layers)}
    first = f"layers.{layers[0]}."
    if first + "key_tokens" in state:
        facts["TRAINER.DPT.N_KEY_TOKENS"] = state[first + "key_tokens"].shape[0]
        facts["vision width"] = state[first + "key_tokens"].shape[-1]
    if first + "q_proj.weight" in state:
        facts["TRAINER.DPT.ATTN_DIM"] = state[first + "q_proj.weight"].shape[0]
    if first + "classifier.weight" in state:
        facts[CLASS_COUNT] = state[first + "classifier.weight"].shape[0]
    return facts


def check_official_layout(meta: Mapping[str, Any], facts: Mapping[str, Any]) -> None:
    """Refuse, in one line, a DPT run the official code cannot build (shared or bottom-up CAVPT, other sizes)."""
    if meta.get("shared_cavpt"):
        raise ValueError("a shared CAVPT generator (TRAINER.DPT.SHARED_CAVPT True) has no official layout")
    vpt, cavpt = meta.get("vpt_layers", []), meta.get("cavpt_layers", [])
    if cavpt and (vpt != list(range(len(vpt))) or cavpt[0] != len(vpt)):
        raise ValueError(f"CAVPT in blocks {[b + 1 for b in cavpt]} is not the official top-down layout "
                         f"(TRAINER.DPT.CAVPT_DIRECTION bottom_up has no official counterpart)")
    for key, official in OFFICIAL_CAVPT_SIZES.items():
        if facts.get(key, official) != official:
            raise ValueError(f"{key} = {facts[key]}, but the official code hard-codes {official}")


def empty_visual_prompts(facts: Mapping[str, Any], config_value: Callable[[str], Optional[str]]) -> State:
    """The official code's empty visual-prompt part of BOTTOMLIMIT 1: ``ctx`` [0, TRAINER.VPT.N_CTX, W]."""
    n_ctx = config_value("TRAINER.VPT.N_CTX")
    if n_ctx is None:
        raise FileNotFoundError(f"the run's config (TRAINER.VPT.N_CTX) is needed for the official empty "
                                f"{VISUAL_PROMPTS} of BOTTOMLIMIT 1")
    return {"ctx": torch.zeros(0, int(n_ctx), facts["vision width"])}


def key_token_norms(state: Mapping[str, torch.Tensor], meta: Mapping[str, Any], vpt_blocks: int) -> List[PromptTokens]:
    """The CAVPT key tokens [layers, n, W] in the blocks ``meta`` names (an official run's: after the VPT blocks)."""
    per_layer = {k[:-len(".key_tokens")]: v for k, v in state.items() if k.endswith(".key_tokens")}  # layers.j
    tokens = indexed_prompts(per_layer, "layers.")
    if not tokens:
        return []
    blocks = [b + 1 for b in meta.get("cavpt_layers", range(vpt_blocks, vpt_blocks + len(tokens)))]
    return [PromptTokens(f"{CAVPT}: L2 norm of each CAVPT key token per CAVPT block", torch.stack(tokens), blocks)]
