"""Write the golden tensors of the modeling paths to tests/data/golden/*.pt (docs/design.md "Golden tests").

Why: a seeded tiny CLIP, seeded prompt initialisations and seeded inputs give fixed outputs for the text
encoder, every trainer's switch set of the prompted CLIP, and the CAVPT generator; tests/test_prompted_clip.py
recomputes them with ``golden_outputs`` and compares. Regenerate only with this script, saying why in the
commit: ``.venv/bin/python scripts/make_goldens.py``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict

import torch

from dpt.demo.tiny_clip import make_tiny_clip
from dpt.modeling import ClassAwarePromptGenerator, TextEncoder, clip

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import compose_clip  # noqa: E402

GOLDEN_DIR = ROOT / "tests" / "data" / "golden"
CLASSNAMES = ["cat", "golden_retriever", "sea urchin", "aeroplane", "x", "tabby cat"]
TEMPLATE = "a photo of a {}."
PROMPTS = ["a photo of a cat.", "x", "a centered satellite photo of annual crop land."]

# Switch sets of the trainers (0-based layers of the 12-block tiny ViT) plus CoOp/CAVPT variants.
SWITCHES: Dict[str, dict] = {
    "zsclip": dict(learn_text=False),
    "coop": dict(learn_text=True, n_ctx=4),
    "coop_csc_middle": dict(learn_text=True, n_ctx=4, csc=True, class_token_position="middle"),
    "cocoop": dict(learn_text=True, n_ctx=4, image_conditioned=True, text_chunk_size=5),
    "vpt": dict(learn_text=False, vpt_layers=range(12), n_vpt_ctx=3),
    "vlp": dict(learn_text=True, n_ctx=4, vpt_layers=range(12), n_vpt_ctx=3),
    "dpt": dict(learn_text=True, n_ctx=4, vpt_layers=range(11), n_vpt_ctx=3, cavpt_layers=(11,), n_cavpt=3),
    "dpt_shared_top4": dict(
        learn_text=True, n_ctx=4, vpt_layers=range(8), n_vpt_ctx=3, cavpt_layers=range(8, 12), n_cavpt=3,
        shared_cavpt=True,
    ),
}


def golden_images() -> torch.Tensor:
    """[3, 3, 32, 32] seeded inputs for the tiny CLIP."""
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(7))


def _prompted_case(clip_model: torch.nn.Module, switches: dict) -> Dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = compose_clip(clip_model, CLASSNAMES, TEMPLATE, **switches)
    with torch.no_grad():
        out = model(golden_images(), need_guidance=True, return_attention=True)
    case = {
        "logits": out.logits,
        "logits_zs_image": out.logits_zs_image,
        "logits_zs_text": out.logits_zs_text,
        "attention": out.attention,
    }
    if out.layer_logits:
        case["layer_logits"] = torch.stack(out.layer_logits)  # [n_cavpt_layers, B, K, n_cls]
        case["topk_indices"] = out.topk_indices
    return case


def _cavpt_case() -> Dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        generator = ClassAwarePromptGenerator(n_layers=2, text_dim=32, width=64, n_cls=6, n_key_tokens=4, attn_dim=8)
    inputs = torch.Generator().manual_seed(2)
    sequence = torch.randn(3, 17, 64, generator=inputs)
    queries = torch.randn(3, 5, 32, generator=inputs)
    case = {}
    with torch.no_grad():
        for layer in range(2):
            out = generator(layer, sequence, queries)
            case[f"tokens_{layer}"], case[f"logits_{layer}"] = out.tokens, out.logits
    return case


def golden_outputs() -> Dict[str, Dict[str, torch.Tensor]]:
    """Every golden case name -> its output tensors, computed with the current code."""
    clip_model = make_tiny_clip()
    tokens = clip.tokenize(PROMPTS)
    with torch.no_grad():
        cases = {
            "text_encoder": {
                "truncated": TextEncoder(clip_model, truncate=True, chunk_size=2).encode_text_tokens(tokens),
                "reference": TextEncoder(clip_model, truncate=False).encode_text_tokens(tokens),
            }
        }
    cases.update({name: _prompted_case(clip_model, switches) for name, switches in SWITCHES.items()})
    cases["cavpt"] = _cavpt_case()
    return cases


def main() -> None:
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for name, tensors in golden_outputs().items():
        path = GOLDEN_DIR / f"{name}.pt"
        torch.save({key: value.clone() for key, value in tensors.items()}, path)
        print(f"wrote {path} ({', '.join(sorted(tensors))})")


if __name__ == "__main__":
    main()
