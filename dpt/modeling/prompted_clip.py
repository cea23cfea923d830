"""The one prompted-CLIP model behind every trainer: frozen CLIP + the parts a method composes.

Why: a method is a text-side part (none: the template's zero-shot features; CoOp's learned context;
CoCoOp's image-conditioned context) plus block prompts in the vision and text towers (VPT-deep, CAVPT, ...),
so one module holds the frozen CLIP, the parts by name and the cached zero-shot text features, and the
trainers choose the parts, the losses and the optimiser groups (``parts.py`` has the protocol).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.parts import BlockPrompts, PromptContext, TextFeatures, TextPrompts
from dpt.modeling.prompt_tokens import tokenize_class_prompts
from dpt.modeling.prompted_vit import PromptedVisionEncoder
from dpt.modeling.text_encoder import TextEncoder

__all__ = ["PromptedCLIP", "PromptedCLIPOutput", "TextFeatures"]  # TextFeatures is defined in parts.py


class PromptedCLIPOutput(NamedTuple):
    """Outputs of ``PromptedCLIP.forward`` (docs/reference.md 7.5, 7.6 item 6).

    logits: [B, n_cls] prompted image feature vs learned text (the prediction).
    logits_zs_image: [B, n_cls] frozen zero-shot image feature vs learned text ("logits1"), or None.
    logits_zs_text: [B, n_cls] prompted image feature vs zero-shot text ("logits2"), or None.
    layer_logits: per CAVPT layer [B, K, n_cls].
    topk_indices: [B, K] zero-shot top-K classes, descending, or None without CAVPT.
    attention: [B, n_patches] last-block CLS-to-patch attention, or None.
    image_features: [B, E] normalised prompted image features (feature-consistency losses), or None.
    text_features: [n_cls, E] normalised class text features the logits used (text-consistency losses), or None
        (CoCoOp: per image).
    """

    logits: torch.Tensor
    logits_zs_image: Optional[torch.Tensor]
    logits_zs_text: Optional[torch.Tensor]
    layer_logits: List[torch.Tensor]
    topk_indices: Optional[torch.Tensor]
    attention: Optional[torch.Tensor]
    image_features: Optional[torch.Tensor] = None
    text_features: Optional[torch.Tensor] = None


class PromptedCLIP(nn.Module):
    """Frozen CLIP + an optional text-side part + named block-prompt parts of the vision and text towers.

    Args:
        clip_model: ``clip.model.CLIP`` (frozen by ``freeze_clip``); parts take its device and stay fp32
            (master weights; cast at use). Vision parts need a ViT; ResNet backbones serve ZeroshotCLIP / CoOp.
        classnames: class names in label order ("_" becomes a space).
        template: hand-crafted template with one "{}" (CUSTOM_TEMPLATES[DATASET.NAME]) for the zero-shot
            text features (fixed text side, guidance logits, CAVPT selector).
        text: the text-side part, registered as ``prompt_learner``; None: the zero-shot text features.
        vision: name -> vision block prompts, each registered under its name (``model.visual_prompts``).
        text_blocks: name -> text-tower block prompts (deep text prompts), registered under their names.
        text_chunk_size: prompts per text-encoder chunk (bounds memory for 1000 classes; CoCoOp: image x
            class prompts, TRAINER.COCOOP.CHUNK_SIZE).

    Non-persistent buffer ``zs_text_features`` [n_cls, E] (normalised) is computed once here under no_grad.
    """

    def __init__(
        self,
        clip_model: clip.model.CLIP,
        classnames: Sequence[str],
        template: str,
        *,
        text: Optional[TextPrompts] = None,
        vision: Optional[Mapping[str, BlockPrompts]] = None,
        text_blocks: Optional[Mapping[str, BlockPrompts]] = None,
        text_chunk_size: int = 256,
    ) -> None:
        super().__init__()
        vision, text_blocks = dict(vision or {}), dict(text_blocks or {})
        if "{}" not in template:
            raise ValueError(f"template {template!r}: expected a '{{}}' placeholder for the class name")
        self.clip_model = clip_model
        self.text_encoder = TextEncoder(clip_model, chunk_size=text_chunk_size)
        self.vision = PromptedVisionEncoder(clip_model.visual)
        if vision and not self.vision.is_vit:
            raise ValueError(f"vision parts {sorted(vision)} need a ViT CLIP backbone, got {type(clip_model.visual).__name__}")
        for name, part in {**vision, **text_blocks}.items():
            if part.needs_learned_text and text is None:
                raise ValueError(f"part {name!r} ({type(part).__name__}) needs a learned text part (its queries)")
        if text is not None and text.image_conditioned and vision:
            raise ValueError(f"an image-conditioned text part ({type(text).__name__}) takes no vision parts, "
                             f"got {sorted(vision)}")
        self.n_cls = len(classnames)
        device = clip_model.text_projection.device

        names = [name.replace("_", " ") for name in classnames]
        tokens = tokenize_class_prompts(names, template, clip_model.context_length).to(device)
        with torch.no_grad():
            zs_text = F.normalize(self.text_encoder.encode_text_tokens(tokens), dim=-1)  # [n_cls, E]
        self.register_buffer("zs_text_features", zs_text, persistent=False)

        self.prompt_learner = text
        self.vision_parts: Dict[str, BlockPrompts] = {}
        self.text_block_parts: Dict[str, BlockPrompts] = {}
        for table, parts in ((self.vision_parts, vision), (self.text_block_parts, text_blocks)):
            for name, part in parts.items():
                if hasattr(self, name):
                    raise ValueError(f"part name {name!r} is taken by the prompted CLIP; choose another")
                self.add_module(name, part.to(device))
                table[name] = part

    @property
    def logit_scale(self) -> torch.Tensor:
        """exp(CLIP's logit_scale), a 0-dim tensor (~100 for trained CLIP)."""
        return self.clip_model.logit_scale.exp()

    def freeze_clip(self) -> None:
        """Set requires_grad False on every CLIP parameter (the learnable parts are outside CLIP)."""
        for parameter in self.clip_model.parameters():
            parameter.requires_grad_(False)

    def encode_learned_text(self) -> TextFeatures:
        """Text features of the text part (grad-enabled); without one both fields hold the normalised
        zero-shot features (CAVPT, the only user of ``raw``, requires a learned text part)."""
        if self.prompt_learner is None:
            return TextFeatures(raw=self.zs_text_features, normalized=self.zs_text_features)
        raw = self.prompt_learner.encode(self.text_encoder, list(self.text_block_parts.values()))  # [n_cls, E]
        return TextFeatures(raw=raw, normalized=F.normalize(raw, dim=-1))

    def learned_text_features(self) -> torch.Tensor:
        """[n_cls, E] normalised learned text features (zero-shot ones without a text part)."""
        return self.encode_learned_text().normalized

    @torch.no_grad()
    def zero_shot_image_features(self, image: torch.Tensor) -> torch.Tensor:
        """Frozen CLIP image features, normalised: image [B, 3, R, R] -> [B, E] (cacheable per test set)."""
        return F.normalize(self.vision(image).features, dim=-1)

    def forward(
        self,
        image: torch.Tensor,
        text_features: Optional[TextFeatures] = None,
        *,
        need_guidance: bool = False,
        zs_image_features: Optional[torch.Tensor] = None,
        return_attention: bool = False,
    ) -> PromptedCLIPOutput:
        """Scaled cosine logits of prompted image features against (learned) text features.

        Args:
            image: [B, 3, R, R] normalised images.
            text_features: cached ``encode_learned_text()`` (e.g. once per evaluation); computed if None.
            need_guidance: also compute logits_zs_image / logits_zs_text (guidance loss, docs/reference.md 7.5).
            zs_image_features: [B, E] cached ``zero_shot_image_features(image)`` for the parts' selectors.
            return_attention: also return the last block's CLS-to-patch attention.
        """
        if self.prompt_learner is not None and self.prompt_learner.image_conditioned:
            return self._forward_conditioned(image, text_features, need_guidance, return_attention)
        text = self.encode_learned_text() if text_features is None else text_features
        parts = list(self.vision_parts.values())
        context = PromptContext(text=text, zs_text=self.zs_text_features, logit_scale=self.logit_scale)
        if need_guidance or any(part.needs_zero_shot_image for part in parts):
            if zs_image_features is None:
                context.zs_image = self.zero_shot_image_features(image)
            else:
                context.zs_image = F.normalize(zs_image_features, dim=-1)
        for part in parts:
            part.prepare(context)
        out = self.vision(image, parts, context, return_attention=return_attention)
        scale = context.logit_scale
        image_features = F.normalize(out.features, dim=-1)  # [B, E]
        logits = scale * image_features @ text.normalized.t()
        logits_zs_image = logits_zs_text = None
        if need_guidance:
            logits_zs_image = scale * context.zs_image.to(text.normalized.dtype) @ text.normalized.t()
            logits_zs_text = scale * image_features @ self.zs_text_features.to(image_features.dtype).t()
        return PromptedCLIPOutput(
            logits, logits_zs_image, logits_zs_text, out.layer_logits, context.records.get("topk_indices"),
            out.attention, image_features, text.normalized,
        )

    def _forward_conditioned(
        self, image: torch.Tensor, text_features: Optional[TextFeatures], need_guidance: bool, return_attention: bool
    ) -> PromptedCLIPOutput:
        """CoCoOp: logits[b, c] = scale x f_b . t_(b,c), with t the normalised features of image b's prompts.

        The image side is the frozen CLIP's, so the guidance logits are logits_zs_image = logits and
        logits_zs_text = scale x f @ zero-shot text.
        """
        if text_features is not None:
            raise ValueError("image-conditioned (CoCoOp) text features depend on each image; pass text_features=None")
        out = self.vision(image, return_attention=return_attention)
        image_features = F.normalize(out.features, dim=-1)  # [B, E]
        text = self.prompt_learner.encode_for_images(
            self.text_encoder, image_features, list(self.text_block_parts.values())
        )  # [B, n_cls, E]
        scale = self.logit_scale
        logits = scale * torch.einsum("be,bce->bc", image_features, text.to(image_features.dtype))
        logits_zs_text = None
        if need_guidance:
            logits_zs_text = scale * image_features @ self.zs_text_features.to(image_features.dtype).t()
        return PromptedCLIPOutput(
            logits, logits if need_guidance else None, logits_zs_text, [], None, out.attention
        )
