"""PromptTrainer: what every CLIP prompt trainer shares (the prompted model from parts, eval caching)."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from dpt.modeling.parts import BlockPrompts, TextPrompts
from dpt.modeling.prompt_tokens import ClassNameTooLong
from dpt.modeling.prompted_clip import PromptedCLIP, TextFeatures
from dpt.modeling.templates import custom_template
from dpt.trainers.clip_trainer import ClipTrainer
from dpt.trainers.learned_prompts import PromptTokens, TextContext
from dpt.trainers.text_context import CSC_CLASSES, CSC_MESSAGE, TEXT_PROMPTS, class_name_error, text_context_facts


def accuracy(logits: torch.Tensor, label: torch.Tensor) -> float:
    """Top-1 accuracy in percent of logits [B, n_cls] against label [B]."""
    return (logits.argmax(dim=1) == label).float().mean().item() * 100.0


class PromptTrainer(ClipTrainer):
    """Composes one PromptedCLIP from the method's parts on the loaded CLIP, caches per evaluation.

    Subclasses choose their parts (``text_part``, ``vision_parts``, ``text_block_parts``), register them
    (``register_parts``) and write the loss.
    """

    model: PromptedCLIP

    def template(self) -> str:
        """DATASET.TEMPLATE if set, else the dataset's hand-crafted template (docs/reference.md 7.2)."""
        return self.cfg.DATASET.TEMPLATE or custom_template(self.cfg.DATASET.NAME)

    def templates(self) -> List[str]:
        """Every template whose text features the classifier uses (one, but for template ensembles)."""
        return [self.template()]

    # --- the method's parts (classmethods of cfg, so benchmarks and tools compose the same model without data) --
    @classmethod
    def text_part(cls, cfg, clip_model, classnames: Sequence[str]) -> Optional[TextPrompts]:
        """The text-side part (None: the template's zero-shot text features)."""
        return None

    @classmethod
    def vision_parts(cls, cfg, clip_model, classnames: Sequence[str]) -> Dict[str, BlockPrompts]:
        """Name -> vision block prompts (none by default)."""
        return {}

    @classmethod
    def text_block_parts(cls, cfg, clip_model, classnames: Sequence[str]) -> Dict[str, BlockPrompts]:
        """Name -> text-tower block prompts (none by default)."""
        return {}

    @classmethod
    def text_chunk_size(cls, cfg) -> int:
        """Prompts per text-encoder chunk."""
        return 256

    @classmethod
    def compose(cls, cfg, clip_model, classnames: Sequence[str], template: str) -> PromptedCLIP:
        """This method's prompted CLIP: parts built in order text, vision, text blocks (the RNG order), CLIP frozen.

        Raises ``ClassNameTooLong`` when a class name does not fit the template or the context.
        """
        names = list(classnames)
        model = PromptedCLIP(
            clip_model, names, template,
            text=cls.text_part(cfg, clip_model, names),
            vision=cls.vision_parts(cfg, clip_model, names),
            text_blocks=cls.text_block_parts(cfg, clip_model, names),
            text_chunk_size=cls.text_chunk_size(cfg),
        )
        model.freeze_clip()
        return model

    def register_parts(self, model: PromptedCLIP) -> None:
        """Register the learnable parts with their optimisers (``register_learnable``); none by default."""

    def build_model(self) -> None:
        """Load CLIP, compose this trainer's prompted CLIP, register its parts.

        Reads class names only from ``self.classnames`` and the template from ``template()``.
        """
        clip_model = self.build_clip()
        try:
            model = self.compose(self.cfg, clip_model, self.classnames, self.template())
        except ClassNameTooLong as err:
            raise self.class_name_error(err) from err
        self.model = model.to(self.device)
        self.register_parts(self.model)

    # the config node of the learned text context (TRAINER.COOP; CoCoOp: TRAINER.COCOOP), named in remedies
    text_prompt_key = "TRAINER.COOP"
    n_ctx_name = "N_CTX"  # that node's number of learned context tokens (IVLP / PromptSRC: N_CTX_TEXT)

    def class_name_error(self, err: ClassNameTooLong) -> ValueError:
        """``err`` with the dataset and the remedy, which the modules cannot name (they do not read the config)."""
        return class_name_error(self.cfg, err, self.text_prompt_key, self.n_ctx_name)

    layout_messages = {CSC_CLASSES: CSC_MESSAGE}

    @classmethod
    def describe_checkpoint(cls, states):
        """Facts of the learned text context (N_CTX, CSC, classes), when the run has one."""
        return text_context_facts(states[TEXT_PROMPTS], cls.text_prompt_key) if TEXT_PROMPTS in states else {}

    def diagnosed_modules(self):
        """The whole prompted CLIP (frozen CLIP included), to name where a non-finite value first appears."""
        return list(self.model.named_modules(prefix="model"))

    @classmethod
    def text_context(cls, states: Mapping[str, Mapping[str, torch.Tensor]]) -> Optional[TextContext]:
        """The learned text context of a checkpoint's parts (``dpt-interpret``), when the method has one."""
        ctx = (states.get(TEXT_PROMPTS) or {}).get("ctx")
        return TextContext(TEXT_PROMPTS, ctx) if ctx is not None else None

    @classmethod
    def prompt_tokens(cls, states: Mapping[str, Mapping[str, torch.Tensor]],
                      meta: Mapping[str, Any]) -> List[PromptTokens]:
        """The block prompts of a checkpoint's parts (``dpt-interpret`` prints their norms); ``meta``: ours."""
        return []

    def keys_to_skip_on_load(self, name: str) -> List[str]:
        """Class-name dependent buffers of the text prompt learner (docs/reference.md 7.1)."""
        return ["token_prefix", "token_suffix"] if name == TEXT_PROMPTS else []

    @classmethod
    def loss_trainer(cls, cfg, epoch: int = 0, model: Optional[PromptedCLIP] = None) -> "PromptTrainer":
        """A trainer holding only ``cfg``, ``epoch`` and ``model`` (whose frozen buffers a loss may read, e.g.
        KgCoOp's hand-crafted text features): enough for ``loss`` and ``needs_guidance`` without data (benchmarks
        and golden tests use the trainers' own losses this way)."""
        trainer = cls.__new__(cls)
        trainer.cfg, trainer.epoch, trainer.model = cfg, epoch, model
        return trainer

    def loss(self, output, label: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the logits (CoOp, CoCoOp, VPT); VLP / DPT add their terms."""
        return cross_entropy(output, label)

    def forward_backward(self, batch) -> Dict[str, float]:
        return self.supervised_step(batch, self.loss)

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

    open_vocabulary = True

    def image_logits(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image, text_features=self._text_features).logits

    def model_inference(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_logits(image)


def cross_entropy(output, label: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output.logits.float(), label)

