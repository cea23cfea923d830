"""CoOp: learned text context, plain CLIP image encoder (REFERENCE.md 7.3)."""
from __future__ import annotations

import os

from dpt.engine.checkpoint import load_checkpoint
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.base import PromptTrainer, cross_entropy


@TRAINER_REGISTRY.register()
class CoOp(PromptTrainer):
    """Reads TRAINER.COOP.{N_CTX, CSC, CTX_INIT, CLASS_TOKEN_POSITION}, MODEL.INIT_WEIGHTS and OPTIM."""

    def build_model(self) -> None:
        model = self.build_prompted_clip(self.build_clip(), **self.text_prompt_switches())
        if self.cfg.MODEL.INIT_WEIGHTS:
            self._load_init_weights(self.cfg.MODEL.INIT_WEIGHTS)
        self.register_learnable("prompt_learner", model.prompt_learner, self.optim_spec())

    def _load_init_weights(self, path: str) -> None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"config key 'MODEL.INIT_WEIGHTS': file not found: {path}")
        state = load_checkpoint(path)
        state = state.get("state_dict", state)
        skip = set(self.keys_to_skip_on_load("prompt_learner"))
        state = {k: v for k, v in state.items() if k not in skip}
        missing, unexpected = self.model.prompt_learner.load_state_dict(state, strict=False)
        if unexpected or set(missing) - skip:
            raise KeyError(f"MODEL.INIT_WEIGHTS {path} does not fit the prompt learner: missing "
                           f"{sorted(set(missing) - skip)}, unexpected {sorted(unexpected)}")
        print(f"Initialized prompt_learner from {path}")

    def forward_backward(self, batch):
        return self.supervised_step(batch, cross_entropy)
