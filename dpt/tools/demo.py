"""Offline demo data: a small learnable EuroSAT-format dataset and a tiny random CLIP (``dpt-demo``).

Why: users (and CI) can run every trainer end to end with no download; scripts/demo.sh then runs the real
method scripts on it. Numbers from a random CLIP say nothing about the methods, only that the pipeline works.
"""
from __future__ import annotations

import argparse
import os
import sys

from dpt.demo.synthetic import make_dataset
from dpt.demo.tiny_clip import save_tiny_clip
from dpt.errors import ArgumentParser, cli_main

DEMO_DATASET = "EuroSAT"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description="Write the offline demo's dataset and tiny CLIP")
    parser.add_argument("--out", required=True, help="folder for data/ and tiny_clip.pt")
    parser.add_argument("--classes", type=int, default=10, help="classes of the synthetic EuroSAT (max 10)")
    return parser


def prepare(out: str, classes: int = 10) -> None:
    """Write ``out/data/eurosat`` (learnable colours) and ``out/tiny_clip.pt`` unless they exist."""
    data = os.path.join(out, "data")
    if not os.path.isdir(os.path.join(data, "eurosat")):
        make_dataset(data, DEMO_DATASET, n_classes=classes, n_train=16, n_val=4, n_test=10, learnable=True, seed=0)
    clip_path = os.path.join(out, "tiny_clip.pt")
    if not os.path.isfile(clip_path):
        save_tiny_clip(clip_path)
    print(f"demo data: {data}\ndemo CLIP: {clip_path}")


@cli_main(build_parser)
def main(args: argparse.Namespace) -> None:
    """Write the demo's dataset and tiny CLIP under ``--out``."""
    if not 2 <= args.classes <= 10:
        raise ValueError(f"--classes: expected 2..10 (EuroSAT has 10), got {args.classes}")
    os.makedirs(args.out, exist_ok=True)
    prepare(args.out, args.classes)


if __name__ == "__main__":
    sys.exit(main())
