"""DPT's logits in reduced precisions against fp32 on the same weights (check (b) of benchmarks/gpu_check.py).

Why: fp16 CLIP weights (TRAINER.COOP.PREC fp16, the official default), fp16 autocast (amp) and bf16 autocast
change every matmul's rounding; this says by how much the predictions move, on one CLIP file with the same
prompt initialisation, before anyone trusts a fp16 run.

Usage: ``python benchmarks/precision_logits.py --clip FILE [--device cuda] [--precisions fp16 amp bf16]``
prints JSON: per precision the logits' dtype, whether they are finite, the largest |logit difference| over the
prediction and both guidance logits, that difference over the logit scale (a cosine difference), and the
share of images whose top-1 class agrees with fp32.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional, Sequence

import torch

import bench


def compare_precisions(clip: str, device: str, precisions: Sequence[str], classes: int = 37, batch: int = 8,
                       resolution: int = 224) -> Dict[str, Dict[str, Any]]:
    """Logits of DPT (bench.compose("DPT", ...)) per precision vs fp32 on seeded random images.

    Args:
        clip: CLIP state-dict file, loaded once per precision (``load_clip(clip, precision)``).
        precisions: TRAINER.COOP.PREC values besides fp32 (fp16 needs CUDA).
        resolution: the CLIP's input size (224 for ViT-B/32, 32 for the tiny CLIP).
    Returns:
        precision -> dtype, finite, max_dlogit, max_dcos (= max_dlogit / logit scale), top1_agree (0..1).
    """
    from dpt.engine.precision import autocast
    from dpt.modeling.backbones.loader import load_clip

    where = torch.device(device)
    classnames = [f"class name {i}" for i in range(classes)]
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(batch, 3, resolution, resolution, generator=generator).to(where)  # [B, 3, R, R]
    reference, scale, result = None, 1.0, {}
    for prec in ("fp32", *precisions):
        clip_model = load_clip(clip, precision=prec).to(where)
        layers = len(clip_model.visual.transformer.resblocks)
        model = bench.compose("DPT", clip_model, classnames, layers).eval()  # seeded: the same prompts every time
        with torch.no_grad(), autocast(prec, where):
            out = model(images, need_guidance=True)
        logits = torch.stack([out.logits, out.logits_zs_image, out.logits_zs_text]).float().cpu()  # [3, B, n_cls]
        if reference is None:
            reference, scale = logits, model.logit_scale.item()
            continue
        diff = (logits - reference).abs().max().item()
        result[prec] = {
            "dtype": str(out.logits.dtype).replace("torch.", ""), "finite": bool(torch.isfinite(logits).all()),
            "max_dlogit": diff, "max_dcos": diff / scale,
            "top1_agree": (logits[0].argmax(1) == reference[0].argmax(1)).float().mean().item(),
        }
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", required=True, help="CLIP state-dict file")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precisions", nargs="+", choices=("fp16", "amp", "bf16"), default=["fp16", "amp", "bf16"])
    parser.add_argument("--classes", type=int, default=37)
    parser.add_argument("--resolution", type=int, default=224, help="the CLIP's input size")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    result = compare_precisions(args.clip, args.device, args.precisions, args.classes, resolution=args.resolution)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
