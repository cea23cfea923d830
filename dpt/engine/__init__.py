"""Small Dassl-compatible engine: TrainerX loop, optimisers, evaluator, checkpoints, logging."""
from dpt.engine.build import build_trainer
from dpt.engine.optim import OptimSpec, build_lr_scheduler, build_optimizer, epoch_lr
from dpt.engine.trainer import TrainerX
from dpt.engine.trainer_base import TrainerBase

__all__ = [
    "OptimSpec",
    "TrainerBase",
    "TrainerX",
    "build_lr_scheduler",
    "build_optimizer",
    "build_trainer",
    "epoch_lr",
]
