"""``dpt-convert RUN --to official OUT``: a run's learned weights in the official code's layout (or ``--to ours``).

``--to official`` writes ``OUT/<part>/model.pth.tar-N`` (and the ``checkpoint`` pointer) with the official
parameter names (``dpt/compat/official.py``), as Dassl writes them, for the official CoOp / CoCoOp / DPT
``load_model`` (which reads ``state_dict`` and ``epoch`` only): tensors in fp16 by default, as the official
code stores them (its only working precision is fp16, docs/reference.md 7.6), or ``--dtype fp32``. No optimiser
or scheduler state is written. ``--to ours`` reads a Dassl-written run without running its pickles and
writes our checkpoints (our names, fp32, loadable with ``weights_only=True``). Both copy ``log.txt*`` and
``config.yaml``. OUT must not exist; it appears complete or not at all. Bad input: one line, exit 2.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Dict, Optional

import torch

from dpt.cache.atomic import atomic_folder
from dpt.compat.official import CAVPT, OFFICIAL_CAVPT_SIZES, PARTS, VISUAL_PROMPTS, describe_layout, to_official
from dpt.compat.run_files import CONFIG_FILE, read_run, run_config_value
from dpt.compat.weights import Weights
from dpt.engine.checkpoint import CHECKPOINT_POINTER
from dpt.errors import ArgumentParser, cli_main

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
    return parser


def _official_states(run: str, weights: Dict[str, Weights], dtype: torch.dtype) -> Dict[str, State]:
    """Our parts -> the official names; refuses layouts the official code cannot build."""
    states = {part: w.state_dict for part, w in weights.items()}
    unmapped = [part for part in states if part not in PARTS]
    if unmapped:  # the deep-prompt methods' whole-model folders: their official names are not written (yet)
        raise ValueError(f"{run}: {unmapped[0]}/ has no official layout in dpt-convert (--to official writes "
                         f"{', '.join(p + '/' for p in PARTS)}); --to ours reads it")
    meta = next((w.meta for w in weights.values() if w.meta), {})
    if CAVPT in states:
        if meta.get("shared_cavpt"):
            raise ValueError(f"{run}: a shared CAVPT generator (TRAINER.DPT.SHARED_CAVPT True) has no official layout")
        vpt, cavpt = meta.get("vpt_layers", []), meta.get("cavpt_layers", [])
        if cavpt and (vpt != list(range(len(vpt))) or cavpt[0] != len(vpt)):
            raise ValueError(f"{run}: CAVPT in blocks {[b + 1 for b in cavpt]} is not the official top-down layout "
                             f"(TRAINER.DPT.CAVPT_DIRECTION bottom_up has no official counterpart)")
        facts = describe_layout(states)
        for key, official in OFFICIAL_CAVPT_SIZES.items():
            if facts.get(key, official) != official:
                raise ValueError(f"{run}: {key} = {facts[key]}, but the official code hard-codes {official}")
        if VISUAL_PROMPTS not in states:  # BOTTOMLIMIT 1: the official code keeps an empty visual-prompt tensor
            n_ctx = run_config_value(run, "TRAINER.VPT.N_CTX")
            if n_ctx is None:
                raise FileNotFoundError(f"{run}: {CONFIG_FILE} (TRAINER.VPT.N_CTX) is needed for the official empty "
                                        f"{VISUAL_PROMPTS} of BOTTOMLIMIT 1")
            states[VISUAL_PROMPTS] = {"ctx": torch.zeros(0, int(n_ctx), facts["vision width"])}
    return {part: {k: v.to(dtype) if v.is_floating_point() else v for k, v in to_official(part, state).items()}
            for part, state in states.items()}


def _our_states(weights: Dict[str, Weights]) -> Dict[str, State]:
    """Parts under our names; an official empty visual-prompt tensor (BOTTOMLIMIT 1) is not a part of ours."""
    return {part: w.state_dict for part, w in weights.items() if any(t.numel() for t in w.state_dict.values())}


def convert(run: str, to: str, out: str, epoch: Optional[int] = None, dtype: str = "fp16") -> Dict[str, str]:
    """Write ``run`` in layout ``to`` ("official" or "ours") into the new folder ``out``; returns {part: path}."""
    if os.path.exists(out):
        raise FileExistsError(f"{out} already exists; give a new folder (nothing is overwritten)")
    fname, weights = read_run(run, epoch)
    if to == "official":
        states = _official_states(run, weights, torch.float16 if dtype == "fp16" else torch.float32)
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
    written = convert(args.run, args.to, args.out, args.load_epoch, args.dtype)
    for part, path in written.items():
        print(f"{part}: {path}")


if __name__ == "__main__":
    sys.exit(main())
