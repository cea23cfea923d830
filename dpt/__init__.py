"""Dual Modality Prompt Tuning (DPT) and its baselines for CLIP, with a small Dassl-compatible engine.

Public API (kept stable; README "Python API" and "Use a trained model"): ``build_config``, ``build_trainer``,
``load_run``, ``load_classifier`` and the ``Classifier`` it returns. They are imported on first use, so that
``import dpt`` (and every ``python -m dpt.<tool>`` the scripts run per job, e.g. ``dpt.launch.run_names``) does
not load torch.
"""
import importlib
from typing import Any

__version__ = "0.1.0"
_API = {
    "build_config": "dpt.api",
    "build_trainer": "dpt.api",
    "load_run": "dpt.inference.run",
    "load_classifier": "dpt.inference.classifier",
    "Classifier": "dpt.inference.classifier",
}
__all__ = ["Classifier", "__version__", "build_config", "build_trainer", "load_classifier", "load_run"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'dpt' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))
