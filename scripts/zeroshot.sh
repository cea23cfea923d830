#!/usr/bin/env bash
# Zero-shot CLIP (CoOp's layout): bash scripts/zeroshot.sh DATASET [-- KEY VALUE ...]
# Environment: CFG (CoOp config stem, default $BACKBONE, else vit_b32), TRAINER (ZeroshotCLIP, or ZeroshotCLIP2 for
# the template ensemble), DATA, OUTPUT.
source "$(dirname "$0")/common.sh"
[ $# -ge 1 ] || usage
DATASET_ARG=$1
shift
parse_args "$DATASET_ARG" 0 0 "$@"
CFG=${CFG:-${BACKBONE:-vit_b32}}
TRAINER=${TRAINER:-ZeroshotCLIP}
GROUP=$(run_group "$OUTPUT/$TRAINER" "" "$CFG")
run_job "$GROUP/$DATASET" "=> result" \
  --trainer "$TRAINER" \
  --dataset-config-file "$REPO/configs/datasets/$DATASET.yaml" \
  --config-file "$REPO/configs/trainers/CoOp/$CFG.yaml" \
  --eval-only ${OPTS[@]+"${OPTS[@]}"}
