"""What an OpenAI-format CLIP weights file implies for the config, read from tensor shapes without building a model.

Why: the preflight (dpt/preflight.py) checks INPUT.SIZE and the layer keys (BOTTOMLIMIT, ...) against the weights
before the run folder exists; building CLIP for that would cost what the run's own build costs. ``torch.save`` files
are memory-mapped and safetensors files read by their header, so only the shapes are touched; a TorchScript archive
(OpenAI's download format) is loaded, as the run itself will.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Dict, NamedTuple, Optional, Tuple

import torch

from dpt.modeling.backbones.weights_file import _is_torchscript, read_state_dict

_VISION_BLOCK = re.compile(r"visual\.transformer\.resblocks\.(\d+)\.")


class BackboneShape(NamedTuple):
    """The image input size (H, W) the weights were trained at, and the number of ViT blocks (None: a ResNet)."""

    input_size: Tuple[int, int]
    vision_layers: Optional[int]


def tensor_shapes(path: Path) -> Dict[str, Tuple[int, ...]]:
    """Name -> shape of every tensor in a weights file (formats as ``read_state_dict``)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
    if not _is_torchscript(path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            return {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
        except Exception:  # a format mmap cannot read (pre-1.6 torch files): the full reader says what is wrong
            pass
    return {k: tuple(v.shape) for k, v in read_state_dict(path).items()}


def backbone_shape(path: Path) -> BackboneShape:
    """Input size and ViT depth of the OpenAI-format CLIP in ``path``.

    ViT: resolution = patch size (``visual.conv1.weight`` [W, 3, p, p]) x grid side (``visual.positional_embedding``
    [grid^2 + 1, W]); blocks counted from ``visual.transformer.resblocks.<i>``. ResNet: 32 x the attention pool's
    grid side (``visual.attnpool.positional_embedding`` [grid^2 + 1, C]).
    """
    shapes = tensor_shapes(path)
    if "visual.positional_embedding" in shapes and "visual.conv1.weight" in shapes:
        grid = round((shapes["visual.positional_embedding"][0] - 1) ** 0.5)
        side = shapes["visual.conv1.weight"][-1] * grid
        blocks = {int(m.group(1)) for k in shapes if (m := _VISION_BLOCK.match(k))}
        return BackboneShape((side, side), len(blocks))
    if "visual.attnpool.positional_embedding" in shapes:
        side = 32 * round((shapes["visual.attnpool.positional_embedding"][0] - 1) ** 0.5)
        return BackboneShape((side, side), None)
    raise ValueError(f"{path}: no 'visual.positional_embedding' or 'visual.attnpool.positional_embedding' tensor, "
                     f"so this is not an OpenAI-format CLIP state dict")
