"""Precision modes (each trainer's ``precision_key``): fp16 (GPU only), fp32, amp, bf16."""
from __future__ import annotations

import contextlib
from typing import ContextManager, Optional

import torch

PRECISIONS = ("fp16", "fp32", "amp", "bf16")


def check_precision(prec: str, device: torch.device, key: str) -> None:
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


class CountingGradScaler(torch.amp.GradScaler):
    """A GradScaler that counts its updates and the skipped ones, for the end-of-training summary.

    Why: a fp16 run that skips most of its steps (inf/NaN gradients) learns nothing yet finishes without an
    error; the count makes that visible in log.txt. An update skips when the scale backs off, which
    ``GradScaler.update`` does exactly when an optimiser's gradients held inf/NaN.
    """

    def __init__(self, device: str = "cuda", **kwargs) -> None:
        super().__init__(device, **kwargs)
        self.steps = 0
        self.skipped = 0

    def update(self, new_scale=None) -> None:
        before = self.get_scale()
        super().update(new_scale)
        self.steps += 1
        self.skipped += int(self.get_scale() < before)

    def summary(self) -> str:
        """One log line: ``Loss scaler: <N> steps, <K> skipped (inf/NaN gradients), final scale <S>``."""
        return (f"Loss scaler: {self.steps} steps, {self.skipped} skipped (inf/NaN gradients), "
                f"final scale {self.get_scale():g}")


def grad_scaler(prec: str, device: torch.device) -> Optional[CountingGradScaler]:
    """A loss scaler shared by all optimisers when gradients flow through fp16 (fp16 and amp on GPU)."""
    if device.type == "cuda" and prec in ("fp16", "amp"):
        return CountingGradScaler("cuda")
    return None
