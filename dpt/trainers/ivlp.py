"""IVLP: independent deep prompts in both towers, cross-entropy (docs/reference.md 10.1, 10.3).

The learnable parts (layer-0 text context, deep text prompts, deep vision prompts) are registered together
under the official Dassl model name ``VLPromptLearner`` with one SGD optimiser, as the official trainer does,
so its checkpoints map by name (``VLPROMPT_NAMES``: the official checkpoints hold the whole model, frozen CLIP
included, and number the deep prompts by block).
"""
from __future__ import annotations

from typing import Dict, List

import torch
import torch.nn as nn

from dpt.compat.names import OfficialNames, Rename
from dpt.modeling.deep_prompts import DeepTextPrompts, DeepVisionPrompts, prompted_blocks, word_initialised_context
from dpt.modeling.parts import BlockPrompts
from dpt.modeling.tower_sizes import text_layers, text_width, vision_layers, vision_width
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.base import PromptTrainer, cross_entropy
from dpt.trainers.learned_prompts import PromptTokens, TextContext, indexed_prompts

CLASS_BUFFERS = ("prompt_learner.token_prefix", "prompt_learner.token_suffix")  # class-name dependent, not loaded
IVLP_MODEL = "VLPromptLearner"  # the official Dassl model name: the part folder
# The text context keeps its name; the official block-j prompts are our j-1; the frozen towers, PromptSRC's second
# image tower and logit_scale have no counterpart (docs/reference.md 10.3, 10.4).
CONTEXT_NAMES = tuple(Rename(f"prompt_learner.{key}", f"prompt_learner.{key}")
                      for key in ("ctx", "token_prefix", "token_suffix"))
FROZEN_CLIP = r"(image_encoder|text_encoder|prompt_learner)\.|logit_scale$"
VLPROMPT_NAMES = OfficialNames(
    renames=CONTEXT_NAMES + (
        Rename("text_encoder.transformer.resblocks.{j}.VPT_shallow", "deep_text.prompts.{j}", shift=1),
        Rename("image_encoder.VPT", "deep_vision.first"),
        Rename("image_encoder.transformer.resblocks.{j}.VPT_shallow", "deep_vision.prompts.{j}", shift=1),
    ),
    official_only=FROZEN_CLIP,
)


def check_context(cfg, node: str, n_ctx_key: str, depth_keys: Dict[str, int]) -> None:
    """Prompt lengths >= 1, depths >= their minimum, and CTX_INIT (when set) with at least N_CTX words."""
    keys = cfg.TRAINER[node.split(".")[-1]]
    for key, minimum in {n_ctx_key: 1, **depth_keys}.items():
        if keys[key] < minimum:
            raise ValueError(f"config key '{node}.{key}' is {keys[key]}: expected an integer >= {minimum}")
    words = keys.CTX_INIT.replace("_", " ").split()
    if words and len(words) < keys[n_ctx_key]:
        raise ValueError(f"config key '{node}.CTX_INIT' {keys.CTX_INIT!r} has {len(words)} words but "
                         f"{node}.{n_ctx_key} is {keys[n_ctx_key]}: expected at least as many words")


class DeepPromptTrainer(PromptTrainer):
    """Registers the learnable parts as one module under ``model_name`` (one optimiser from OPTIM)."""

    model_name = IVLP_MODEL
    part_names = ("prompt_learner", "deep_text", "deep_vision")
    official_names = {IVLP_MODEL: VLPROMPT_NAMES}

    def learnable(self, model) -> nn.ModuleDict:
        parts = {"prompt_learner": model.prompt_learner, **model.text_block_parts, **model.vision_parts}
        return nn.ModuleDict({name: parts[name] for name in self.part_names if name in parts})

    def register_parts(self, model) -> None:
        self.register_learnable(self.model_name, self.learnable(model), self.optim_spec())

    def keys_to_skip_on_load(self, name: str) -> List[str]:
        return list(CLASS_BUFFERS) if name == self.model_name else []

    @classmethod
    def text_context(cls, states):
        ctx = (states.get(cls.model_name) or {}).get("prompt_learner.ctx")
        return TextContext(f"{cls.model_name}: prompt_learner.ctx", ctx) if ctx is not None else None

    @classmethod
    def prompt_tokens(cls, states, meta):
        """Deep text and vision prompts: ``prompts.i`` is in block i + 2 (1-based; ``prompted_blocks``), the
        vision tower's layer-0 ``first`` in block 1 (MaPLe's vision prompts are computed, not stored)."""
        state = states.get(cls.model_name) or {}
        groups = []
        for part, tower in (("deep_text", "text"), ("deep_vision", "vision")):
            first = [state[f"{part}.first"]] if f"{part}.first" in state else []
            prompts = first + indexed_prompts(state, f"{part}.prompts.")
            if prompts:
                start = 1 if first else 2
                blocks = list(range(start, start + len(prompts)))
                groups.append(PromptTokens(f"{cls.model_name} {part}: L2 norm of each {tower} prompt token per block",
                                           torch.stack(prompts), blocks))
        return groups

    def forward_backward(self, batch):
        return self.supervised_step(batch, cross_entropy)


@TRAINER_REGISTRY.register()
class IVLP(DeepPromptTrainer):
    """Reads TRAINER.IVLP.{N_CTX_TEXT, N_CTX_VISION, CTX_INIT, PROMPT_DEPTH_TEXT, PROMPT_DEPTH_VISION, PREC}, OPTIM."""

    precision_key = "TRAINER.IVLP.PREC"
    text_prompt_key = "TRAINER.IVLP"
    n_ctx_name = "N_CTX_TEXT"

    @classmethod
    def method_keys(cls, cfg):
        """This trainer's config node (TRAINER.IVLP; PromptSRC: TRAINER.PROMPTSRC)."""
        return cfg.TRAINER[cls.text_prompt_key.split(".")[-1]]

    def check_cfg(self, cfg) -> None:
        vision = 1 if self.method_keys(cfg).PROMPT_DEPTH_VISION > 0 else 0  # language-only: no vision prompts
        check_context(cfg, self.text_prompt_key, self.n_ctx_name,
                      {"PROMPT_DEPTH_VISION": 0, "N_CTX_VISION": vision, "PROMPT_DEPTH_TEXT": 1})

    @classmethod
    def text_part(cls, cfg, clip_model, classnames):
        keys = cls.method_keys(cfg)
        return word_initialised_context(clip_model, classnames, keys.N_CTX_TEXT, keys.CTX_INIT)

    @classmethod
    def vision_parts(cls, cfg, clip_model, classnames) -> Dict[str, BlockPrompts]:
        """Layer-0 and per-block vision prompts; none with PROMPT_DEPTH_VISION 0 (as the official code)."""
        keys = cls.method_keys(cfg)
        if keys.PROMPT_DEPTH_VISION == 0:
            return {}
        depth_key = f"{cls.text_prompt_key}.PROMPT_DEPTH_VISION"
        blocks = prompted_blocks(keys.PROMPT_DEPTH_VISION, vision_layers(clip_model), depth_key)
        return {"deep_vision": DeepVisionPrompts(blocks, keys.N_CTX_VISION, vision_width(clip_model))}

    @classmethod
    def text_block_parts(cls, cfg, clip_model, classnames) -> Dict[str, BlockPrompts]:
        keys = cls.method_keys(cfg)
        depth_key = f"{cls.text_prompt_key}.PROMPT_DEPTH_TEXT"
        blocks = prompted_blocks(keys.PROMPT_DEPTH_TEXT, text_layers(clip_model), depth_key)
        return {"deep_text": DeepTextPrompts(blocks, keys.N_CTX_TEXT, text_width(clip_model))} if blocks else {}
