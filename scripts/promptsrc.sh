#!/usr/bin/env bash
# PromptSRC (IVLP-style prompts regularised towards frozen CLIP, Gaussian prompt aggregation):
#   bash scripts/promptsrc.sh DATASET SHOTS [SEEDS...] [-- KEY VALUE ...]
# Environment: CFG (default vit_b16_c2_ep20_batch4_4+4ctx, the official base-to-novel config; also
# vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets, which scripts/xd.sh and eval_dg.sh use, and
# vit_b16_c2_ep50_batch4_4+4ctx_few_shot: configs/trainers/PromptSRC/), DATA, OUTPUT. The official configs are
# ViT-B/16: BACKBONE is not read.
source "$(dirname "$0")/common.sh"
parse_args "$@"
train_official_config PromptSRC "${CFG:-vit_b16_c2_ep20_batch4_4+4ctx}"
