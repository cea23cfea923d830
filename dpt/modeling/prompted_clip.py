"""The one prompted-CLIP model behind ZeroshotCLIP, CoOp, CoCoOp, VPT, VLP and DPT (docs/design.md "One model,
many methods").

Why: the methods differ only in switches (learned or fixed text, image-conditioned text, VPT-deep layers,
CAVPT layers), so one module holds the frozen CLIP, the learnable parts and the cached zero-shot text
features, and the trainers pick switches, losses and optimiser groups.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.cavpt import ClassAwarePromptGenerator
from dpt.modeling.prompt_learner import PromptLearner
from dpt.modeling.prompt_tokens import tokenize_class_prompts
from dpt.modeling.prompted_vit import PromptedVisionEncoder, VisualPrompts
from dpt.modeling.text_encoder import TextEncoder


class TextFeatures(NamedTuple):
    """Learned (or zero-shot) text features: raw [n_cls, E] unnormalised (CAVPT queries), normalized [n_cls, E]."""

    raw: torch.Tensor
    normalized: torch.Tensor


class PromptedCLIPOutput(NamedTuple):
    """Outputs of ``PromptedCLIP.forward`` (docs/reference.md 7.5, 7.6 item 6).

    logits: [B, n_cls] prompted image feature vs learned text (the prediction).
    logits_zs_image: [B, n_cls] frozen zero-shot image feature vs learned text ("logits1"), or None.
    logits_zs_text: [B, n_cls] prompted image feature vs zero-shot text ("logits2"), or None.
    layer_logits: per CAVPT layer [B, K, n_cls].
    topk_indices: [B, K] zero-shot top-K classes, descending, or None without CAVPT.
    attention: [B, n_patches] last-block CLS-to-patch attention, or None.
    """

    logits: torch.Tensor
    logits_zs_image: Optional[torch.Tensor]
    logits_zs_text: Optional[torch.Tensor]
    layer_logits: List[torch.Tensor]
    topk_indices: Optional[torch.Tensor]
    attention: Optional[torch.Tensor]


class PromptedCLIP(nn.Module):
    """Frozen CLIP + optional CoOp text context, VPT-deep prompts and CAVPT generator.

    Args:
        clip_model: ``clip.model.CLIP`` (frozen by ``freeze_clip``); learnable parts take its device and stay fp32 (master weights; cast at use).
            Visual prompts need a ViT; ResNet backbones serve ZeroshotCLIP / CoOp.
        classnames: class names in label order ("_" becomes a space).
        template: hand-crafted template with one "{}" (CUSTOM_TEMPLATES[DATASET.NAME]) for the zero-shot
            text features (fixed text side, guidance logits, CAVPT selector).
        learn_text: learn a CoOp context (n_ctx, ctx_init, csc, class_token_position: TRAINER.COOP.*).
        image_conditioned: CoCoOp (docs/reference.md 9.1): a meta-net shifts the context by each image's feature, so
            the text features are per image ``[B, n_cls, E]``; needs learn_text, no visual prompts.
        vpt_layers: 0-based blocks with VPT-deep prompts of n_vpt_ctx tokens (TRAINER.VPT.N_CTX).
        cavpt_layers: 0-based blocks with CAVPT (blocks BOTTOMLIMIT-1 .. last); needs learn_text.
        n_cavpt: K = TRAINER.SELECTED_COVPT.CPN, capped at n_cls with a printed warning.
        n_key_tokens, attn_dim, shared_cavpt: CAVPT generator settings (see ClassAwarePromptGenerator).
        text_chunk_size: prompts per text-encoder chunk (bounds memory for 1000 classes; CoCoOp: image x
            class prompts, TRAINER.COCOOP.CHUNK_SIZE).

    Raises ``ClassNameTooLong`` (a ValueError) when a class name does not fit the template or the context.
    Learnable submodules (None when switched off): ``prompt_learner``, ``visual_prompts``, ``cavpt``.
    Non-persistent buffer ``zs_text_features`` [n_cls, E] (normalised) is computed once here under no_grad.
    """

    def __init__(
        self,
        clip_model: clip.model.CLIP,
        classnames: Sequence[str],
        template: str,
        *,
        learn_text: bool,
        n_ctx: int = 16,
        ctx_init: str = "",
        csc: bool = False,
        class_token_position: str = "end",
        image_conditioned: bool = False,
        vpt_layers: Sequence[int] = (),
        n_vpt_ctx: int = 0,
        cavpt_layers: Sequence[int] = (),
        n_cavpt: int = 0,
        n_key_tokens: int = 10,
        attn_dim: int = 32,
        shared_cavpt: bool = False,
        text_chunk_size: int = 256,
    ) -> None:
        super().__init__()
        if "{}" not in template:
            raise ValueError(f"template {template!r}: expected a '{{}}' placeholder for the class name")
        if cavpt_layers and not learn_text:
            raise ValueError("cavpt_layers need learn_text=True (CAVPT queries are learned text features)")
        if image_conditioned and (not learn_text or vpt_layers or cavpt_layers):
            raise ValueError("image_conditioned (CoCoOp) needs learn_text=True and no vpt_layers/cavpt_layers")
        self.clip_model = clip_model
        self.text_encoder = TextEncoder(clip_model, chunk_size=text_chunk_size)
        self.vision = PromptedVisionEncoder(clip_model.visual)
        if (vpt_layers or cavpt_layers) and not self.vision.is_vit:
            raise ValueError(
                f"vpt_layers/cavpt_layers need a ViT CLIP backbone, got {type(clip_model.visual).__name__}"
            )
        self.vpt_layers = tuple(int(i) for i in vpt_layers)
        self.cavpt_layers = tuple(int(i) for i in cavpt_layers)
        self.n_cls = len(classnames)
        self.image_conditioned = image_conditioned
        device = clip_model.text_projection.device

        names = [name.replace("_", " ") for name in classnames]
        tokens = tokenize_class_prompts(names, template, clip_model.context_length).to(device)
        with torch.no_grad():
            zs_text = F.normalize(self.text_encoder.encode_text_tokens(tokens), dim=-1)  # [n_cls, E]
        self.register_buffer("zs_text_features", zs_text, persistent=False)

        self.prompt_learner: Optional[PromptLearner] = None
        if learn_text:
            self.prompt_learner = PromptLearner(
                clip_model, classnames, n_ctx, ctx_init, csc, class_token_position, image_conditioned
            )
        self.visual_prompts: Optional[VisualPrompts] = None
        if self.vpt_layers:
            self.visual_prompts = VisualPrompts(len(self.vpt_layers), n_vpt_ctx, self.vision.width).to(device)
        self.cavpt: Optional[ClassAwarePromptGenerator] = None
        self.n_cavpt = 0
        if self.cavpt_layers:
            if n_cavpt > self.n_cls:
                print(f"Warning: CAVPT length {n_cavpt} capped at the number of classes {self.n_cls}")
            self.n_cavpt = max(0, min(n_cavpt, self.n_cls))
            text_dim = clip_model.text_projection.shape[1]
            self.cavpt = ClassAwarePromptGenerator(
                len(self.cavpt_layers), text_dim, self.vision.width, self.n_cls, n_key_tokens, attn_dim, shared_cavpt
            ).to(device)

    @property
    def logit_scale(self) -> torch.Tensor:
        """exp(CLIP's logit_scale), a 0-dim tensor (~100 for trained CLIP)."""
        return self.clip_model.logit_scale.exp()

    def freeze_clip(self) -> None:
        """Set requires_grad False on every CLIP parameter (the learnable parts are outside CLIP)."""
        for parameter in self.clip_model.parameters():
            parameter.requires_grad_(False)

    def encode_learned_text(self) -> TextFeatures:
        """Text features of the learned prompts (grad-enabled); without learn_text both fields hold the
        normalised zero-shot features (CAVPT, the only user of ``raw``, requires learn_text)."""
        if self.prompt_learner is None:
            return TextFeatures(raw=self.zs_text_features, normalized=self.zs_text_features)
        raw = self.text_encoder(self.prompt_learner(), self.prompt_learner.tokenized_prompts)  # [n_cls, E]
        return TextFeatures(raw=raw, normalized=F.normalize(raw, dim=-1))

    def learned_text_features(self) -> torch.Tensor:
        """[n_cls, E] normalised learned text features (zero-shot ones without learn_text)."""
        return self.encode_learned_text().normalized

    def encode_conditioned_text(self, image_features: torch.Tensor) -> torch.Tensor:
        """CoCoOp's text features of every (image, class) prompt, normalised: [B, E] -> [B, n_cls, E].

        The B x n_cls prompts are assembled chunk by chunk inside the text encoder (``encode_assembled``), so
        memory is bounded by ``text_chunk_size`` prompts, not by B x n_cls. Pairs are ordered by the class's
        EOT position, so each chunk is cut close to its own prompts' length (exact under the causal mask).
        """
        learner = self.prompt_learner
        ctx = learner.conditioned_context(image_features)  # [B, n_ctx, D]
        n_images, n_cls = ctx.shape[0], learner.n_cls
        device = ctx.device
        class_eot = learner.tokenized_prompts.argmax(dim=-1)  # [n_cls]
        classes = class_eot.argsort(stable=True).repeat_interleave(n_images)  # [B * n_cls], shortest prompts first
        images = torch.arange(n_images, device=device).repeat(n_cls)  # [B * n_cls]
        features = self.text_encoder.encode_assembled(
            lambda rows, length: learner.assemble(ctx[images[rows]], classes[rows], length), class_eot[classes]
        )  # [B * n_cls, E] in pair order
        order = (images * n_cls + classes).argsort()  # pair order -> image-major
        return F.normalize(features[order].view(n_images, n_cls, -1), dim=-1)

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
            zs_image_features: [B, E] cached ``zero_shot_image_features(image)`` for the selector.
            return_attention: also return the last block's CLS-to-patch attention.
        """
        if self.image_conditioned:
            return self._forward_conditioned(image, text_features, need_guidance, return_attention)
        text = self.encode_learned_text() if text_features is None else text_features
        scale = self.logit_scale
        zs_image: Optional[torch.Tensor] = None
        if self.cavpt is not None or need_guidance:
            if zs_image_features is None:
                zs_image = self.zero_shot_image_features(image)
            else:
                zs_image = F.normalize(zs_image_features, dim=-1)
        topk: Optional[torch.Tensor] = None
        queries: Optional[torch.Tensor] = None
        if self.cavpt is not None:
            with torch.no_grad():
                zs_logits = scale * zs_image @ self.zs_text_features.to(zs_image.dtype).t()  # [B, n_cls]
                topk = zs_logits.topk(self.n_cavpt, dim=-1).indices  # [B, K] descending
            queries = text.raw[topk]  # [B, K, E] unnormalised (docs/reference.md 7.8 #12)

        visual_prompts = self.visual_prompts.ctx if self.visual_prompts is not None else None
        out = self.vision(
            image,
            visual_prompts=visual_prompts,
            vpt_layers=self.vpt_layers,
            cavpt=self.cavpt,
            cavpt_layers=self.cavpt_layers,
            class_queries=queries,
            return_attention=return_attention,
        )
        image_features = F.normalize(out.features, dim=-1)  # [B, E]
        logits = scale * image_features @ text.normalized.t()
        logits_zs_image = logits_zs_text = None
        if need_guidance:
            logits_zs_image = scale * zs_image.to(text.normalized.dtype) @ text.normalized.t()
            logits_zs_text = scale * image_features @ self.zs_text_features.to(image_features.dtype).t()
        return PromptedCLIPOutput(logits, logits_zs_image, logits_zs_text, out.layer_logits, topk, out.attention)

    def _forward_conditioned(
        self, image: torch.Tensor, text_features: Optional[TextFeatures], need_guidance: bool, return_attention: bool
    ) -> PromptedCLIPOutput:
        """CoCoOp: logits[b, c] = scale x f_b . t_(b,c), with t the normalised features of image b's prompts.

        The image side is the frozen CLIP's, so the guidance logits are logits_zs_image = logits and
        logits_zs_text = scale x f @ zero-shot text.
        """
        if text_features is not None:
            raise ValueError("image_conditioned (CoCoOp) text features depend on each image; pass text_features=None")
        out = self.vision(image, return_attention=return_attention)
        image_features = F.normalize(out.features, dim=-1)  # [B, E]
        text = self.encode_conditioned_text(image_features)  # [B, n_cls, E]
        scale = self.logit_scale
        logits = scale * torch.einsum("be,bce->bc", image_features, text.to(image_features.dtype))
        logits_zs_text = None
        if need_guidance:
            logits_zs_text = scale * image_features @ self.zs_text_features.to(image_features.dtype).t()
        return PromptedCLIPOutput(
            logits, logits if need_guidance else None, logits_zs_text, [], None, out.attention
        )
