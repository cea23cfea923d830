#!/usr/bin/env bash
# Cross-dataset transfer: bash scripts/xd.sh METHOD SOURCE TARGET [TARGET...] [-- KEY VALUE ...]
# METHOD: coop vpt vlp dpt cocoop ivlp maple promptsrc kgcoop (the table in scripts/protocols.sh; MaPLe and
# PromptSRC train the source with their official cross-dataset config unless CFG is set). For each seed of SEEDS
# (default "1 2 3"): train on SOURCE with 16 shots and all classes through scripts/<METHOD>.sh (the few-shot run
# itself, skipped when finished), then evaluate its last checkpoint on every TARGET's full test set with TARGET's
# class names and template (class-count-dependent tensors are not loaded; DPT's selector and CAVPT run on TARGET's
# classes) into
#   OUTPUT/evaluation/<Trainer>/<cfg>_16shots/<variant>/<TARGET>/seed<S>    (SOURCE imagenet, CoOp's layout)
#   OUTPUT/xd/<SOURCE>/<Trainer>/<cfg>_16shots/<variant>/<TARGET>/seed<S>   (any other SOURCE)
# Overrides after -- apply to the training and the evaluations (and name the run folders).
# Environment: SEEDS, DATA (images of SOURCE), TARGET_DATA (images of the targets, default DATA), OUTPUT,
# BACKBONE, PYTHON.
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/protocols.sh"
TRAINS_FIRST=1
[ $# -ge 3 ] || { echo "usage: bash $0 METHOD SOURCE TARGET [TARGET...] [-- KEY VALUE ...]" >&2; exit 2; }
METHOD=$1
SOURCE_NAME=$2
shift 2
TARGETS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do TARGETS+=("$1"); shift; done
[ ${#TARGETS[@]} -gt 0 ] || { echo "error: give at least one TARGET dataset" >&2; exit 2; }
read -r -a XD_SEEDS <<< "${SEEDS:-1 2 3}"
parse_args "$SOURCE_NAME" 16 "${XD_SEEDS[@]}" "$@"
method_row "$METHOD"
use_xd_config "$METHOD"
for target in "${TARGETS[@]}"; do check_dataset "$target"; done
ROOT=$(run_root "$METHOD" "$DATASET" 16)
for seed in "${SEEDS[@]}"; do
  bash "$REPO/scripts/$METHOD.sh" "$DATASET" 16 "$seed" -- ${OPTS[@]+"${OPTS[@]}"}
  for target in "${TARGETS[@]}"; do
    evaluate_transfer "$ROOT" "$DATASET" "$target" "$seed"
  done
done
