#!/usr/bin/env bash
# Base-to-novel generalisation (CoCoOp's protocol): bash scripts/b2n.sh METHOD DATASET [SEEDS...] [-- KEY VALUE ...]
# METHOD: coop vpt vlp dpt cocoop ivlp maple promptsrc kgcoop (the table in scripts/protocols.sh), or zeroshot (CLIP on base and new, no training).
# Per seed (default 1 2 3): train on the base classes (DATASET.SUBSAMPLE_CLASSES base, 16 shots per class unless
# "-- DATASET.NUM_SHOTS N", the table's epochs) into
#   OUTPUT/base2new/train_base/<DATASET>/shots_<N>/<Trainer>/<config>_ep<E><suffix>/seed<S>
# whose final test is the base accuracy; then evaluate its last checkpoint on the new classes into the same path
# under base2new/test_new/. Overrides after -- win over the protocol's settings and name the folders as in the
# method scripts. Zero-shot: base2new/{train_base,test_new}/<DATASET>/shots_0/ZeroshotCLIP/<CFG>/ (no seeds).
# Environment: BACKBONE (vit_b32), CFG (zero-shot config stem, vit_b32), DATA, OUTPUT, PYTHON, TAG.
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/protocols.sh"
TRAINS_FIRST=1
[ $# -ge 2 ] || { echo "usage: bash $0 METHOD DATASET [SEEDS...] [-- KEY VALUE ...]" >&2; exit 2; }
METHOD=$1
shift
parse_args "$1" 16 "${@:2}"
for ((i = 0; i < ${#OPTS[@]}; i += 2)); do  # "-- DATASET.NUM_SHOTS N" wins, and names shots_<N>
  if [ "${OPTS[i]}" = DATASET.NUM_SHOTS ]; then SHOTS=${OPTS[i+1]}; fi
done
B2N=$OUTPUT/base2new

if [ "$METHOD" = zeroshot ]; then
  CFG=${CFG:-vit_b32}
  NAME=$(run_group "$B2N/train_base/$DATASET/shots_0/ZeroshotCLIP" "" "$CFG")
  NAME=${NAME##*/}
  for phase in train_base:base test_new:new; do
    run_job "$B2N/${phase%:*}/$DATASET/shots_0/ZeroshotCLIP/$NAME" "=> result" \
      --trainer ZeroshotCLIP \
      --dataset-config-file "$REPO/configs/datasets/$DATASET.yaml" \
      --config-file "$REPO/configs/trainers/CoOp/$CFG.yaml" \
      --eval-only DATASET.SUBSAMPLE_CLASSES "${phase#*:}" ${OPTS[@]+"${OPTS[@]}"}
  done
  exit 0
fi

method_row "$METHOD"
EPOCHS=$M_EPOCHS
if [ "$DATASET" = imagenet ]; then EPOCHS=$M_IMAGENET_EPOCHS; fi
CFG_DIR=$M_CONFIG
EPOCH_OPTS=()
if [ "$EPOCHS" != - ]; then CFG_DIR=${M_CONFIG}_ep$EPOCHS; EPOCH_OPTS=(OPTIM.MAX_EPOCH "$EPOCHS"); fi
NAME=$(run_group "$B2N/train_base/$DATASET/shots_$SHOTS/$M_TRAINER" "" "$CFG_DIR")
GROUP=$DATASET/shots_$SHOTS/$M_TRAINER/${NAME##*/}
for seed in "${SEEDS[@]}"; do
  run_job "$B2N/train_base/$GROUP/seed$seed" "Finish training" \
    --seed "$seed" --trainer "$M_TRAINER" \
    --dataset-config-file "$REPO/configs/datasets/$DATASET.yaml" \
    --config-file "$REPO/configs/trainers/$M_TRAINER/$M_CONFIG.yaml" \
    ${EPOCH_OPTS[@]+"${EPOCH_OPTS[@]}"} ${M_OPTS[@]+"${M_OPTS[@]}"} DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES base \
    ${OPTS[@]+"${OPTS[@]}"}
  evaluate_run "$B2N/train_base/$GROUP/seed$seed" "$B2N/test_new/$GROUP/seed$seed" "$seed" \
    DATASET.SUBSAMPLE_CLASSES new
done
