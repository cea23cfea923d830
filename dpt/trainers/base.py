"""PromptTrainer: what every CLIP prompt trainer shares (CLIP loading, the prompted model, eval caching)."""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from dpt.engine.trainer import TrainerX
from dpt.modeling.backbones.loader import backbone_id, image_preprocess, load_clip
from dpt.modeling.backbones.open_clip_adapter import ImagePreprocess
from dpt.modeling.prompt_tokens import ClassNameTooLong
from dpt.modeling.prompted_clip import PromptedCLIP, TextFeatures
from dpt.modeling.templates import CUSTOM_TEMPLATES


def accuracy(logits: torch.Tensor, label: torch.Tensor) -> float:
    """Top-1 accuracy in percent of logits [B, n_cls] against label [B]."""
    return (logits.argmax(dim=1) == label).float().mean().item() * 100.0


class PromptTrainer(TrainerX):
    """Loads CLIP (MODEL.BACKBONE.NAME, the precision key), builds one PromptedCLIP, caches per evaluation.

    Subclasses call ``build_prompted_clip(self.build_clip(), **switches)`` in ``build_model`` and register the
    learnable parts.
    """

    model: PromptedCLIP

    def template(self) -> str:
        """DATASET.TEMPLATE if set, else the dataset's hand-crafted template (docs/reference.md 7.2)."""
        if self.cfg.DATASET.TEMPLATE:
            return self.cfg.DATASET.TEMPLATE
        name = self.cfg.DATASET.NAME
        if name not in CUSTOM_TEMPLATES:
            raise KeyError(f"no prompt template for dataset {name!r}; set DATASET.TEMPLATE or add it to "
                           f"dpt/modeling/templates.py")
        return CUSTOM_TEMPLATES[name]

    def build_clip(self):
        """Load MODEL.BACKBONE.NAME, check the input config against it and record its identity for checkpoints."""
        name = self.cfg.MODEL.BACKBONE.NAME
        print(f"Loading CLIP (backbone: {name})")
        clip_model = load_clip(name, precision=self.precision)
        check_input(self.cfg.INPUT, name, image_preprocess(clip_model))
        self.backbone_id = backbone_id(name)
        return clip_model

    def build_prompted_clip(self, clip_model, **switches) -> PromptedCLIP:
        """Build the prompted CLIP with the dataset's class names and template, frozen, on the device.

        CLIP moves to the device first, so the zero-shot text features are computed there (fp16 is GPU-only).
        """
        try:
            model = PromptedCLIP(clip_model.to(self.device), list(self.classnames), self.template(), **switches)
        except ClassNameTooLong as err:
            raise self.class_name_error(err) from err
        model.freeze_clip()
        self.model = model.to(self.device)
        return self.model

    # the config node of the learned text context (TRAINER.COOP; CoCoOp: TRAINER.COCOOP), named in remedies
    text_prompt_key = "TRAINER.COOP"

    def class_name_error(self, err: ClassNameTooLong) -> ValueError:
        """``err`` with the dataset and the remedy, which the modules cannot name (they do not read the config)."""
        remedy = "shorten the class name where the dataset lists it (split or class-name file)"
        if err.n_ctx:
            key = self.text_prompt_key
            node = self.cfg.TRAINER[key.split(".")[-1]]
            remedy += f" or shorten {key}.CTX_INIT" if node.CTX_INIT else f" or lower {key}.N_CTX ({err.n_ctx})"
        return ValueError(f"dataset {self.cfg.DATASET.NAME}: {err}; {remedy}")

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
        """Class-name dependent buffers of the text prompt learner (docs/reference.md 7.1)."""
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


def check_input(inp, backbone: str, expected: ImagePreprocess) -> None:
    """INPUT.SIZE, and PIXEL_MEAN / PIXEL_STD when normalising, must be what the backbone's weights expect.

    A different interpolation or resize mode only changes the resampling, so it is printed as a note.
    """
    if tuple(inp.SIZE) != tuple(expected.size):
        raise ValueError(f"config key 'INPUT.SIZE' is {tuple(inp.SIZE)} but {backbone} expects {tuple(expected.size)}")
    if "normalize" in inp.TRANSFORMS:
        for key, value in (("PIXEL_MEAN", expected.mean), ("PIXEL_STD", expected.std)):
            given = [float(v) for v in inp[key]]
            if len(given) != len(value) or any(abs(a - b) > 1e-6 for a, b in zip(given, value)):
                spelled = "[" + ",".join(str(v) for v in value) + "]"  # one shell word, for the opts list
                raise ValueError(f"config key 'INPUT.{key}' is {given} but {backbone} expects {list(value)} "
                                 f"(append `INPUT.{key} {spelled}`)")
    if inp.INTERPOLATION != expected.interpolation or expected.resize_mode != "shortest":
        print(f"Note: {backbone} was trained with {expected.interpolation} resizing ({expected.resize_mode} mode); "
              f"this run resizes with INPUT.INTERPOLATION {inp.INTERPOLATION} (shorter side, then center crop)")


def cross_entropy(output, label: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output.logits.float(), label)


def vision_layers(clip_model) -> int:
    """Number of blocks of CLIP's vision transformer (12 for ViT-B, 24 for ViT-L)."""
    return len(clip_model.visual.transformer.resblocks)
