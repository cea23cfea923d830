"""Dual Modality Prompt Tuning (DPT) and its baselines for CLIP, with a small Dassl-compatible engine."""

__version__ = "0.1.0"

from dpt.inference.classifier import Classifier, load_classifier  # noqa: E402
from dpt.inference.run import load_run  # noqa: E402

__all__ = ["Classifier", "load_classifier", "load_run", "__version__"]
