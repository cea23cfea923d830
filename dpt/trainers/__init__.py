"""Trainers, registered by TRAINER.NAME: ZeroshotCLIP, ZeroshotCLIP2, CoOp, CoCoOp, VPT, VLP, DPT."""
from dpt.trainers import cocoop, coop, dpt, vlp, vpt, zsclip  # noqa: F401
