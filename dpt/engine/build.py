"""build_trainer: the one way a trainer is created from a config."""
from __future__ import annotations

from typing import Optional, Sequence

from dpt.registry import TRAINER_REGISTRY


def build_trainer(cfg, *, classnames: Optional[Sequence[str]] = None):
    """Create the trainer registered under TRAINER.NAME (unknown names list the valid ones); with ``classnames``
    its model is built over those classes and no dataset is read (``TrainerX.__init__``)."""
    trainer_cls = TRAINER_REGISTRY.get(cfg.TRAINER.NAME)
    print(f"Loading trainer: {cfg.TRAINER.NAME}")
    if classnames is None:
        return trainer_cls(cfg)
    return trainer_cls(cfg, classnames=classnames)
