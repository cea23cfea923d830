"""VPT: deep visual prompts in every block, frozen hand-crafted text (docs/reference.md 7.4)."""
from __future__ import annotations

from dpt.compat.official import VISUAL_PROMPTS
from dpt.config.access import get_key
from dpt.modeling.visual_prompts import VisualPrompts
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.base import PromptTrainer, vision_layers, vision_width


def check_length(cfg, key: str) -> None:
    """A length key (``"TRAINER.VPT.N_CTX"``) must be >= 0."""
    value = get_key(cfg, key)
    if value < 0:
        raise ValueError(f"config key {key!r}: expected a length >= 0, got {value}")


@TRAINER_REGISTRY.register()
class VPT(PromptTrainer):
    """Reads TRAINER.VPT.N_CTX and OPTIM (used as is: no ImageNet exception)."""

    def check_cfg(self, cfg) -> None:
        check_length(cfg, "TRAINER.VPT.N_CTX")

    def checkpoint_meta(self):
        return {**super().checkpoint_meta(), "vpt_layers": list(self.model.visual_prompts.blocks)}

    @classmethod
    def vision_parts(cls, cfg, clip_model, classnames):
        """VPT-deep prompts of TRAINER.VPT.N_CTX tokens in every block."""
        n_ctx = cfg.TRAINER.VPT.N_CTX
        return {"visual_prompts": VisualPrompts(range(vision_layers(clip_model)), n_ctx, vision_width(clip_model))}

    def register_parts(self, model) -> None:
        self.register_learnable(VISUAL_PROMPTS, model.visual_prompts, self.optim_spec())
