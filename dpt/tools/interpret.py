"""``dpt-interpret RUN [--topk K]``: what a run learned, in words and norms.

For each learned text context vector (CoOp, VLP, DPT, CoCoOp, KgCoOp, IVLP, MaPLe, PromptSRC): the K nearest rows
of CLIP's token embedding by Euclidean distance, decoded with CLIP's tokenizer (CoOp's interpret_prompt.py,
docs/reference.md 9.5; ``</w>`` ends a word); class-specific contexts per class. For block prompts (VPT, VLP,
DPT's visual prompts and CAVPT key tokens, the deep prompts of IVLP, MaPLe, PromptSRC): the L2 norm of each
token per block. The trainer says where its prompts are (``text_context``, ``prompt_tokens``); the run's trainer
comes from its config or ``--trainer``. Works on our runs and on runs of the official code.
The token embedding comes from the run's backbone (``config.yaml``'s, or the config its log.txt prints, or
``--backbone``); runs without a text context need no CLIP. Bad input: one line, exit 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence, Tuple

import torch

from dpt.inference.run_files import read_run, run_config_value, run_trainer
from dpt.errors import ArgumentParser, cli_main
from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.backbones.loader import load_clip
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.base import PromptTrainer
from dpt.trainers.learned_prompts import TextContext

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


def text_lines(context: TextContext, backbone: str, topk: int) -> List[str]:
    """CoOp's interpret_prompt output for a context [n_ctx, D] or [n_cls, n_ctx, D] (CSC)."""
    ctx = context.ctx
    embedding = load_clip(backbone).token_embedding.weight.detach()  # [V, D]
    if ctx.shape[-1] != embedding.shape[1]:
        raise ValueError(f"the text context is {ctx.shape[-1]}-wide but {backbone}'s token embedding is "
                         f"{embedding.shape[1]}-wide: pass the run's backbone with --backbone")
    if not 1 <= topk <= embedding.shape[0]:
        raise ValueError(f"--topk: expected 1..{embedding.shape[0]}, got {topk}")
    head = (f"{context.where}: {ctx.shape[-2]} context vectors of width {ctx.shape[-1]}; the {topk} nearest of "
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


def interpret(run: str, topk: int = 5, backbone: str = "", epoch: Optional[int] = None,
              trainer_name: str = "") -> List[str]:
    """The printed report of ``run``."""
    trainer = TRAINER_REGISTRY.get(run_trainer(run, trainer_name))
    if not issubclass(trainer, PromptTrainer):
        raise ValueError(f"{run}: trainer {trainer.__name__} learns no prompts to interpret")
    fname, weights = read_run(run, trainer.official_names, epoch)
    states = {part: w.state_dict for part, w in weights.items()}
    meta = next((w.meta for w in weights.values() if w.meta), {})
    lines = [f"{run} ({fname})"]
    context = trainer.text_context(states)
    if context is not None:
        backbone = backbone or run_config_value(run, BACKBONE_KEY) or ""
        if not backbone:
            raise FileNotFoundError(f"{run} has no config.yaml and its log.txt prints no {BACKBONE_KEY}: pass "
                                    f"--backbone (e.g. ViT-B/32)")
        lines += text_lines(context, backbone, topk)
    for group in trainer.prompt_tokens(states, meta):
        lines += _norm_lines(group.tokens, group.blocks, group.title)
    return lines


@cli_main(build_parser)
def main(args: argparse.Namespace) -> None:
    """Print what the run's learned prompts are close to."""
    print("\n".join(interpret(args.run, args.topk, args.backbone, args.load_epoch, args.trainer)))


if __name__ == "__main__":
    sys.exit(main())
