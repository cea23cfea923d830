"""IVLP: independent deep prompts in both towers, cross-entropy (docs/reference.md 10.1, 10.3).

The learnable parts (layer-0 text context, deep text prompts, deep vision prompts) are registered together
under the official Dassl model name ``VLPromptLearner`` with one SGD optimiser, as the official trainer does,
so its checkpoints map by name (``dpt/compat/official.py``).
"""
from __future__ import annotations

from typing import Dict, List

import torch.nn as nn

from dpt.compat.official import IVLP_MODEL
from dpt.modeling.deep_prompts import DeepTextPrompts, DeepVisionPrompts, prompted_blocks, word_initialised_context
from dpt.modeling.parts import BlockPrompts
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.base import PromptTrainer, cross_entropy, vision_layers, vision_width

CLASS_BUFFERS = ("prompt_learner.token_prefix", "prompt_learner.token_suffix")  # class-name dependent, not loaded


def text_layers(clip_model) -> int:
    return len(clip_model.transformer.resblocks)


def text_width(clip_model) -> int:
    return clip_model.ln_final.weight.shape[0]


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

    def learnable(self, model) -> nn.ModuleDict:
        parts = {"prompt_learner": model.prompt_learner, **model.text_block_parts, **model.vision_parts}
        return nn.ModuleDict({name: parts[name] for name in self.part_names if name in parts})

    def register_parts(self, model) -> None:
        self.register_learnable(self.model_name, self.learnable(model), self.optim_spec())

    def keys_to_skip_on_load(self, name: str) -> List[str]:
        return list(CLASS_BUFFERS) if name == self.model_name else []

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
