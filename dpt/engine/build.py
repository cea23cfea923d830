"""build_trainer: the one way a trainer is created from a config."""
from __future__ import annotations

from dpt.registry import TRAINER_REGISTRY


def build_trainer(cfg):
    """Create the trainer registered under TRAINER.NAME (unknown names list the valid ones)."""
    trainer_cls = TRAINER_REGISTRY.get(cfg.TRAINER.NAME)
    print(f"Loading trainer: {cfg.TRAINER.NAME}")
    return trainer_cls(cfg)
