"""Entry point with exactly CoOp's train.py flags (docs/reference.md 1.2); also the ``dpt-train`` console script."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List

import torch
import yaml

from dpt.api import set_random_seed
from dpt.cache.in_use import lock_caches, release_locks
from dpt.config.merge import save_cfg, setup_cfg
from dpt.engine.build import build_trainer
from dpt.engine.checkpoint import remove_stale_temporaries
from dpt.engine.distributed import init_distributed, is_main_process
from dpt.engine.logger import close_logger, setup_logger
from dpt.errors import ArgumentParser, cli_main
from dpt.launch.preemption import Preempted, raise_on_signals, stop_signals_from_env
from dpt.preflight import preflight


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description="Train or evaluate CoOp / VPT / VLP / DPT prompts for CLIP")
    parser.add_argument("--root", type=str, default="", help="path to dataset")
    parser.add_argument("--output-dir", type=str, default="", help="output directory")
    parser.add_argument("--resume", type=str, default="", help="checkpoint directory (from which the training resumes)")
    parser.add_argument("--seed", type=int, default=-1, help="only positive value enables a fixed seed")
    parser.add_argument("--source-domains", type=str, nargs="+", help="source domains for DA/DG")
    parser.add_argument("--target-domains", type=str, nargs="+", help="target domains for DA/DG")
    parser.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    parser.add_argument("--config-file", type=str, default="", help="path to config file")
    parser.add_argument("--dataset-config-file", type=str, default="", help="path to config file for dataset setup")
    parser.add_argument("--trainer", type=str, default="", help="name of trainer")
    parser.add_argument("--backbone", type=str, default="", help="name of CNN backbone")
    parser.add_argument("--head", type=str, default="", help="name of head")
    parser.add_argument("--eval-only", action="store_true", help="evaluation only")
    parser.add_argument("--model-dir", type=str, default="", help="load model from this directory for eval-only mode")
    parser.add_argument("--load-epoch", type=int, help="load model weights at this epoch for evaluation")
    parser.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER, help="modify config options using the command-line")
    return parser


def check_new_classes(cfg, args: argparse.Namespace, learnable: bool) -> None:
    """DATASET.SUBSAMPLE_CLASSES new only evaluates a model trained on the base classes (docs/reference.md 9.2).

    Args:
        learnable: whether the trainer has learned parts (zero-shot CLIP evaluates new classes as they are).
    """
    if cfg.DATASET.SUBSAMPLE_CLASSES != "new":
        return
    hint = ("train with DATASET.SUBSAMPLE_CLASSES base, then evaluate with --eval-only --model-dir <that run> "
            "(scripts/b2n.sh)")
    if not args.eval_only:
        raise ValueError(f"DATASET.SUBSAMPLE_CLASSES new is for evaluation only: {hint}")
    if learnable and not args.model_dir:
        raise ValueError(f"DATASET.SUBSAMPLE_CLASSES new needs a model trained on the base classes: {hint}")
    trained = os.path.join(args.model_dir, "config.yaml")
    if args.model_dir and os.path.isfile(trained):
        with open(trained) as f:
            dataset = (yaml.safe_load(f) or {}).get("DATASET", {})
        if dataset.get("NAME") == cfg.DATASET.NAME and dataset.get("SUBSAMPLE_CLASSES", "all") != "base":
            raise ValueError(f"--model-dir {args.model_dir} was trained with DATASET.SUBSAMPLE_CLASSES "
                             f"{dataset.get('SUBSAMPLE_CLASSES', 'all')}, so its new classes are not new: {hint}")


def run(args: argparse.Namespace) -> None:
    stop_signals = stop_signals_from_env()
    with raise_on_signals(stop_signals):
        _run(args, keep_last_epoch=bool(stop_signals))


def _run(args: argparse.Namespace, keep_last_epoch: bool) -> None:
    """setup_cfg -> preflight (all problems at once, before any file is written) -> seed -> log -> trainer."""
    notes: List[str] = []
    cfg = setup_cfg(args, notes)
    dataset_folder = preflight(cfg, eval_only=args.eval_only, model_dir=args.model_dir, load_epoch=args.load_epoch)
    if not args.eval_only:
        check_new_classes(cfg, args, learnable=True)
    init_distributed()
    if not is_main_process():  # torchrun: rank 0 alone prints, logs and writes files
        sys.stdout = open(os.devnull, "w")
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    if is_main_process():
        setup_logger(cfg.OUTPUT_DIR)
    locks = lock_caches([dataset_folder, cfg.DATALOADER.CACHE_DIR])  # dpt-cache clear skips what a live run holds
    try:
        leftovers = remove_stale_temporaries(cfg.OUTPUT_DIR) if is_main_process() else []
        if leftovers:
            notes.append(f"Note: removed {len(leftovers)} temporary file(s) an interrupted save left: "
                         f"{', '.join(leftovers)}")
        if torch.cuda.is_available() and cfg.USE_CUDA:
            torch.backends.cudnn.benchmark = True
        print("***************")
        print("** Arguments **")
        print("***************")
        for key in sorted(vars(args)):
            print(f"{key}: {getattr(args, key)}")
        print("************")
        print("** Config **")
        print("************")
        print(cfg)
        for note in notes:
            print(note)
        if not args.eval_only and is_main_process():
            save_cfg(cfg, os.path.join(cfg.OUTPUT_DIR, "config.yaml"))
        trainer = build_trainer(cfg)
        check_new_classes(cfg, args, learnable=bool(trainer.get_model_names()))
        if args.eval_only:
            trainer.load_model(args.model_dir, epoch=args.load_epoch)
            trainer.test()
            return
        if not args.no_train:
            trainer.keep_last_epoch = keep_last_epoch
            try:
                trainer.train()
            except Preempted as stop:
                epoch = trainer.save_last_epoch()
                saved = f"saved epoch {epoch}/{trainer.max_epoch}" if epoch else "no epoch finished, nothing saved"
                print(f"Stopped by {stop}: {saved}; the same command resumes the run")
                raise
    finally:
        release_locks(locks)
        close_logger()


@cli_main(build_parser)
def main(args: argparse.Namespace) -> int:
    """Run as CoOp's train.py does, under the CLI contract of dpt.errors (a failed preflight prints one
    ``error:`` line per problem); a stop signal named in DPT_SAVE_ON_SIGNAL exits with 128 + its number after
    saving the last finished epoch."""
    try:
        run(args)
    except Preempted as stop:
        print(f"stopped by {stop} (DPT_SAVE_ON_SIGNAL); run the same command to resume", file=sys.stderr)
        return stop.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
