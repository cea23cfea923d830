# Shared by the method scripts: argument parsing, the finished/unfinished check and the job runner.
# Environment: DATA (dataset root, default ./data), OUTPUT (output root, default ./output), PYTHON (default python),
# TAG (run-folder suffix; default: derived from the overrides after --), RUN_STATUS=1 (print each run's state
# and folder instead of running it). Run-group folders are named by dpt/launch/run_names.py (run_group below).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python}
DATA=${DATA:-./data}
OUTPUT=${OUTPUT:-./output}

usage() {
  echo "usage: bash $0 DATASET SHOTS [SEEDS...] [-- KEY VALUE ...]   (DATASET: a name in configs/datasets/)" >&2
  exit 2
}

# parse_args DATASET SHOTS [SEEDS...] [-- KEY VALUE ...] -> DATASET SHOTS SEEDS[] OPTS[], SCRIPT_OPTS[] empty
parse_args() {
  [ $# -ge 2 ] || usage
  DATASET=$1
  SHOTS=$2
  shift 2
  SEEDS=()
  OPTS=()
  SCRIPT_OPTS=()
  while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then shift; OPTS=("$@"); break; fi
    SEEDS+=("$1")
    shift
  done
  [ ${#SEEDS[@]} -gt 0 ] || SEEDS=(1 2 3)
  check_dataset "$DATASET"
  [[ "$SHOTS" =~ ^[0-9]+$ ]] || { echo "error: SHOTS must be a number of images per class, got '$SHOTS'" >&2; exit 2; }
  (( ${#OPTS[@]} % 2 == 0 )) || { echo "error: overrides after -- must be KEY VALUE pairs: ${OPTS[*]}" >&2; exit 2; }
}

# run_group PARENT CONFIG PART...: PARENT/<variant><suffix>, the run-group folder (dpt/launch/run_names.py, the one
# rule): each PART is LABEL=KEY[:DEFAULT] (KEY's value as the run resolves it: OPTS, then SCRIPT_OPTS, then the
# yaml CONFIG), LABEL?KEY (the variant is LABEL when KEY is set) or literal text; the suffix names the other
# overrides after -- ("-- OPTIM.LR 0.01" -> "_OPTIM.LR-0.01"; paths and long values shortened with a digest), or
# is "_$TAG". A folder named by the earlier rule is reused when it exists.
run_group() {
  local parent=$1 config=$2 sets=() i
  shift 2
  for ((i = 0; i < ${#SCRIPT_OPTS[@]}; i += 2)); do sets+=(--set "${SCRIPT_OPTS[i]}" "${SCRIPT_OPTS[i+1]}"); done
  PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m dpt.launch.run_names "$parent" "$@" --config "$config" \
    ${sets[@]+"${sets[@]}"} --tag "${TAG:-}" -- ${OPTS[@]+"${OPTS[@]}"}
}

check_dataset() {
  if [ ! -f "$REPO/configs/datasets/$1.yaml" ]; then
    echo "error: unknown dataset '$1'; valid: $(ls "$REPO/configs/datasets" | sed 's/\.yaml$//' | tr '\n' ' ')" >&2
    exit 2
  fi
}

# A run is finished when one of its logs reports a test accuracy after its end signal.
run_finished() {
  local dir=$1 signal=$2 log
  for log in "$dir"/log.txt*; do
    [ -f "$log" ] || continue
    if awk -v s="$signal" '$0 == s {on = 1} on && /^\* accuracy: / {found = 1} END {exit !found}' "$log"; then
      return 0
    fi
  done
  return 1
}

# run_job DIR SIGNAL ARGS...: skip a finished run, resume an unfinished one (the engine resumes from DIR).
# With RUN_STATUS=1 it runs nothing and prints "finished DIR", "unfinished DIR" or "new DIR" (the launchers ask).
run_job() {
  local dir=$1 signal=$2
  shift 2
  if [ "${RUN_STATUS:-0}" = 1 ]; then
    if run_finished "$dir" "$signal"; then echo "finished $dir"
    elif [ -d "$dir" ]; then echo "unfinished $dir"
    else echo "new $dir"; fi
    return 0
  fi
  if run_finished "$dir" "$signal"; then
    echo "Skip: the results exist at $dir (finished run)"
    return 0
  fi
  if [ -d "$dir" ]; then
    echo "Resume: unfinished run at $dir"
  fi
  "$PYTHON" "$REPO/train.py" --root "$DATA" --output-dir "$dir" "$@"
}

# train_seeds TRAINER CFG RUN_ROOT: one run per seed under RUN_ROOT/seed<S>, with SCRIPT_OPTS then OPTS.
# PRINT_RUN_ROOT=1 prints RUN_ROOT and runs nothing (scripts/xd.sh finds a method's runs that way).
train_seeds() {
  local trainer=$1 cfg=$2 run_root=$3
  if [ "${PRINT_RUN_ROOT:-0}" = 1 ]; then echo "$run_root"; return 0; fi
  local seed
  for seed in "${SEEDS[@]}"; do
    run_job "$run_root/seed$seed" "Finish training" \
      --seed "$seed" --trainer "$trainer" \
      --dataset-config-file "$REPO/configs/datasets/$DATASET.yaml" \
      --config-file "$REPO/configs/trainers/$trainer/$cfg.yaml" \
      ${SCRIPT_OPTS[@]+"${SCRIPT_OPTS[@]}"} DATASET.NUM_SHOTS "$SHOTS" ${OPTS[@]+"${OPTS[@]}"}
  done
}

# train_official_config TRAINER CFG KEY VALUE...: the scripts of IVLP, MaPLe, PromptSRC and KgCoOp. CFG names a
# yaml of configs/trainers/TRAINER/ (else exit 2 listing them); the runs go to
# OUTPUT/DATASET/TRAINER/<CFG>_<SHOTS>shots/ctxinit<suffix>/seed<S> (every official config initialises the context
# from "a photo of a"), with the given overrides before those after --.
train_official_config() {
  local trainer=$1 cfg=$2 yaml="$REPO/configs/trainers/$1/$2.yaml"
  shift 2
  if [ ! -f "$yaml" ]; then
    echo "error: no $trainer config $yaml; valid: $(ls "$REPO/configs/trainers/$trainer" | sed 's/\.yaml$//' | tr '\n' ' ')" >&2
    exit 2
  fi
  SCRIPT_OPTS=("$@")
  train_seeds "$trainer" "$cfg" "$(run_group "$OUTPUT/$DATASET/$trainer/${cfg}_${SHOTS}shots" "$yaml" ctxinit)"
}
