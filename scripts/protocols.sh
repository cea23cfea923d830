# Shared by scripts/b2n.sh, scripts/xd.sh and scripts/eval_dg.sh (sourced after common.sh): the methods of
# the base-to-novel and cross-dataset protocols, and the one way a trained run is evaluated elsewhere.

# METHOD   TRAINER  CONFIG  EPOCHS  IMAGENET_EPOCHS  [XD_CONFIG  [OPTS]]
#   CONFIG: configs/trainers/<TRAINER>/<CONFIG>.yaml, "@" standing for $BACKBONE (default vit_b32).
#   EPOCHS: base-to-novel training epochs ("-": the yaml's own); IMAGENET_EPOCHS: the same on ImageNet.
#   XD_CONFIG: the CFG that scripts/xd.sh and scripts/eval_dg.sh train / evaluate the source run with ("-" or
#   absent: the method script's default; a CFG in the environment wins). OPTS: KEY=VALUE,... yacs overrides of
#   the base-to-novel training ("-" or absent: none; the method script passes the same ones itself).
#   Each method's 16-shot schedule (CoCoOp trains CoOp that way); VLP/DPT use the paper's 16-shot 100 (ImageNet
#   20) without its Caltech101/OxfordPets 60-epoch exception, one schedule per method as CoCoOp has.
#   CoCoOp: its yaml's 10 epochs and the config of its published base-to-novel runs (_ctxv1).
#   IVLP, MaPLe, PromptSRC, KgCoOp: their official base-to-novel configs and epochs (ViT-B/16 only), MaPLe's and
#   PromptSRC's official cross-dataset configs for xd / dg, and KgCoOp's script weight TRAINER.COOP.W 8.0.
#   scripts/<METHOD>.sh is what xd.sh trains a source with. Adding a method is one line.
PROTOCOL_METHODS="
coop       CoOp     @       200     50
vpt        VPT      @       200     50
vlp        VLP      @       100     20
dpt        DPT      @       100     20
cocoop     CoCoOp   @_c4_ep10_batch1_ctxv1  -  -
linear_probe LinearProbeCLIP @ - -
ivlp       IVLP      vit_b16_c2_ep5_batch4_2+2ctx    -  -  -
maple      MaPLe     vit_b16_c2_ep5_batch4_2ctx      -  -  vit_b16_c2_ep5_batch4_2ctx_cross_datasets
promptsrc  PromptSRC vit_b16_c2_ep20_batch4_4+4ctx   -  -  vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets
kgcoop     KgCoOp    vit_b16_ep100_ctxv1             -  -  -  TRAINER.COOP.W=8.0
"
# Methods whose classifier exists only for the classes they were trained on (domain generalisation to a class
# subset, scripts/eval_dg.sh, still applies: the probe maps its rows by class name).
CLOSED_SET_METHODS="linear_probe"

# method_row METHOD: sets M_TRAINER, M_CONFIG, M_EPOCHS, M_IMAGENET_EPOCHS, and M_OPTS
# (KEY VALUE words), or exits 2 naming the valid methods.
method_row() {
  local row
  if [[ " $CLOSED_SET_METHODS " == *" $1 "* ]]; then
    echo "error: $1 has no classifier for classes it was not trained on: base-to-novel and cross-dataset" \
      "transfer do not apply to it" >&2
    exit 2
  fi
  row=$(awk -v m="$1" '$1 == m' <<< "$PROTOCOL_METHODS")
  if [ -z "$row" ]; then
    echo "error: unknown method '$1'; valid: $(awk 'NF {printf "%s ", $1}' <<< "$PROTOCOL_METHODS")" >&2
    exit 2
  fi
  local opts pair
  read -r _ M_TRAINER M_CONFIG M_EPOCHS M_IMAGENET_EPOCHS _ opts <<< "$row"
  M_CONFIG=${M_CONFIG//@/${BACKBONE:-vit_b32}}
  M_OPTS=()
  if [ -n "$opts" ] && [ "$opts" != - ]; then
    for pair in ${opts//,/ }; do M_OPTS+=("${pair%%=*}" "${pair#*=}"); done
  fi
}

# use_xd_config METHOD: the source run of xd.sh / eval_dg.sh is METHOD's row's XD_CONFIG unless CFG is set.
use_xd_config() {
  local config
  config=$(awk -v m="$1" '$1 == m {print $6}' <<< "$PROTOCOL_METHODS")
  if [ -n "$config" ] && [ "$config" != - ]; then export CFG=${CFG:-$config}; fi
}

# method_of_trainer TRAINER: the method (table row) training TRAINER, or exit 2.
method_of_trainer() {
  local method
  method=$(awk -v t="$1" '$2 == t {print $1; exit}' <<< "$PROTOCOL_METHODS")
  if [ -z "$method" ]; then
    echo "error: unknown trainer '$1'; valid: $(awk 'NF {printf "%s ", $2}' <<< "$PROTOCOL_METHODS")" >&2
    exit 2
  fi
  echo "$method"
}

# run_root METHOD DATASET SHOTS: the run group scripts/<METHOD>.sh writes for DATASET, SHOTS and the overrides.
run_root() {
  PRINT_RUN_ROOT=1 bash "$REPO/scripts/$1.sh" "$2" "$3" -- ${OPTS[@]+"${OPTS[@]}"}
}

# evaluation_root SOURCE: where evaluations of runs trained on SOURCE go. ImageNet keeps CoOp's evaluation/
# (domain generalisation and cross-dataset alike); another source gets xd/<SOURCE>/.
evaluation_root() {
  if [ "$1" = imagenet ]; then echo "$OUTPUT/evaluation"; else echo "$OUTPUT/xd/$1"; fi
}

# dataset_opts DATASET: the DATASET keys of configs/datasets/DATASET.yaml as KEY and VALUE lines (flat yaml).
dataset_opts() {
  awk '/^[^ #]/ {section = $1; sub(/:.*/, "", section)}
       section == "DATASET" && /^  [A-Z_]+:/ {
         key = $1; sub(/:$/, "", key); value = $0; sub(/^[^:]*: */, "", value); gsub(/^"|"$/, "", value)
         print "DATASET." key; print value }' "$REPO/configs/datasets/$1.yaml"
}

# evaluate_run RUN OUT SEED KEY VALUE...: evaluate the finished RUN (its config.yaml and last checkpoint) into OUT,
# the given overrides then the script's own (after --) on top. Scripts that train RUN in the same job (b2n.sh,
# xd.sh) set TRAINS_FIRST=1, so that under RUN_STATUS=1 an untrained RUN is no error but work this job will do.
evaluate_run() {
  local run=$1 out=$2 seed=$3 pointers last epoch
  shift 3
  if [ "${RUN_STATUS:-0}" = 1 ] && [ "${TRAINS_FIRST:-0}" = 1 ] && ! run_finished "$run" "Finish training"; then
    run_job "$out" "=> result"  # the launcher asks, and this job trains RUN before evaluating it
    return 0
  fi
  if [ ! -d "$run" ]; then
    echo "error: no trained run at $run; train it first (scripts/<method>.sh DATASET 16 SEED for a few-shot run)" >&2
    exit 2
  fi
  if ! run_finished "$run" "Finish training"; then
    echo "error: the run $run has not finished training; run its training again to finish it" >&2
    exit 2
  fi
  pointers=("$run"/*/checkpoint)
  last=$( [ -f "${pointers[0]}" ] && head -n 1 "${pointers[0]}" || true)
  epoch=${last##*-}
  [[ "$epoch" =~ ^[0-9]+$ ]] || { echo "error: no model.pth.tar-<epoch> named in $run/*/checkpoint" >&2; exit 2; }
  run_job "$out" "=> result" --seed "$seed" --config-file "$run/config.yaml" \
    --eval-only --model-dir "$run" --load-epoch "$epoch" \
    DATALOADER.PRELOAD_TRAIN False "$@" ${OPTS[@]+"${OPTS[@]}"}
}

# evaluate_transfer ROOT SOURCE TARGET SEED [NAME]: seed SEED of the run group ROOT (trained on SOURCE) on TARGET's
# full test set with TARGET's classes and template, into evaluation_root(SOURCE)/<group>/TARGET/seed<SEED>, the
# group's last folder renamed NAME when given (evaluations with their own overrides). Images of TARGET are read
# from TARGET_DATA (default DATA).
evaluate_transfer() {
  local root=$1 source=$2 target=$3 seed=$4 name=${5:-} opts group
  group=${root#"$OUTPUT/$source/"}
  [ -z "$name" ] || group=${group%/*}/$name
  mapfile -t opts < <(dataset_opts "$target")
  DATA=${TARGET_DATA:-$DATA} evaluate_run "$root/seed$seed" \
    "$(evaluation_root "$source")/$group/$target/seed$seed" "$seed" \
    DATASET.NUM_SHOTS -1 DATASET.SUBSAMPLE_CLASSES all DATASET.TEMPLATE "" "${opts[@]}"
}
