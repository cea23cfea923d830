"""MaPLe: deep text prompts and vision prompts coupled from them by linear maps (docs/reference.md 10.1, 10.2).

Registered under the official Dassl model name ``MultiModalPromptLearner`` (one SGD optimiser, OPTIM).
"""
from __future__ import annotations

from typing import Sequence

from dpt.compat.names import OfficialNames, Rename
from dpt.modeling.deep_prompts import CoupledVisionPrompts, DeepTextPrompts, prompted_blocks, word_initialised_context
from dpt.modeling.prompted_clip import PromptedCLIP
from dpt.modeling.tower_sizes import text_layers, text_width, vision_layers, vision_width
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.ivlp import CONTEXT_NAMES, FROZEN_CLIP, DeepPromptTrainer, check_context

MAPLE_MODEL = "MultiModalPromptLearner"  # the official Dassl model name: the part folder
# Deep text prompt j keeps its index; the block-0 coupling is the official ``proj``, coupling j >= 1 its
# compound_prompt_projections[j-1] (docs/reference.md 10.2).
MAPLE_NAMES = OfficialNames(
    renames=CONTEXT_NAMES + (
        Rename("prompt_learner.compound_prompts_text.{j}", "deep_text.prompts.{j}"),
        Rename("prompt_learner.proj.", "coupled.couplings.0."),
        Rename("prompt_learner.compound_prompt_projections.{j}.", "coupled.couplings.{j}.", shift=-1),
    ),
    official_only=FROZEN_CLIP,
)


@TRAINER_REGISTRY.register()
class MaPLe(DeepPromptTrainer):
    """Reads TRAINER.MAPLE.{N_CTX, CTX_INIT, PROMPT_DEPTH, PREC} and OPTIM."""

    precision_key = "TRAINER.MAPLE.PREC"
    text_prompt_key = "TRAINER.MAPLE"
    model_name = MAPLE_MODEL
    part_names = ("prompt_learner", "deep_text", "coupled")
    official_names = {MAPLE_MODEL: MAPLE_NAMES}

    def check_cfg(self, cfg) -> None:
        check_context(cfg, self.text_prompt_key, self.n_ctx_name, {"PROMPT_DEPTH": 1})

    @classmethod
    def compose(cls, cfg, clip_model, classnames: Sequence[str], template: str) -> PromptedCLIP:
        """The vision part is computed from the text parts, so the three are built together (RNG order: text
        context, deep text prompts, couplings); blocks 1..J-1 of both towers, J = PROMPT_DEPTH."""
        keys = cfg.TRAINER.MAPLE
        names = list(classnames)
        context = word_initialised_context(clip_model, names, keys.N_CTX, keys.CTX_INIT)
        n_blocks = min(text_layers(clip_model), vision_layers(clip_model))
        blocks = prompted_blocks(keys.PROMPT_DEPTH, n_blocks, "TRAINER.MAPLE.PROMPT_DEPTH")
        deep_text = DeepTextPrompts(blocks, keys.N_CTX, text_width(clip_model))
        coupled = CoupledVisionPrompts(context, deep_text, text_width(clip_model), vision_width(clip_model))
        model = PromptedCLIP(clip_model, names, template, text=context, vision={"coupled": coupled},
                             text_blocks={"deep_text": deep_text}, text_chunk_size=cls.text_chunk_size(cfg))
        model.freeze_clip()
        return model
