#!/usr/bin/env bash
# VPT-deep with frozen hand-crafted text: bash scripts/vpt.sh DATASET SHOTS [SEEDS...] [-- KEY VALUE ...]
# Epochs as CoOp (paper IV.A): 1 shot 50, 2/4 shots 100, 8/16 shots 200, ImageNet 50.
# Environment: BACKBONE (config stem, default vit_b32), VCTX (10), DATA, OUTPUT.
source "$(dirname "$0")/common.sh"
parse_args "$@"
BACKBONE=${BACKBONE:-vit_b32}
VCTX=${VCTX:-10}
if [ "$DATASET" = imagenet ] || [ "$SHOTS" -le 1 ]; then EPOCHS=50
elif [ "$SHOTS" -le 4 ]; then EPOCHS=100
else EPOCHS=200; fi
SCRIPT_OPTS=(OPTIM.MAX_EPOCH "$EPOCHS" TRAINER.VPT.N_CTX "$VCTX")
GROUP=$(run_group "$OUTPUT/$DATASET/VPT/${BACKBONE}_${SHOTS}shots" "$REPO/configs/trainers/VPT/$BACKBONE.yaml" \
  vctx=TRAINER.VPT.N_CTX)
train_seeds VPT "$BACKBONE" "$GROUP"
