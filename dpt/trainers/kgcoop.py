"""KgCoOp: CoOp's learned context, kept close to the hand-crafted prompt's text features (docs/reference.md 10.5).

Why: CoOp's context overfits the base classes; KgCoOp adds W x (1 - mean cosine) between the learned class text
features and the frozen features of the dataset's hand-crafted template, so the prompts keep CLIP's general
knowledge. The targets are the prompted CLIP's ``zs_text_features`` buffer (the template's normalised text
features, computed once in the run's precision), so no second text tower exists.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dpt.compat.names import OfficialNames
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.coop import CoOp
from dpt.trainers.text_context import TEXT_PROMPTS

COSINE_EPS = 1e-7  # the official torch.nn.CosineSimilarity(dim=1, eps=1e-07)


def guidance_score(text: torch.Tensor, hand_crafted: torch.Tensor) -> torch.Tensor:
    """1 - mean over classes of cos(t_c, t_hc_c): text [n_cls, E], hand_crafted [n_cls, E] -> 0-dim fp32."""
    cosine = F.cosine_similarity(text.float(), hand_crafted.float(), dim=1, eps=COSINE_EPS)  # [n_cls]
    return 1.0 - cosine.mean()


def kgcoop_loss(logits: torch.Tensor, label: torch.Tensor, text: torch.Tensor, hand_crafted: torch.Tensor,
                weight: float) -> torch.Tensor:
    """CE(logits [B, n_cls], label [B]) + ``weight`` x ``guidance_score(text, hand_crafted)``, fp32."""
    return F.cross_entropy(logits.float(), label) + weight * guidance_score(text, hand_crafted)


@TRAINER_REGISTRY.register()
class KgCoOp(CoOp):
    """Reads TRAINER.COOP.{N_CTX, CSC, CTX_INIT, CLASS_TOKEN_POSITION, PREC, W}, MODEL.INIT_WEIGHTS and OPTIM.

    The official config's CTX_INIT True is our CTX_INIT "a photo of a" (4 learnable word positions). Only the
    context trains; it is saved in CoOp's "prompt_learner" folder, and official KgCoOp checkpoints load there
    (their unused ``bias_vectors`` / ``meta_net.linear1`` are dropped on reading, docs/reference.md 10.5).
    """

    official_names = {TEXT_PROMPTS: OfficialNames(official_only=r"(bias_vectors|meta_net\.linear1\.(weight|bias))$")}

    def check_cfg(self, cfg) -> None:
        weight = cfg.TRAINER.COOP.W
        if not weight >= 0:
            raise ValueError(f"config key 'TRAINER.COOP.W': expected a guidance weight >= 0, got {weight}")

    def loss(self, output, label: torch.Tensor) -> torch.Tensor:
        """CE + W x (1 - mean cosine) of the step's learned text features and the hand-crafted ones."""
        return kgcoop_loss(output.logits, label, output.text_features, self.model.zs_text_features,
                           self.cfg.TRAINER.COOP.W)
