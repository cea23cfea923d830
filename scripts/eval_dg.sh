#!/usr/bin/env bash
# Domain generalisation, eval only (CoOp's eval.sh protocol): bash scripts/eval_dg.sh TRAINER TARGET [SEEDS...] [-- KEY VALUE ...]
# Evaluates the 16-shot ImageNet run of TRAINER (trained by scripts/<method>.sh imagenet 16 with the same
# "-- KEY VALUE" overrides) on TARGET (imagenetv2, imagenet_sketch, imagenet_a, imagenet_r) into
# OUTPUT/evaluation/<Trainer>/<cfg>_16shots/<variant>/<TARGET>/seed<S>, loading the run's last checkpoint.
# The run's own config.yaml is the config, so every setting of the trained model carries over; only
# DATASET.NAME (from configs/datasets/TARGET.yaml) and DATASET.NUM_SHOTS -1 change.
# Environment: BACKBONE (config stem, default vit_b32), CFG (the run's config stem when it is not
# <BACKBONE>[_ep<k>]; CoCoOp's default: <BACKBONE>_c4_ep10_batch1), DATA, OUTPUT.
source "$(dirname "$0")/common.sh"
[ $# -ge 2 ] || { echo "usage: bash $0 TRAINER TARGET [SEEDS...] [-- KEY VALUE ...]" >&2; exit 2; }
TRAINER=$1
shift
parse_args "$1" 16 "${@:2}"
BACKBONE=${BACKBONE:-vit_b32}
if [ "$TRAINER" = CoCoOp ]; then CFG=${CFG:-${BACKBONE}_c4_ep10_batch1}; fi
TARGET_NAME=$(awk '$1 == "NAME:" {gsub(/"/, "", $2); print $2}' "$REPO/configs/datasets/$DATASET.yaml")

# The source group: OUTPUT/imagenet/TRAINER/<BACKBONE>[_ep<k>]_16shots (or <CFG>_16shots)/<variant><SUFFIX>, where the variant
# itself carries no override (overrides always add "_KEY-VALUE", so a '-' before SUFFIX means other overrides).
source_group() {
  local found=() dir cfg variant
  for dir in "$OUTPUT/imagenet/$TRAINER"/*_16shots/*; do
    [ -d "$dir" ] || continue
    cfg=$(basename "$(dirname "$dir")")
    variant=$(basename "$dir")
    if [ -n "${CFG:-}" ]; then [ "$cfg" = "${CFG}_16shots" ] || continue
    else [[ "$cfg" =~ ^${BACKBONE}(_ep[0-9]+)?_16shots$ ]] || continue; fi
    [[ "$variant" == *"$SUFFIX" ]] || continue
    [[ "${variant%"$SUFFIX"}" != *-* ]] || continue
    found+=("$dir")
  done
  if [ ${#found[@]} -ne 1 ]; then
    echo "error: expected one 16-shot ImageNet run group of $TRAINER ($BACKBONE, overrides '${OPTS[*]-}') under" \
      "$OUTPUT/imagenet/$TRAINER, found ${#found[@]}: ${found[*]-}" >&2
    exit 2
  fi
  SOURCE=${found[0]}
}

source_group
GROUP=${SOURCE#"$OUTPUT/imagenet/"}
for seed in "${SEEDS[@]}"; do
  src="$SOURCE/seed$seed"
  if ! run_finished "$src" "Finish training"; then
    echo "error: the ImageNet run $src has not finished training; run scripts for imagenet 16 shots first" >&2
    exit 2
  fi
  # The last saved epoch (= OPTIM.MAX_EPOCH of a finished run), as named by a model's checkpoint pointer.
  pointers=("$src"/*/checkpoint)
  last=$( [ -f "${pointers[0]}" ] && head -n 1 "${pointers[0]}" || true)
  EPOCH=${last##*-}
  [[ "$EPOCH" =~ ^[0-9]+$ ]] || { echo "error: no model.pth.tar-<epoch> named in $src/*/checkpoint" >&2; exit 2; }
  run_job "$OUTPUT/evaluation/$GROUP/$DATASET/seed$seed" "=> result" \
    --seed "$seed" --config-file "$src/config.yaml" \
    --eval-only --model-dir "$src" --load-epoch "$EPOCH" \
    DATASET.NAME "$TARGET_NAME" DATASET.NUM_SHOTS -1 ${OPTS[@]+"${OPTS[@]}"}
done
