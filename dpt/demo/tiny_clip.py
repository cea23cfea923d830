"""Tiny random CLIP models built from the real ``clip.model.CLIP`` class (tests, the offline demo, benchmarks).

Why: real weights cannot be downloaded everywhere; a tiny model of the real class runs the same code paths
(12 vision blocks so layer indexing matters) through the same loader users hit.
"""
from __future__ import annotations

import math
from typing import Dict, Tuple, Union

import torch
import torch.nn as nn

from dpt.cache.atomic import save_torch_atomic

from dpt.modeling.backbones.clip_import import clip

TINY_SEED = 20220817
TINY_LOGIT_SCALE = math.log(100.0)  # trained CLIP's exp(logit_scale) is 100


def _fill_value(name: str, noise: torch.Tensor) -> torch.Tensor:
    """Scale standard-normal noise to roughly CLIP's init scale for the tensor called ``name``."""
    if name == "logit_scale":
        return torch.full_like(noise, TINY_LOGIT_SCALE)
    if name.endswith("running_var"):  # ResNet BatchNorm: must stay positive
        return 1.0 + 0.1 * noise.abs()
    if ("ln_" in name or "bn" in name) and name.endswith(".weight"):
        return 1.0 + 0.1 * noise
    if name.endswith("bias"):
        return 0.02 * noise
    if name in ("visual.proj", "text_projection"):  # used as x @ proj: fan-in is dim 0
        return noise / math.sqrt(noise.shape[0])
    if name == "token_embedding.weight" or "embedding" in name:
        return 0.1 * noise
    if noise.dim() >= 2:  # Linear [out, in] / Conv [out, in, k, k]
        return noise / math.sqrt(noise[0].numel())
    return 0.1 * noise


def make_tiny_clip(
    vision_layers: Union[int, Tuple[int, int, int, int]] = 12,
    embed_dim: int = 32,
    image_resolution: int = 32,
    vision_width: int = 64,
    vision_patch_size: int = 8,
    context_length: int = 77,
    vocab_size: int = 49408,
    transformer_width: int = 64,
    transformer_layers: int = 2,
    seed: int = TINY_SEED,
) -> clip.model.CLIP:
    """A fp32 ``clip.model.CLIP`` with tiny widths and seeded weights (16 patches of 8x8 on 32x32 images).

    Weights are drawn from one ``torch.Generator`` in sorted state-dict order and rounded to fp16-representable
    values, so the model equals what ``load_clip`` rebuilds from its saved state dict (fp16 or fp32).
    Heads = width // 64, as ``clip.build_model`` derives them. A 4-tuple ``vision_layers`` gives CLIP's
    ModifiedResNet instead (e.g. ``(1, 1, 1, 1)`` with ``vision_width=8``; images of 32x32).
    """
    model = clip.model.CLIP(
        embed_dim,
        image_resolution,
        vision_layers,
        vision_width,
        vision_patch_size,
        context_length,
        vocab_size,
        transformer_width,
        transformer_width // 64,
        transformer_layers,
    )
    generator = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    with torch.no_grad():
        for name in sorted(state):
            if not state[name].is_floating_point():  # BatchNorm num_batches_tracked
                continue
            noise = torch.randn(state[name].shape, generator=generator)
            state[name].copy_(_fill_value(name, noise).half().float())
    return model.eval()


def tiny_clip_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The model's state dict plus the int entries OpenAI's archives carry (``clip.build_model`` drops them)."""
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    state["input_resolution"] = torch.tensor(model.visual.input_resolution)
    state["context_length"] = torch.tensor(model.context_length)
    state["vocab_size"] = torch.tensor(model.vocab_size)
    return state


def save_tiny_clip(path: str, **kwargs) -> str:
    """Write ``make_tiny_clip(**kwargs)`` as a state-dict file that ``load_clip(path)`` reads; atomic."""
    return save_torch_atomic(tiny_clip_state_dict(make_tiny_clip(**kwargs)), path)
