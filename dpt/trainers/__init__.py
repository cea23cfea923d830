"""Trainers, registered by TRAINER.NAME: ZeroshotCLIP, ZeroshotCLIP2, LinearProbeCLIP, CoOp, CoCoOp, VPT, VLP, DPT,
IVLP, MaPLe, PromptSRC."""
from dpt.trainers import cocoop, coop, dpt, ivlp, linear_probe, maple, promptsrc, vlp, vpt, zsclip  # noqa: F401
