"""Dual Modality Prompt Tuning (DPT) and its baselines for CLIP, with a small Dassl-compatible engine.

Public API (kept stable; README "Python API"): ``build_config`` and ``build_trainer``.
"""
from dpt.api import build_config, build_trainer

__version__ = "0.1.0"
__all__ = ["__version__", "build_config", "build_trainer"]
