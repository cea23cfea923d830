"""Trainers, registered by TRAINER.NAME: ZeroshotCLIP, ZeroshotCLIP2, LinearProbeCLIP, CoOp, CoCoOp, KgCoOp, VPT, VLP,
DPT, IVLP, MaPLe, PromptSRC."""
from dpt.trainers import cocoop, coop, dpt, ivlp, kgcoop, linear_probe, maple, promptsrc, vlp, vpt, zsclip  # noqa: F401
