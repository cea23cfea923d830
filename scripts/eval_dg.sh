#!/usr/bin/env bash
# Domain generalisation, eval only (CoOp's eval.sh protocol): bash scripts/eval_dg.sh TRAINER TARGET [SEEDS...] [-- KEY VALUE ...]
# Evaluates the 16-shot ImageNet run of TRAINER (trained by scripts/<method>.sh imagenet 16 with the same
# "-- KEY VALUE" overrides) on TARGET (imagenetv2, imagenet_sketch, imagenet_a, imagenet_r) into
# OUTPUT/evaluation/<Trainer>/<cfg>_16shots/<variant>/<TARGET>/seed<S>, loading the run's last checkpoint.
# The run's own config.yaml is the config, so every setting of the trained model carries over; only the
# DATASET keys (from configs/datasets/TARGET.yaml, the full test set, all classes, TARGET's template) change.
# MaPLe / PromptSRC: the run of their official cross-dataset config unless CFG is set (scripts/protocols.sh).
# This is scripts/xd.sh's evaluation (scripts/protocols.sh) without training the source.
# Environment: BACKBONE (config stem, default vit_b32), DATA, OUTPUT.
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/protocols.sh"
[ $# -ge 2 ] || { echo "usage: bash $0 TRAINER TARGET [SEEDS...] [-- KEY VALUE ...]" >&2; exit 2; }
METHOD=$(method_of_trainer "$1")
use_xd_config "$METHOD"
shift
parse_args "$1" 16 "${@:2}"
ROOT=$(run_root "$METHOD" imagenet 16)
for seed in "${SEEDS[@]}"; do
  evaluate_transfer "$ROOT" imagenet "$DATASET" "$seed"
done
