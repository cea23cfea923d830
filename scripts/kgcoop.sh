#!/usr/bin/env bash
# KgCoOp (CoOp's context kept near the hand-crafted prompt): bash scripts/kgcoop.sh DATASET SHOTS [SEEDS...] [-- KEY VALUE ...]
# As the official scripts: TRAINER.COOP.W 8.0 (an override after -- wins). Environment: CFG (default
# vit_b16_ep100_ctxv1, the official base-to-novel config; also rn50_ep100: configs/trainers/KgCoOp/), DATA, OUTPUT.
# The official configs name their backbone (ViT-B/16, RN50): BACKBONE is not read.
source "$(dirname "$0")/common.sh"
parse_args "$@"
train_official_config KgCoOp "${CFG:-vit_b16_ep100_ctxv1}" TRAINER.COOP.W 8.0
