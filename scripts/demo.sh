#!/usr/bin/env bash
# Offline demo: a synthetic EuroSAT-format dataset + a tiny random CLIP, then ZeroshotCLIP, CoOp, VPT, VLP,
# DPT, CoCoOp and the linear probe through the real method scripts on CPU, and the results table. About 2 minutes
# on 2 cores.
# Accuracies of a random CLIP mean nothing; the demo shows the whole pipeline runs.
# Environment: OUTPUT_ROOT (default ./output/demo), PYTHON (default python).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python}
OUTPUT_ROOT=${OUTPUT_ROOT:-./output/demo}

"$PYTHON" -m dpt.tools.demo --out "$OUTPUT_ROOT"
export DATA="$OUTPUT_ROOT/data" OUTPUT="$OUTPUT_ROOT/runs" PYTHON TAG=demo
TINY=(MODEL.BACKBONE.NAME "$OUTPUT_ROOT/tiny_clip.pt" INPUT.SIZE "(32,32)"
      DATALOADER.NUM_WORKERS 0 TRAIN.PRINT_FREQ 10)
# Short schedules for the demo (the paper's are 50-200 epochs); a lower lr than the paper's 0.01 for the
# visual prompts, which overshoot on a random CLIP.
SHORT=(OPTIM.MAX_EPOCH 10 OPTIM.WARMUP_EPOCH 1 PRETRAIN.C 3 OPTIM.LR 0.001)

bash "$HERE/zeroshot.sh" eurosat -- "${TINY[@]}" > /dev/null
for method in coop vpt vlp dpt; do
  echo "== $method"
  bash "$HERE/$method.sh" eurosat 4 1 -- "${TINY[@]}" "${SHORT[@]}" | grep -E "^(Skip|\* accuracy)" || true
done
echo "== cocoop"  # batch 8 instead of its configs' 1, to keep the demo short
bash "$HERE/cocoop.sh" eurosat 4 1 -- "${TINY[@]}" "${SHORT[@]}" DATALOADER.TRAIN_X.BATCH_SIZE 8 \
  | grep -E "^(Skip|\* accuracy)" || true
echo "== linear_probe"  # one fit, no epochs
bash "$HERE/linear_probe.sh" eurosat 4 1 -- "${TINY[@]}" | grep -E "^(Skip|\* accuracy)" || true
"$PYTHON" -m dpt.tools.results "$OUTPUT" --seeds 1
