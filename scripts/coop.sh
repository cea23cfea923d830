#!/usr/bin/env bash
# CoOp with CoOp's protocol: bash scripts/coop.sh DATASET SHOTS [SEEDS...] [-- KEY VALUE ...]
# Environment: BACKBONE (config stem, default vit_b32), NCTX (16), CSC (False), CTP (end), DATA, OUTPUT.
source "$(dirname "$0")/common.sh"
parse_args "$@"
BACKBONE=${BACKBONE:-vit_b32}
NCTX=${NCTX:-16}
CSC=${CSC:-False}
CTP=${CTP:-end}
# CoOp's epochs: 1 shot 50, 2/4 shots 100, 8/16 shots 200; ImageNet always 50.
if [ "$DATASET" = imagenet ] || [ "$SHOTS" -le 1 ]; then CFG=${BACKBONE}_ep50
elif [ "$SHOTS" -le 4 ]; then CFG=${BACKBONE}_ep100
else CFG=$BACKBONE; fi
SCRIPT_OPTS=(TRAINER.COOP.N_CTX "$NCTX" TRAINER.COOP.CSC "$CSC" TRAINER.COOP.CLASS_TOKEN_POSITION "$CTP")
GROUP=$(run_group "$OUTPUT/$DATASET/CoOp/${CFG}_${SHOTS}shots" "$REPO/configs/trainers/CoOp/$CFG.yaml" \
  nctx=TRAINER.COOP.N_CTX csc=TRAINER.COOP.CSC ctp=TRAINER.COOP.CLASS_TOKEN_POSITION)
train_seeds CoOp "$CFG" "$GROUP"
