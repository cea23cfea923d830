"""Fixtures for tiny random CLIP models, built from the real ``clip.model.CLIP`` and saved to files.

Why: real weights cannot be downloaded here, and a tiny model with the real class exercises the same
code paths (12 vision blocks so layer indexing matters) through the same loader users hit.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Dict

import pytest
import torch
import torch.nn as nn

from dpt.demo.tiny_clip import TINY_LOGIT_SCALE, TINY_SEED, make_tiny_clip, tiny_clip_state_dict  # noqa: F401
from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.backbones.loader import load_clip


def save_torchscript_state(state: Dict[str, torch.Tensor], path: Path) -> None:
    """Save ``state`` as a TorchScript archive whose ``state_dict()`` returns exactly ``state``.

    Why: OpenAI's files are TorchScript archives; a scripted module tree holding the tensors as buffers
    under the same dotted names exercises the loader's ``torch.jit.load(...).state_dict()`` branch.
    """
    root = nn.Module()
    for name, tensor in state.items():
        *parents, leaf = name.split(".")
        module = root
        for part in parents:
            if part not in module._modules:
                module.add_module(part, nn.Module())
            module = module._modules[part]
        module.register_buffer(leaf, tensor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(root), str(path))


@pytest.fixture(scope="session")
def tiny_clip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a ``torch.save`` state dict of ``make_tiny_clip()`` (12 vision blocks)."""
    path = tmp_path_factory.mktemp("tiny_clip") / "tiny_clip.pt"
    torch.save(tiny_clip_state_dict(make_tiny_clip()), path)
    return path


@pytest.fixture(scope="session")
def tiny_clip_jit_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the same tiny CLIP saved as a TorchScript archive (OpenAI's on-disk format)."""
    path = tmp_path_factory.mktemp("tiny_clip_jit") / "tiny_clip_jit.pt"
    save_torchscript_state(tiny_clip_state_dict(make_tiny_clip()), path)
    return path


@pytest.fixture
def tiny_clip(tiny_clip_path: Path) -> clip.model.CLIP:
    """A fresh fp32 tiny CLIP loaded through ``load_clip`` (function scope: tests may freeze or mutate it)."""
    return load_clip(str(tiny_clip_path))
