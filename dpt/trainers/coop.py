"""CoOp: learned text context, plain CLIP image encoder (docs/reference.md 7.3)."""
from __future__ import annotations

import os

from dpt.compat.weights import load_into, read_weights
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.base import PromptTrainer
from dpt.trainers.text_context import TEXT_PROMPTS, coop_text_part


@TRAINER_REGISTRY.register()
class CoOp(PromptTrainer):
    """Reads TRAINER.COOP.{N_CTX, CSC, CTX_INIT, CLASS_TOKEN_POSITION}, MODEL.INIT_WEIGHTS and OPTIM."""

    @classmethod
    def text_part(cls, cfg, clip_model, classnames):
        return coop_text_part(cfg, clip_model, classnames)

    def register_parts(self, model) -> None:
        self.register_learnable(TEXT_PROMPTS, model.prompt_learner, self.optim_spec())
        if self.cfg.MODEL.INIT_WEIGHTS:  # in place: the optimiser keeps the same parameters
            self._load_init_weights(self.cfg.MODEL.INIT_WEIGHTS)

    def _load_init_weights(self, path: str) -> None:
        """Our checkpoint, a Dassl-written one (e.g. CoOp's released prompt_learner/model.pth.tar-50) or a plain
        state dict; the class-name dependent buffers are not loaded."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"config key 'MODEL.INIT_WEIGHTS': file not found: {path}")
        weights = read_weights(path, self.official_names.get(TEXT_PROMPTS))
        self._check_layout(path, {TEXT_PROMPTS: weights.state_dict})
        load_into(self.model.prompt_learner, weights.state_dict, self.keys_to_skip_on_load(TEXT_PROMPTS), path,
                  "the prompt learner")
        print(f"Initialized prompt_learner from {path}")
