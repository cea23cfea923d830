"""Small Dassl-compatible engine: registry, TrainerX loop, optimisers, evaluator, checkpoints, logging."""
from dpt.engine.build import build_trainer
from dpt.engine.optim import OptimSpec, build_lr_scheduler, build_optimizer, epoch_lr
from dpt.engine.registry import DATASET_REGISTRY, TRAINER_REGISTRY, Registry
from dpt.engine.trainer import TrainerX

__all__ = [
    "DATASET_REGISTRY",
    "OptimSpec",
    "Registry",
    "TRAINER_REGISTRY",
    "TrainerX",
    "build_lr_scheduler",
    "build_optimizer",
    "build_trainer",
    "epoch_lr",
]
