"""Optimisers and per-epoch lr schedules with Dassl's warm-up semantics (docs/reference.md 5)."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable, List, Sequence

import torch
from torch.optim.lr_scheduler import LRScheduler


@dataclass(frozen=True)
class OptimSpec:
    """The OPTIM settings of one optimiser; per-group overrides use ``with_overrides``, never a defrosted cfg."""

    name: str = "sgd"
    lr: float = 0.002
    weight_decay: float = 5e-4
    momentum: float = 0.9
    sgd_dampening: float = 0.0
    sgd_nesterov: bool = False
    adam_betas: Sequence[float] = (0.9, 0.999)
    rmsprop_alpha: float = 0.99
    lr_scheduler: str = "cosine"
    max_epoch: int = 10
    stepsize: Sequence[int] = (-1,)
    gamma: float = 0.1
    warmup_epoch: int = -1
    warmup_type: str = "linear"
    warmup_cons_lr: float = 1e-5
    warmup_min_lr: float = 1e-5
    warmup_recount: bool = True

    @classmethod
    def from_cfg(cls, optim_cfg) -> "OptimSpec":
        """Read cfg.OPTIM (all its keys)."""
        return cls(
            name=optim_cfg.NAME,
            lr=optim_cfg.LR,
            weight_decay=optim_cfg.WEIGHT_DECAY,
            momentum=optim_cfg.MOMENTUM,
            sgd_dampening=optim_cfg.SGD_DAMPNING,
            sgd_nesterov=optim_cfg.SGD_NESTEROV,
            adam_betas=(optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2),
            rmsprop_alpha=optim_cfg.RMSPROP_ALPHA,
            lr_scheduler=optim_cfg.LR_SCHEDULER,
            max_epoch=optim_cfg.MAX_EPOCH,
            stepsize=tuple(optim_cfg.STEPSIZE),
            gamma=optim_cfg.GAMMA,
            warmup_epoch=optim_cfg.WARMUP_EPOCH,
            warmup_type=optim_cfg.WARMUP_TYPE,
            warmup_cons_lr=optim_cfg.WARMUP_CONS_LR,
            warmup_min_lr=optim_cfg.WARMUP_MIN_LR,
            warmup_recount=optim_cfg.WARMUP_RECOUNT,
        )

    def with_overrides(self, **changes) -> "OptimSpec":
        return replace(self, **changes)


OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULERS = ("single_step", "multi_step", "cosine")


def build_optimizer(params: Iterable[torch.nn.Parameter], spec: OptimSpec) -> torch.optim.Optimizer:
    """One optimiser over ``params``; weight decay applies to every parameter, as in Dassl."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("build_optimizer: the module has no trainable parameters")
    if spec.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=spec.lr,
            momentum=spec.momentum,
            weight_decay=spec.weight_decay,
            dampening=spec.sgd_dampening,
            nesterov=spec.sgd_nesterov,
        )
    if spec.name in ("adam", "adamw"):
        cls = torch.optim.Adam if spec.name == "adam" else torch.optim.AdamW
        return cls(params, lr=spec.lr, weight_decay=spec.weight_decay, betas=tuple(spec.adam_betas))
    if spec.name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay, alpha=spec.rmsprop_alpha
        )
    raise ValueError(f"config key 'OPTIM.NAME': expected one of {', '.join(OPTIMIZERS)}, got {spec.name!r}")


def epoch_lr(spec: OptimSpec, epoch: int) -> float:
    """The lr used during 0-based ``epoch`` (closed form of Dassl's chained schedulers).

    Warm-up (WARMUP_EPOCH = W > 0): constant -> WARMUP_CONS_LR for e < W; linear -> WARMUP_MIN_LR at e = 0,
    LR * e / W for 0 < e < W. Afterwards the main schedule counts from 0 at epoch W (RECOUNT) or from e.
    """
    warm = spec.warmup_epoch
    if warm > 0 and epoch < warm:
        if spec.warmup_type == "constant":
            return spec.warmup_cons_lr
        return spec.warmup_min_lr if epoch == 0 else spec.lr * epoch / warm
    t = epoch - warm if (warm > 0 and spec.warmup_recount) else epoch
    if spec.lr_scheduler == "cosine":
        return spec.lr * (1 + math.cos(math.pi * t / spec.max_epoch)) / 2
    if spec.lr_scheduler == "single_step":
        step = spec.stepsize[0] if spec.stepsize[0] > 0 else spec.max_epoch
        return spec.lr * spec.gamma ** (t // step)
    if spec.lr_scheduler == "multi_step":
        return spec.lr * spec.gamma ** sum(t >= s for s in spec.stepsize)
    raise ValueError(f"config key 'OPTIM.LR_SCHEDULER': expected one of {', '.join(SCHEDULERS)}, got {spec.lr_scheduler!r}")


class EpochScheduler(LRScheduler):
    """Sets every group's lr to ``epoch_lr(spec, last_epoch)``; stepped once per epoch.

    Because the lr is a pure function of the epoch counter, resuming restores it exactly (Dassl's warm-up
    wrapper pickled a detached copy of its successor, docs/reference.md 4.5).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, spec: OptimSpec) -> None:
        epoch_lr(spec, 0)  # validate the scheduler name before touching the optimiser
        self.spec = spec
        super().__init__(optimizer)

    def get_lr(self) -> List[float]:
        lr = epoch_lr(self.spec, self.last_epoch)
        return [lr for _ in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "_last_lr": list(self._last_lr)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.last_epoch = int(state_dict["last_epoch"])
        lr = epoch_lr(self.spec, self.last_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self._last_lr = [lr for _ in self.optimizer.param_groups]


def build_lr_scheduler(optimizer: torch.optim.Optimizer, spec: OptimSpec) -> EpochScheduler:
    return EpochScheduler(optimizer, spec)
