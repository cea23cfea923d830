"""``dpt-convert RUN --to official OUT``: a run's learned weights in the official code's layout (or ``--to ours``).

``--to official`` writes ``OUT/<part>/model.pth.tar-N`` (and the ``checkpoint`` pointer) with the official
parameter names (the trainer's ``official_names`` and ``official_states``), as Dassl writes them, for the official
code's ``load_model`` (which reads ``state_dict`` and ``epoch`` only): tensors in fp16 by default, as the official
code stores them (its only working precision is fp16, docs/reference.md 7.6), or ``--dtype fp32``. No optimiser or
scheduler state is written. ``--to ours`` reads a Dassl-written run without running its pickles and writes our
checkpoints (our names, fp32, loadable with ``weights_only=True``). The trainer is the run's TRAINER.NAME
(``config.yaml``, or the config its log.txt prints), or ``--trainer``. Both copy ``log.txt*`` and ``config.yaml``.
OUT must not exist; it appears complete or not at all. Bad input: one line, exit 2.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Dict, Optional

import torch

from dpt.cache.atomic import atomic_folder
from dpt.inference.run_files import CONFIG_FILE, read_run, run_config_value, run_trainer
from dpt.compat.weights import Weights
from dpt.engine.checkpoint import CHECKPOINT_POINTER
from dpt.errors import ArgumentParser, cli_main
from dpt.registry import TRAINER_REGISTRY

State = Dict[str, torch.Tensor]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="dpt-convert", description="Convert a run folder to the official layout "
                                     "(or an official run to ours).")
    parser.add_argument("run", help="run folder holding prompt_learner/, image_encoder.transformer.*/ ...")
    parser.add_argument("--to", choices=("official", "ours"), required=True, help="target layout")
    parser.add_argument("out", help="new folder to write")
    parser.add_argument("--load-epoch", type=int, help="convert model.pth.tar-N (default: the latest checkpoint)")
    parser.add_argument("--dtype", choices=("fp16", "fp32"), default="fp16",
                        help="tensor precision of --to official (default fp16, as the official code saves)")
    parser.add_argument("--trainer", default="", help="the trainer that wrote RUN (default: its TRAINER.NAME)")
    return parser


def _official_states(run: str, trainer, weights: Dict[str, Weights], dtype: torch.dtype) -> Dict[str, State]:
    """Our parts -> the official folders and names; refuses layouts the official code cannot build."""
    meta = next((w.meta for w in weights.values() if w.meta), {})
    try:
        states = trainer.official_states({part: w.state_dict for part, w in weights.items()}, meta,
                                         lambda key: run_config_value(run, key))
    except ValueError as err:
        raise ValueError(f"{run}: {err}") from err
    return {part: {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
            for part, state in states.items()}


def _our_states(weights: Dict[str, Weights]) -> Dict[str, State]:
    """Parts under our names; an official empty visual-prompt tensor (BOTTOMLIMIT 1) is not a part of ours."""
    return {part: w.state_dict for part, w in weights.items() if any(t.numel() for t in w.state_dict.values())}


def convert(run: str, to: str, out: str, epoch: Optional[int] = None, dtype: str = "fp16",
            trainer_name: str = "") -> Dict[str, str]:
    """Write ``run`` in layout ``to`` ("official" or "ours") into the new folder ``out``; returns {part: path}."""
    if os.path.exists(out):
        raise FileExistsError(f"{out} already exists; give a new folder (nothing is overwritten)")
    trainer = TRAINER_REGISTRY.get(run_trainer(run, trainer_name))
    fname, weights = read_run(run, trainer.official_names, epoch)
    if to == "official":
        states = _official_states(run, trainer, weights, torch.float16 if dtype == "fp16" else torch.float32)
    else:
        states = _our_states(weights)
    epochs = {part: w.epoch for part, w in weights.items()}
    with atomic_folder(out) as tmp:
        for part, state in states.items():
            os.makedirs(os.path.join(tmp, part))
            checkpoint = {"state_dict": state, "epoch": epochs.get(part, next(iter(epochs.values()))),
                          "optimizer": None, "scheduler": None, "val_result": None}
            if to == "ours":
                checkpoint["meta"] = {"converted_from": os.path.abspath(run)}
            torch.save(checkpoint, os.path.join(tmp, part, fname))
            with open(os.path.join(tmp, part, CHECKPOINT_POINTER), "w") as f:
                f.write(fname + "\n")
        for name in sorted(os.listdir(run)):
            if name == CONFIG_FILE or name.startswith("log.txt"):
                shutil.copy2(os.path.join(run, name), os.path.join(tmp, name))
    return {part: os.path.join(out, part, fname) for part in states}


@cli_main(build_parser)
def main(args: argparse.Namespace) -> None:
    """Convert the run and print the checkpoint written for each part."""
    written = convert(args.run, args.to, args.out, args.load_epoch, args.dtype, args.trainer)
    for part, path in written.items():
        print(f"{part}: {path}")


if __name__ == "__main__":
    sys.exit(main())
