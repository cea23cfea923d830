#!/usr/bin/env bash
# IVLP (independent deep prompts in both towers): bash scripts/ivlp.sh DATASET SHOTS [SEEDS...] [-- KEY VALUE ...]
# Environment: CFG (default vit_b16_c2_ep5_batch4_2+2ctx, the official base-to-novel config; also
# vit_b16_c2_ep20_batch4_4+4ctx, vit_b16_c2_ep5_batch4_4ctx_language_only: configs/trainers/IVLP/), DATA, OUTPUT.
# The official configs are ViT-B/16: BACKBONE is not read.
source "$(dirname "$0")/common.sh"
parse_args "$@"
train_official_config IVLP "${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}"
