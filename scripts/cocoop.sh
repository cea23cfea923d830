#!/usr/bin/env bash
# CoCoOp (CoOp's CoCoOp configs: 10 epochs, batch 1): bash scripts/cocoop.sh DATASET SHOTS [SEEDS...] [-- KEY VALUE ...]
# Environment: BACKBONE (config stem, default vit_b32), CFG (default ${BACKBONE}_c4_ep10_batch1; also _ctxv1, c8,
# c16: configs/trainers/CoCoOp/), DATA, OUTPUT. The variant folder names the context: nctx<N> or ctxinit.
source "$(dirname "$0")/common.sh"
parse_args "$@"
BACKBONE=${BACKBONE:-vit_b32}
CFG=${CFG:-${BACKBONE}_c4_ep10_batch1}
YAML="$REPO/configs/trainers/CoCoOp/$CFG.yaml"
[ -f "$YAML" ] || { echo "error: no CoCoOp config $YAML; valid: $(ls "$REPO/configs/trainers/CoCoOp" | sed 's/\.yaml$//' | tr '\n' ' ')" >&2; exit 2; }
GROUP=$(run_group "$OUTPUT/$DATASET/CoCoOp/${CFG}_${SHOTS}shots" "$YAML" \
  "ctxinit?TRAINER.COCOOP.CTX_INIT" nctx=TRAINER.COCOOP.N_CTX)
train_seeds CoCoOp "$CFG" "$GROUP"
