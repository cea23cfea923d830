"""PromptTrainer: what every CLIP prompt trainer shares (CLIP loading, the prompted model, eval caching)."""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from dpt.engine.trainer import TrainerX
from dpt.modeling.clip_loader import load_clip
from dpt.modeling.prompted_clip import PromptedCLIP, TextFeatures
from dpt.modeling.templates import CUSTOM_TEMPLATES


def accuracy(logits: torch.Tensor, label: torch.Tensor) -> float:
    """Top-1 accuracy in percent of logits [B, n_cls] against label [B]."""
    return (logits.argmax(dim=1) == label).float().mean().item() * 100.0


class PromptTrainer(TrainerX):
    """Loads CLIP (MODEL.BACKBONE.NAME, TRAINER.COOP.PREC), builds one PromptedCLIP, caches per evaluation.

    Subclasses call ``build_prompted_clip(self.build_clip(), **switches)`` in ``build_model`` and register the
    learnable parts.
    """

    model: PromptedCLIP

    def template(self) -> str:
        """DATASET.TEMPLATE if set, else the dataset's hand-crafted template (REFERENCE.md 7.2)."""
        if self.cfg.DATASET.TEMPLATE:
            return self.cfg.DATASET.TEMPLATE
        name = self.cfg.DATASET.NAME
        if name not in CUSTOM_TEMPLATES:
            raise KeyError(f"no prompt template for dataset {name!r}; set DATASET.TEMPLATE or add it to "
                           f"dpt/modeling/templates.py")
        return CUSTOM_TEMPLATES[name]

    def build_clip(self):
        cfg = self.cfg
        print(f"Loading CLIP (backbone: {cfg.MODEL.BACKBONE.NAME})")
        clip_model = load_clip(cfg.MODEL.BACKBONE.NAME, precision=self.precision)
        resolution = clip_model.visual.input_resolution
        if tuple(cfg.INPUT.SIZE) != (resolution, resolution):
            raise ValueError(
                f"config key 'INPUT.SIZE' is {tuple(cfg.INPUT.SIZE)} but {cfg.MODEL.BACKBONE.NAME} expects "
                f"({resolution}, {resolution})"
            )
        return clip_model

    def build_prompted_clip(self, clip_model, **switches) -> PromptedCLIP:
        """Build the prompted CLIP with the dataset's class names and template, frozen, on the device.

        CLIP moves to the device first, so the zero-shot text features are computed there (fp16 is GPU-only).
        """
        model = PromptedCLIP(clip_model.to(self.device), list(self.classnames), self.template(), **switches)
        model.freeze_clip()
        self.model = model.to(self.device)
        return self.model

    def text_prompt_switches(self) -> Dict:
        """CoOp text-prompt switches from TRAINER.COOP."""
        coop = self.cfg.TRAINER.COOP
        return dict(
            learn_text=True,
            n_ctx=coop.N_CTX,
            ctx_init=coop.CTX_INIT,
            csc=coop.CSC,
            class_token_position=coop.CLASS_TOKEN_POSITION,
        )

    def keys_to_skip_on_load(self, name: str) -> List[str]:
        """Class-name dependent buffers of the text prompt learner (REFERENCE.md 7.1)."""
        return ["token_prefix", "token_suffix"] if name == "prompt_learner" else []

    def supervised_step(self, batch, loss_fn) -> Dict[str, float]:
        """parse -> forward (autocast) -> ``loss_fn(output, label)`` -> backward/update -> logged floats."""
        image, label = self.parse_batch_train(batch)
        with self.autocast():
            output = self.model(image, need_guidance=self.needs_guidance())
            loss = loss_fn(output, label)
        self.model_backward_and_update(loss)
        return {"loss": loss.item(), "acc": accuracy(output.logits, label)}

    def needs_guidance(self) -> bool:
        """Whether this epoch's loss uses the zero-shot guidance logits."""
        return False

    # evaluation: learned text features are computed once per evaluation, not per batch
    _text_features: Optional[TextFeatures] = None

    def before_test(self) -> None:
        with torch.no_grad(), self.autocast():
            self._text_features = self.model.encode_learned_text()

    def after_test(self) -> None:
        self._text_features = None

    def model_inference(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image, text_features=self._text_features).logits


def cross_entropy(output, label: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output.logits.float(), label)


def vision_layers(clip_model) -> int:
    """Number of blocks of CLIP's vision transformer (12 for ViT-B, 24 for ViT-L)."""
    return len(clip_model.visual.transformer.resblocks)
