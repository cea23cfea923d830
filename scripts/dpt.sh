#!/usr/bin/env bash
# DPT (text prompt + VPT-deep + class-aware visual prompts): bash scripts/dpt.sh DATASET SHOTS [SEEDS...] [-- KEY VALUE ...]
# Epochs (paper IV.A): 100 for 2-16 shots, 60 for 1 shot, ImageNet 20; Caltech101 and OxfordPets at 16 shots 60.
# Environment: BACKBONE (config stem, default vit_b32), DATA, OUTPUT.
source "$(dirname "$0")/common.sh"
parse_args "$@"
BACKBONE=${BACKBONE:-vit_b32}
if [ "$DATASET" = imagenet ]; then EPOCHS=20
elif [ "$SHOTS" -le 1 ]; then EPOCHS=60
elif [ "$SHOTS" -ge 16 ] && { [ "$DATASET" = caltech101 ] || [ "$DATASET" = oxford_pets ]; }; then EPOCHS=60
else EPOCHS=100; fi
SCRIPT_OPTS=(OPTIM.MAX_EPOCH "$EPOCHS")
GROUP=$(run_group "$OUTPUT/$DATASET/DPT/${BACKBONE}_${SHOTS}shots" "$REPO/configs/trainers/DPT/$BACKBONE.yaml" \
  nctx=TRAINER.COOP.N_CTX:16 vctx=TRAINER.VPT.N_CTX:10 cpn=TRAINER.SELECTED_COVPT.CPN:10)
train_seeds DPT "$BACKBONE" "$GROUP"
