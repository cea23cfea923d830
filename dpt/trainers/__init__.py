"""Trainers, registered by TRAINER.NAME: ZeroshotCLIP, ZeroshotCLIP2, CoOp, VPT, VLP, DPT."""
from dpt.trainers import coop, dpt, vlp, vpt, zsclip  # noqa: F401
