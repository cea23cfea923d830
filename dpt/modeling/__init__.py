"""Prompted CLIP: loading (OpenAI or open_clip backbones), text/vision encoders with prompts, CAVPT (public names
re-exported here)."""
from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.cavpt import CAVPTOutput, ClassAwarePromptGenerator
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
from dpt.modeling.prompt_learner import CLASS_TOKEN_POSITIONS, PromptLearner
from dpt.modeling.prompted_clip import PromptedCLIP, PromptedCLIPOutput, TextFeatures
from dpt.modeling.prompted_vit import PromptedVisionEncoder, VisionOutput, VisualPrompts
from dpt.modeling.templates import CUSTOM_TEMPLATES, IMAGENET_TEMPLATES_SELECT, custom_template
from dpt.modeling.text_encoder import TextEncoder

__all__ = [
    "CAVPTOutput",
    "CLASS_TOKEN_POSITIONS",
    "CLIP_MODELS",
    "CUSTOM_TEMPLATES",
    "ClassAwarePromptGenerator",
    "ClipWeights",
    "IMAGENET_TEMPLATES_SELECT",
    "ImagePreprocess",
    "OpenCLIP",
    "PRECISIONS",
    "PromptLearner",
    "PromptedCLIP",
    "PromptedCLIPOutput",
    "PromptedVisionEncoder",
    "TextEncoder",
    "TextFeatures",
    "VisionOutput",
    "VisualPrompts",
    "backbone_id",
    "clip",
    "clip_cache_dir",
    "custom_template",
    "image_preprocess",
    "load_clip",
]
