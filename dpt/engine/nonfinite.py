"""Find where a NaN/inf first appears: forward hooks that name the first module with a non-finite output.

Why: a non-finite loss alone does not say whether the images, a prompt or a frozen CLIP block went wrong;
hooks fire in the order modules finish, so the first hit is where the values first broke.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, List, Tuple

import torch
from torch import nn


def has_nonfinite(output: Any) -> bool:
    """True if any floating tensor in ``output`` (a tensor or nested tuple/list/dict of them) is NaN or inf."""
    if isinstance(output, torch.Tensor):
        return output.is_floating_point() and not bool(torch.isfinite(output).all())
    if isinstance(output, (tuple, list)):
        return any(has_nonfinite(o) for o in output)
    if isinstance(output, dict):
        return any(has_nonfinite(o) for o in output.values())
    return False


def first_nonfinite_module(modules: Iterable[Tuple[str, nn.Module]], run: Callable[[], Any]) -> str:
    """Call ``run()`` under ``no_grad`` with hooks on ``modules``; describe the first non-finite output.

    ``run`` may raise (a second FloatingPointError, or a backward refused under no_grad): the hooks have
    already seen the forward by then. Returns e.g. ``"first non-finite output from module
    model.clip_model.visual.transformer.resblocks.3.mlp.c_fc (Linear)"``.
    """
    found: List[str] = []

    def hook(name: str) -> Callable:
        def check(module: nn.Module, inputs: Any, output: Any) -> None:
            if not found and has_nonfinite(output):
                found.append(f"{name} ({type(module).__name__})")

        return check

    handles = [module.register_forward_hook(hook(name)) for name, module in modules]
    try:
        with torch.no_grad():
            run()
    except (FloatingPointError, RuntimeError):
        pass
    finally:
        for handle in handles:
            handle.remove()
    if not found:
        return "no module output was non-finite (the loss computation itself overflowed)"
    return f"first non-finite output from module {found[0]}"
