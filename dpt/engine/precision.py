"""Precision modes (TRAINER.COOP.PREC): fp16 (GPU only), fp32, amp, bf16."""
from __future__ import annotations

import contextlib
from typing import ContextManager, Optional

import torch

PRECISIONS = ("fp16", "fp32", "amp", "bf16")


def check_precision(prec: str, device: torch.device, key: str = "TRAINER.COOP.PREC") -> None:
    """``prec`` (the value of config key ``key``) must be known, and fp16 needs a GPU."""
    if prec not in PRECISIONS:
        raise ValueError(f"config key {key!r}: expected one of {', '.join(PRECISIONS)}, got {prec!r}")
    if prec == "fp16" and device.type != "cuda":
        raise ValueError(
            f"config key {key!r} is fp16, which needs a CUDA GPU; on CPU use fp32, bf16 or amp "
            f"(e.g. append `{key} fp32`)"
        )


def autocast(prec: str, device: torch.device) -> ContextManager:
    """The forward-pass context: amp -> fp16 autocast on GPU (bf16 on CPU); bf16 -> bf16 autocast."""
    if prec == "amp":
        dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        return torch.autocast(device.type, dtype=dtype)
    if prec == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def grad_scaler(prec: str, device: torch.device) -> Optional[torch.amp.GradScaler]:
    """A loss scaler shared by all optimisers when gradients flow through fp16 (fp16 and amp on GPU)."""
    if device.type == "cuda" and prec in ("fp16", "amp"):
        return torch.amp.GradScaler("cuda")
    return None
