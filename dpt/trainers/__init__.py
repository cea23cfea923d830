"""Trainers, registered by TRAINER.NAME: ZeroshotCLIP, ZeroshotCLIP2, LinearProbeCLIP, CoOp, CoCoOp, KgCoOp, VPT, VLP,
DPT."""
from dpt.trainers import cocoop, coop, dpt, kgcoop, linear_probe, vlp, vpt, zsclip  # noqa: F401
