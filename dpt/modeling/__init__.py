"""Prompted CLIP: loading (OpenAI or open_clip backbones), the one text and ViT forward, and the parts methods
compose (public names re-exported here).

Adding a method = composing parts (``parts.py``); shared code gets no new branch:

- text side (``TextPrompts``, registered as ``prompt_learner``): none (the template's zero-shot features),
  ``PromptLearner`` (CoOp's learned context, ``encode``), ``ConditionedPromptLearner`` (CoCoOp,
  ``image_conditioned = True``, ``encode_for_images``).
- block prompts (``BlockPrompts``), named parts of the vision tower (``PromptedCLIP(vision={name: part})``) or
  the text tower (``text_blocks={name: part}``): ``VisualPrompts`` (VPT-deep), ``ClassAwarePrompts`` (CAVPT).
  A part sets ``blocks`` and answers ``tokens_for(block_index, x [B, L, W], context) -> [B, n, W] or None``;
  class attributes say where the tokens go: ``position`` "end" (after the last token) or "front" (positions
  1..n), ``replace`` (overwrite n tokens and keep them; else insert) and ``strip`` (remove inserted tokens
  after the block). ``embedding_tokens`` appends vision tokens before ln_pre, kept; ``prepare(context)`` runs
  once per forward; ``PromptContext`` carries the text / zero-shot features in and ``records`` out.
  Deep text prompts (IVLP, MaPLe, PromptSRC): a text block part with position "front", replace True.
  MaPLe's coupled vision prompts: a vision part holding a plain reference to the text prompts, with
  ``embedding_tokens`` for layer 0 and position "end", replace True for blocks 1..J-1.
"""
from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.cavpt import CAVPTOutput, ClassAwarePromptGenerator, ClassAwarePrompts
from dpt.modeling.conditioned_prompt_learner import ConditionedPromptLearner
from dpt.modeling.backbones.loader import (
    CLIP_MODELS,
    PRECISIONS,
    ClipWeights,
    backbone_id,
    clip_cache_dir,
    image_preprocess,
    load_clip,
)
from dpt.modeling.backbones.open_clip_adapter import ImagePreprocess, OpenCLIP
from dpt.modeling.parts import BlockPrompts, PromptContext, TextFeatures, TextPrompts
from dpt.modeling.prompt_learner import CLASS_TOKEN_POSITIONS, PromptLearner
from dpt.modeling.prompted_clip import PromptedCLIP, PromptedCLIPOutput
from dpt.modeling.prompted_vit import PromptedVisionEncoder, VisionOutput
from dpt.modeling.visual_prompts import VisualPrompts
from dpt.modeling.templates import CUSTOM_TEMPLATES, IMAGENET_TEMPLATES_SELECT, custom_template
from dpt.modeling.text_encoder import TextEncoder

__all__ = [
    "BlockPrompts",
    "CAVPTOutput",
    "CLASS_TOKEN_POSITIONS",
    "CLIP_MODELS",
    "CUSTOM_TEMPLATES",
    "ClassAwarePromptGenerator",
    "ClassAwarePrompts",
    "ConditionedPromptLearner",
    "ClipWeights",
    "IMAGENET_TEMPLATES_SELECT",
    "ImagePreprocess",
    "OpenCLIP",
    "PRECISIONS",
    "PromptContext",
    "PromptLearner",
    "PromptedCLIP",
    "PromptedCLIPOutput",
    "PromptedVisionEncoder",
    "TextEncoder",
    "TextFeatures",
    "TextPrompts",
    "VisionOutput",
    "VisualPrompts",
    "backbone_id",
    "clip",
    "clip_cache_dir",
    "custom_template",
    "image_preprocess",
    "load_clip",
]
