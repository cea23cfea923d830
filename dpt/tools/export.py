"""``dpt-export RUN_DIR --out FILE``: a run's learned tensors and what rebuilds its classifier, in one file.

The run folder is loaded as ``--eval-only`` would (its config.yaml, else its log's config; its checkpoints, or
those of the ``--model-dir`` an eval-only run of official checkpoints names); the class names come from the run's
dataset unless ``--classes`` gives them. The file (dpt/inference/export.py) appears whole or not at all. Bad
input: one line, exit 2.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

from dpt.errors import ArgumentParser, cli_main
from dpt.inference.classifier import parse_classnames
from dpt.inference.export import export_run


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="dpt-export", description="Export a trained run to one safetensors file "
                                     "(learned tensors, config, class names, backbone identity, model card).")
    parser.add_argument("run", help="run folder written by train.py (or by the official code)")
    parser.add_argument("--out", required=True, help="file to write, e.g. dpt_eurosat_16shots.safetensors")
    parser.add_argument("--load-epoch", type=int, help="export model.pth.tar-N (default: what the run's test used)")
    parser.add_argument("--classes", help="class names in label order (a file, one per line, or a comma-separated "
                        "list); default: read from the run's dataset")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model is rebuilt")
    return parser


@cli_main(build_parser)
def main(args: argparse.Namespace) -> None:
    """Write the export and print one line about it (the trainer's build log goes to stderr)."""
    classnames = parse_classnames(args.classes) if args.classes else None
    with contextlib.redirect_stdout(sys.stderr):
        exported = export_run(args.run, args.out, epoch=args.load_epoch, classnames=classnames, device=args.device)
    card = exported.meta["card"]
    size = os.path.getsize(args.out)
    print(f"{args.out}: {exported.meta['trainer']} on {card['dataset']} ({len(exported.meta['classnames'])} classes, "
          f"test accuracy {card['test_accuracy']}), {size:,} bytes")


if __name__ == "__main__":
    sys.exit(main())
