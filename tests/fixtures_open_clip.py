"""A tiny random open_clip CLIP written as an open_clip model-config JSON plus a state-dict file.

Why: no open_clip weights can be downloaded here; a tiny model of open_clip's real ``CLIP`` class (12 vision
blocks, so layer indexing matters, as the OpenAI tiny CLIP) loads through ``open_clip:JSON:WEIGHTS``, the very
path users hit. Tests needing it skip, with the reason, where open_clip_torch is not installed.
"""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any, Dict

import pytest
import torch

__all__ = ["HAS_OPEN_CLIP", "TINY_OPEN_CLIP_CONFIG", "needs_open_clip", "tiny_open_clip_name", "write_tiny_open_clip"]

HAS_OPEN_CLIP = importlib.util.find_spec("open_clip") is not None
needs_open_clip = pytest.mark.skipif(
    not HAS_OPEN_CLIP, reason="open_clip_torch is not installed (pip install -e .[open_clip])"
)

TINY_OPEN_CLIP_CONFIG: Dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 12, "width": 64, "patch_size": 8, "head_width": 64},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
}


def write_tiny_open_clip(folder: Path, config: Dict[str, Any] = TINY_OPEN_CLIP_CONFIG, seed: int = 0) -> str:
    """Write ``folder/tiny_open_clip.json`` and ``.pt`` (open_clip's init from ``seed``, logit scale 100);
    return the backbone name ``open_clip:<json>:<pt>``."""
    from dpt.modeling.backbones.open_clip_loader import build_open_clip

    folder.mkdir(parents=True, exist_ok=True)
    config_path, weights_path = folder / "tiny_open_clip.json", folder / "tiny_open_clip.pt"
    config_path.write_text(json.dumps(config, indent=2))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_open_clip(config)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(100.0))  # trained CLIP's scale, as the OpenAI tiny CLIP
    torch.save(model.state_dict(), weights_path)
    return f"open_clip:{config_path}:{weights_path}"


@pytest.fixture(scope="session")
def tiny_open_clip_name(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``open_clip:<json>:<pt>`` of the tiny random open_clip CLIP (skips without open_clip_torch)."""
    pytest.importorskip("open_clip", reason="open_clip_torch is not installed (pip install -e .[open_clip])")
    return write_tiny_open_clip(tmp_path_factory.mktemp("tiny_open_clip"))
