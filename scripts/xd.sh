#!/usr/bin/env bash
# Cross-dataset transfer: bash scripts/xd.sh METHOD SOURCE TARGET [TARGET...] [-- KEY VALUE ... [-- KEY VALUE ...]]
# METHOD: coop vpt vlp dpt cocoop ivlp maple promptsrc kgcoop (the table in scripts/protocols.sh; MaPLe and
# PromptSRC train the source with their official cross-dataset config unless CFG is set). For each seed of SEEDS
# (default "1 2 3"): train on SOURCE with 16 shots and all classes through scripts/<METHOD>.sh (the few-shot run
# itself, skipped when finished), then evaluate its last checkpoint on every TARGET's full test set with TARGET's
# class names and template (class-count-dependent tensors are not loaded; DPT's selector and CAVPT run on TARGET's
# classes) into
#   OUTPUT/evaluation/<Trainer>/<cfg>_16shots/<variant>/<TARGET>/seed<S>    (SOURCE imagenet, CoOp's layout)
#   OUTPUT/xd/<SOURCE>/<Trainer>/<cfg>_16shots/<variant>/<TARGET>/seed<S>   (any other SOURCE)
# Overrides after the first -- are the source training's (they name its run folder; the evaluations inherit them
# through the run's config.yaml); those after a second -- apply to the target evaluations only and name their
# folders (<variant>_<their overrides>):
#   bash scripts/xd.sh dpt imagenet dtd -- OPTIM.LR 0.001 -- TEST.PER_CLASS_RESULT True
# Environment: SEEDS, DATA (images of SOURCE), TARGET_DATA (images of the targets, default DATA), OUTPUT,
# BACKBONE, PYTHON.
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/protocols.sh"
TRAINS_FIRST=1
USAGE="usage: bash $0 METHOD SOURCE TARGET [TARGET...] [-- KEY VALUE ... [-- KEY VALUE ...]]"
[ $# -ge 3 ] || { echo "$USAGE" >&2; exit 2; }
METHOD=$1
SOURCE_NAME=$2
shift 2
TARGETS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do TARGETS+=("$1"); shift; done
[ ${#TARGETS[@]} -gt 0 ] || { echo "error: give at least one TARGET dataset" >&2; exit 2; }
SOURCE_OPTS=()
TARGET_OPTS=()
if [ $# -gt 0 ]; then shift; while [ $# -gt 0 ] && [ "$1" != "--" ]; do SOURCE_OPTS+=("$1"); shift; done; fi
if [ $# -gt 0 ]; then shift; TARGET_OPTS=("$@"); fi
(( ${#TARGET_OPTS[@]} % 2 == 0 )) || {
  echo "error: overrides after the second -- must be KEY VALUE pairs: ${TARGET_OPTS[*]}" >&2; exit 2; }
read -r -a XD_SEEDS <<< "${SEEDS:-1 2 3}"
parse_args "$SOURCE_NAME" 16 "${XD_SEEDS[@]}" -- ${SOURCE_OPTS[@]+"${SOURCE_OPTS[@]}"}
method_row "$METHOD"
use_xd_config "$METHOD"
for target in "${TARGETS[@]}"; do check_dataset "$target"; done
ROOT=$(run_root "$METHOD" "$DATASET" 16)
OPTS=(${TARGET_OPTS[@]+"${TARGET_OPTS[@]}"})  # what evaluate_run adds to the evaluations
EVAL_NAME=$(TAG="" run_group "${ROOT%/*}" "" "${ROOT##*/}")
for seed in "${SEEDS[@]}"; do
  bash "$REPO/scripts/$METHOD.sh" "$DATASET" 16 "$seed" -- ${SOURCE_OPTS[@]+"${SOURCE_OPTS[@]}"}
  for target in "${TARGETS[@]}"; do
    evaluate_transfer "$ROOT" "$DATASET" "$target" "$seed" "${EVAL_NAME##*/}"
  done
done
