"""CoCoOp: CoOp's context shifted per image by a meta-net, so each image has its own prompts (docs/reference.md 9.1)."""
from __future__ import annotations

from typing import Dict

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

    def text_prompt_switches(self) -> Dict:
        """CoCoOp's switches: shared context (TRAINER.COCOOP.N_CTX / CTX_INIT), class token at the end, meta-net."""
        cocoop = self.cfg.TRAINER.COCOOP
        return dict(
            learn_text=True,
            n_ctx=cocoop.N_CTX,
            ctx_init=cocoop.CTX_INIT,
            image_conditioned=True,
            text_chunk_size=cocoop.CHUNK_SIZE,
        )

    def before_test(self) -> None:
        """Nothing to compute once per evaluation: the text features depend on each image."""
