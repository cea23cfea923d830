"""``dpt-interpret RUN [--topk K]``: what a run learned, in words and norms.

For each learned text context vector (CoOp, VLP, DPT, CoCoOp): the K nearest rows of CLIP's token embedding by
Euclidean distance, decoded with CLIP's tokenizer (CoOp's interpret_prompt.py, docs/reference.md 9.5; ``</w>``
ends a word); class-specific contexts per class. For VPT, VLP and DPT: the L2 norm of each visual prompt token
per block, and of DPT's CAVPT key tokens per CAVPT block. Works on our runs and on runs of the official code.
The token embedding comes from the run's backbone (``config.yaml``'s, or the config its log.txt prints, or
``--backbone``); runs without a text context need no CLIP. Bad input: one line, exit 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from dpt.compat.run_files import read_run, run_config_value, run_trainer
from dpt.compat.weights import Weights
from dpt.errors import ArgumentParser, cli_main
from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.backbones.loader import load_clip
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.cavpt_layout import CAVPT
from dpt.trainers.text_context import TEXT_PROMPTS
from dpt.trainers.vpt import VISUAL_PROMPTS

BACKBONE_KEY = "MODEL.BACKBONE.NAME"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="dpt-interpret", description="Nearest words of learned text contexts "
                                     "and norms of visual prompts of a run.")
    parser.add_argument("run", help="run folder (ours or written by the official code)")
    parser.add_argument("--topk", type=int, default=5, help="nearest tokens per context vector (default 5)")
    parser.add_argument("--backbone", default="", help=f"CLIP name or file (default: the run's {BACKBONE_KEY})")
    parser.add_argument("--load-epoch", type=int, help="read model.pth.tar-N (default: the latest checkpoint)")
    parser.add_argument("--trainer", default="", help="the trainer that wrote RUN (default: its TRAINER.NAME)")
    return parser


def nearest_tokens(ctx: torch.Tensor, embedding: torch.Tensor, topk: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Indices and distances [n, topk] of the ``topk`` rows of ``embedding`` [V, D] nearest each row of ctx [n, D]."""
    distance = torch.cdist(ctx.float(), embedding.float())  # [n, V]
    values, indices = distance.topk(topk, dim=1, largest=False)
    return indices, values


def prompt_norms(tokens: torch.Tensor) -> torch.Tensor:
    """L2 norm of each token: [blocks, n, W] -> [blocks, n] (fp32)."""
    return tokens.float().norm(dim=-1)


def _token_lines(ctx: torch.Tensor, embedding: torch.Tensor, topk: int, prefix: str = "") -> List[str]:
    decoder = clip.clip._tokenizer.decoder
    indices, distances = nearest_tokens(ctx, embedding, topk)
    lines = []
    for m, (row, dist) in enumerate(zip(indices.tolist(), distances.tolist()), start=1):
        words = [decoder[i] for i in row]
        lines.append(f"{prefix}{m}: {words} {[f'{d:.4f}' for d in dist]}")
    return lines


def text_lines(ctx: torch.Tensor, backbone: str, topk: int) -> List[str]:
    """CoOp's interpret_prompt output for a context [n_ctx, D] or [n_cls, n_ctx, D] (CSC)."""
    embedding = load_clip(backbone).token_embedding.weight.detach()  # [V, D]
    if ctx.shape[-1] != embedding.shape[1]:
        raise ValueError(f"the text context is {ctx.shape[-1]}-wide but {backbone}'s token embedding is "
                         f"{embedding.shape[1]}-wide: pass the run's backbone with --backbone")
    if not 1 <= topk <= embedding.shape[0]:
        raise ValueError(f"--topk: expected 1..{embedding.shape[0]}, got {topk}")
    head = (f"{TEXT_PROMPTS}: {ctx.shape[-2]} context vectors of width {ctx.shape[-1]}; the {topk} nearest of "
            f"{embedding.shape[0]} tokens of {backbone} (Euclidean distance)")
    if ctx.dim() == 2:
        return [head] + _token_lines(ctx, embedding, topk)
    lines = [head + ", per class (class-specific context)"]
    for c, class_ctx in enumerate(ctx):
        lines += _token_lines(class_ctx, embedding, topk, prefix=f"class {c} ")
    return lines


def _norm_lines(tokens: torch.Tensor, blocks: Sequence[int], title: str) -> List[str]:
    lines = [title]
    for block, norms in zip(blocks, prompt_norms(tokens)):
        values = " ".join(f"{v:.4f}" for v in norms.tolist())
        mean = f"{norms.mean().item():.4f}" if norms.numel() else "-"
        lines.append(f"block {block}: mean {mean} | {values}")
    return lines


def visual_lines(weights: Dict[str, Weights]) -> List[str]:
    """Norms of the VPT-deep tokens per block and of the CAVPT key tokens per CAVPT block (1-based blocks).

    Blocks come from our checkpoints' meta; official runs are top-down (VPT in blocks 1..BOTTOMLIMIT-1).
    """
    meta = next((w.meta for w in weights.values() if w.meta), {})
    lines: List[str] = []
    visual = weights[VISUAL_PROMPTS].state_dict["ctx"] if VISUAL_PROMPTS in weights else torch.zeros(0, 0, 0)
    vpt_blocks = [b + 1 for b in meta.get("vpt_layers", range(visual.shape[0]))]
    if visual.shape[0]:
        lines += _norm_lines(visual, vpt_blocks, f"{VISUAL_PROMPTS}: L2 norm of each visual prompt token per block")
    if CAVPT in weights:
        state = weights[CAVPT].state_dict
        keys = sorted((k for k in state if k.endswith(".key_tokens")), key=lambda k: int(k.split(".")[1]))
        tokens = torch.stack([state[k] for k in keys])  # [layers, n_key, W]
        default = range(visual.shape[0], visual.shape[0] + len(keys))
        blocks = [b + 1 for b in meta.get("cavpt_layers", default)]
        lines += _norm_lines(tokens, blocks, f"{CAVPT}: L2 norm of each CAVPT key token per CAVPT block")
    return lines


def interpret(run: str, topk: int = 5, backbone: str = "", epoch: Optional[int] = None,
              trainer_name: str = "") -> List[str]:
    """The printed report of ``run``."""
    trainer = TRAINER_REGISTRY.get(run_trainer(run, trainer_name))
    fname, weights = read_run(run, trainer.official_names, epoch)
    lines = [f"{run} ({fname})"]
    if TEXT_PROMPTS in weights:
        backbone = backbone or run_config_value(run, BACKBONE_KEY) or ""
        if not backbone:
            raise FileNotFoundError(f"{run} has no config.yaml and its log.txt prints no {BACKBONE_KEY}: pass "
                                    f"--backbone (e.g. ViT-B/32)")
        state = weights[TEXT_PROMPTS].state_dict
        if "ctx" not in state:
            raise KeyError(f"{run}: {TEXT_PROMPTS}/{fname} holds no 'ctx' (found {', '.join(sorted(state))})")
        lines += text_lines(state["ctx"], backbone, topk)
    return lines + visual_lines(weights)


@cli_main(build_parser)
def main(args: argparse.Namespace) -> None:
    """Print what the run's learned prompts are close to."""
    print("\n".join(interpret(args.run, args.topk, args.backbone, args.load_epoch, args.trainer)))


if __name__ == "__main__":
    sys.exit(main())
