"""Dual Modality Prompt Tuning (DPT) and its baselines for CLIP, with a small Dassl-compatible engine."""

__version__ = "0.1.0"
