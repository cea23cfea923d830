#!/usr/bin/env bash
# MaPLe (deep text prompts coupled to the vision tower): bash scripts/maple.sh DATASET SHOTS [SEEDS...] [-- KEY VALUE ...]
# Environment: CFG (default vit_b16_c2_ep5_batch4_2ctx, the official base-to-novel config; also
# vit_b16_c2_ep5_batch4_2ctx_cross_datasets, which scripts/xd.sh and eval_dg.sh use: configs/trainers/MaPLe/),
# DATA, OUTPUT. The official configs are ViT-B/16: BACKBONE is not read.
source "$(dirname "$0")/common.sh"
parse_args "$@"
train_official_config MaPLe "${CFG:-vit_b16_c2_ep5_batch4_2ctx}"
