"""The public Python API (re-exported by ``dpt/__init__.py``): build a run's config and its trainer in code.

Why: notebooks, sweeps and tools should configure and run a method exactly as ``train.py`` does, without
faking its argparse Namespace or importing the entry point. ``build_config`` merges and freezes the config
(``dpt.config.merge``); ``build_trainer`` seeds as ``train.py`` does and builds the registered trainer.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from yacs.config import CfgNode

from dpt.config.merge import build_config
from dpt.engine.build import build_trainer as build_registered_trainer
from dpt.engine.trainer import TrainerX

__all__ = ["build_config", "build_trainer", "set_random_seed"]


def set_random_seed(seed: int) -> None:
    """Seed Python's, numpy's and torch's (CPU and every GPU) generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def build_trainer(cfg: CfgNode) -> TrainerX:
    """The trainer TRAINER.NAME names, with its data and model, ready for ``train()`` / ``test()``.

    Seeds with SEED first when it is >= 0, as ``train.py`` does, so a few-shot subset that is not cached yet
    is drawn as in training. Reads TRAINER.NAME and SEED (the trainer reads the rest).
    """
    if cfg.SEED >= 0:
        set_random_seed(cfg.SEED)
    return build_registered_trainer(cfg)
