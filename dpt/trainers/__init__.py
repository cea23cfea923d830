"""Trainers, registered by TRAINER.NAME: ZeroshotCLIP, ZeroshotCLIP2, LinearProbeCLIP, CoOp, CoCoOp, VPT, VLP, DPT."""
from dpt.trainers import cocoop, coop, dpt, linear_probe, vlp, vpt, zsclip  # noqa: F401
