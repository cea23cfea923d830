#!/usr/bin/env bash
# Linear-probe CLIP (CoOp's lpclip protocol on Dassl's few-shot subsets): bash scripts/linear_probe.sh DATASET SHOTS [SEEDS...] [-- KEY VALUE ...]
# Frozen CLIP image features (cached per split), L2 logistic regression, C searched on the val split.
# Environment: BACKBONE (config stem, default vit_b32; also vit_b16), DATA, OUTPUT.
source "$(dirname "$0")/common.sh"
parse_args "$@"
BACKBONE=${BACKBONE:-vit_b32}
GROUP=$(run_group "$OUTPUT/$DATASET/LinearProbeCLIP/${BACKBONE}_${SHOTS}shots" "" lbfgs_l2)
train_seeds LinearProbeCLIP "$BACKBONE" "$GROUP"
