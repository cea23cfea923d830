"""VPT: deep visual prompts in every block, frozen hand-crafted text (docs/reference.md 7.4)."""
from __future__ import annotations

from dpt.compat.official import VISUAL_PROMPTS
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.base import PromptTrainer, cross_entropy, vision_layers


def check_length(cfg, key: str) -> None:
    """A length key (``"TRAINER.VPT.N_CTX"``) must be >= 0."""
    value = cfg
    for part in key.split("."):
        value = value[part]
    if value < 0:
        raise ValueError(f"config key {key!r}: expected a length >= 0, got {value}")


@TRAINER_REGISTRY.register()
class VPT(PromptTrainer):
    """Reads TRAINER.VPT.N_CTX and OPTIM (used as is: no ImageNet exception)."""

    def check_cfg(self, cfg) -> None:
        check_length(cfg, "TRAINER.VPT.N_CTX")

    def checkpoint_meta(self):
        return {**super().checkpoint_meta(), "vpt_layers": list(self.model.vpt_layers)}

    def build_model(self) -> None:
        clip_model = self.build_clip()
        model = self.build_prompted_clip(
            clip_model, learn_text=False, vpt_layers=range(vision_layers(clip_model)), n_vpt_ctx=self.cfg.TRAINER.VPT.N_CTX
        )
        self.register_learnable(VISUAL_PROMPTS, model.visual_prompts, self.optim_spec())

    def forward_backward(self, batch):
        return self.supervised_step(batch, cross_entropy)
