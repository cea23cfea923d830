"""Dual Modality Prompt Tuning (DPT) and its baselines for CLIP, with a small Dassl-compatible engine.

Public API (kept stable; README "Python API" and "Use a trained model"): ``build_config``, ``build_trainer``,
``load_run``, ``load_classifier`` and the ``Classifier`` it returns.
"""
from dpt.api import build_config, build_trainer
from dpt.inference.classifier import Classifier, load_classifier
from dpt.inference.run import load_run

__version__ = "0.1.0"
__all__ = ["Classifier", "__version__", "build_config", "build_trainer", "load_classifier", "load_run"]
