"""CoCoOp: CoOp's context shifted per image by a meta-net, so each image has its own prompts (docs/reference.md 9.1)."""
from __future__ import annotations

from dpt.modeling.conditioned_prompt_learner import ConditionedPromptLearner
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.coop import CoOp


@TRAINER_REGISTRY.register()
class CoCoOp(CoOp):
    """Reads TRAINER.COCOOP.{N_CTX, CTX_INIT, PREC, CHUNK_SIZE}, MODEL.INIT_WEIGHTS and OPTIM.

    The learnable part is registered as "prompt_learner" with the official state-dict keys (``ctx``,
    ``meta_net.linear{1,2}.{weight,bias}``, ``token_prefix``, ``token_suffix``), so official checkpoints load
    without a name map. Loss: CE of the per-image logits, as CoOp.
    """

    precision_key = "TRAINER.COCOOP.PREC"
    text_prompt_key = "TRAINER.COCOOP"

    def check_cfg(self, cfg) -> None:
        chunk = cfg.TRAINER.COCOOP.CHUNK_SIZE
        if chunk < 1:
            raise ValueError(f"config key 'TRAINER.COCOOP.CHUNK_SIZE': expected a number of prompts >= 1, got {chunk}")

    @classmethod
    def text_part(cls, cfg, clip_model, classnames) -> ConditionedPromptLearner:
        """Shared context (TRAINER.COCOOP.N_CTX / CTX_INIT), class token at the end, meta-net."""
        return ConditionedPromptLearner(clip_model, classnames, cfg.TRAINER.COCOOP.N_CTX, cfg.TRAINER.COCOOP.CTX_INIT)

    @classmethod
    def text_chunk_size(cls, cfg) -> int:
        """TRAINER.COCOOP.CHUNK_SIZE (image x class prompts per chunk)."""
        return cfg.TRAINER.COCOOP.CHUNK_SIZE

    def before_test(self) -> None:
        """Nothing to compute once per evaluation: the text features depend on each image."""
