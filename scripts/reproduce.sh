#!/usr/bin/env bash
# One command for the paper's tables: bash scripts/reproduce.sh
# PROTOCOLS picks the phases, run in this order (default "fewshot dg"):
#  fewshot  every METHOD x DATASET x SHOTS x SEED through scripts/<method>.sh (zero-shot: one run per dataset),
#           finished runs skipped and unfinished ones resumed by those scripts;
#  dg       the 16-shot ImageNet runs evaluated on DG_TARGETS (scripts/eval_dg.sh; zero-shot CLIP through
#           scripts/zeroshot.sh), when imagenet is in DATASETS and 16 in SHOTS;
#  b2n      base-to-novel: scripts/b2n.sh METHOD DATASET SEED for every METHOD x DATASET x SEED (zero-shot: once
#           per dataset);
#  xd       cross-dataset: scripts/xd.sh METHOD XD_SOURCE XD_TARGETS... per METHOD x SEED (it trains the 16-shot
#           source run unless finished); zero-shot CLIP on the source and every target;
# then REPORT/report.md with the dpt-results tables, results.csv (results_b2n.csv), accuracy_vs_shots.png
# (base_vs_new.png).
# Environment (defaults in brackets):
#   PROTOCOLS [fewshot dg]  DATASETS [the 11 datasets]  SHOTS [1 2 4 8 16]  SEEDS [1 2 3]
#   METHODS [zeroshot coop vpt vlp dpt] (also available: cocoop, linear_probe, ivlp, maple, promptsrc, kgcoop)
#   DG_TARGETS [imagenetv2 imagenet_sketch imagenet_a imagenet_r]
#   XD_SOURCE [imagenet]  XD_TARGETS [DATASETS without XD_SOURCE]  DATA [./data]  OUTPUT [./output]
#   REPORT [$OUTPUT/report]  PYTHON [python]  BACKBONE [vit_b32]
#   GPUS      e.g. "0 1 2 3": one job per listed GPU at a time (CUDA_VISIBLE_DEVICES); empty: one job at a time
#   EXTRA_OPTS  yacs overrides given to every job after "--", split at spaces, so write values without spaces:
#             EXTRA_OPTS="INPUT.SIZE (224,224) TRAINER.COOP.PREC amp" (they also name the run folders)
#   DRY_RUN=1 print the job list and exit
#   LAUNCHER  gpus (default): the jobs run here, one per GPU in GPUS; slurm: each phase is one SLURM array job
#             through submitit (needs pip install -e .[cluster]); submitit-local: the same submitit path on this
#             machine. slurm/submitit-local read NODES GPUS_PER_NODE CPUS_PER_TASK MEM_GB SLURM_PARTITION
#             SLURM_TIMEOUT_MIN SLURM_MAX_TIMEOUTS SLURM_ARRAY_PARALLELISM SLURM_EXTRA (README "Cluster (SLURM)")
#   REPORT_ONLY=1 run nothing: the report from whatever has finished, with the jobs still missing
# Each job's output goes to $OUTPUT/reproduce_logs/job<N>.log (gpus) or $OUTPUT/submitit/<job id>_0_log.out
# (slurm, submitit-local); the script exits 1 if any job failed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATASETS=${DATASETS:-"imagenet caltech101 oxford_pets stanford_cars oxford_flowers food101 fgvc_aircraft sun397 dtd eurosat ucf101"}
SHOTS=${SHOTS:-"1 2 4 8 16"}
SEEDS=${SEEDS:-"1 2 3"}
METHODS=${METHODS:-"zeroshot coop vpt vlp dpt"}
DG_TARGETS=${DG_TARGETS-"imagenetv2 imagenet_sketch imagenet_a imagenet_r"}
PROTOCOLS=${PROTOCOLS:-"fewshot dg"}
XD_SOURCE=${XD_SOURCE:-imagenet}
XD_TARGETS=${XD_TARGETS:-$(for d in $DATASETS; do [ "$d" = "$XD_SOURCE" ] || printf '%s ' "$d"; done)}
GPUS=${GPUS:-}
EXTRA_OPTS=${EXTRA_OPTS:-}
export DATA=${DATA:-./data}
export OUTPUT=${OUTPUT:-./output}
export PYTHON=${PYTHON:-python}
REPORT=${REPORT:-$OUTPUT/report}
LOGS=$OUTPUT/reproduce_logs
LAUNCHER=${LAUNCHER:-gpus}

declare -A TRAINER_OF=([coop]=CoOp [vpt]=VPT [vlp]=VLP [dpt]=DPT [cocoop]=CoCoOp [linear_probe]=LinearProbeCLIP [ivlp]=IVLP
  [maple]=MaPLe [promptsrc]=PromptSRC [kgcoop]=KgCoOp)
read -r -a EXTRA <<< "$EXTRA_OPTS"
(( ${#EXTRA[@]} % 2 == 0 )) || { echo "error: EXTRA_OPTS must be KEY VALUE pairs, got: $EXTRA_OPTS" >&2; exit 2; }
for method in $METHODS; do
  [ "$method" = zeroshot ] || [ -n "${TRAINER_OF[$method]-}" ] || {
    echo "error: METHODS: unknown method '$method'; valid: zeroshot coop vpt vlp dpt cocoop linear_probe ivlp maple" \
      "promptsrc kgcoop" >&2; exit 2; }
done
for protocol in $PROTOCOLS; do
  [[ " fewshot dg b2n xd " == *" $protocol "* ]] || {
    echo "error: PROTOCOLS: unknown protocol '$protocol'; valid: fewshot dg b2n xd" >&2; exit 2; }
done
for dataset in $DATASETS $DG_TARGETS $XD_SOURCE $XD_TARGETS; do
  [ -f "$REPO/configs/datasets/$dataset.yaml" ] || {
    echo "error: unknown dataset '$dataset'; valid: $(ls "$REPO/configs/datasets" | sed 's/\.yaml$//' | tr '\n' ' ')" >&2
    exit 2; }
done
for n in $SHOTS $SEEDS; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "error: SHOTS and SEEDS must be numbers, got '$n'" >&2; exit 2; }
done
[[ " gpus slurm submitit-local " == *" $LAUNCHER "* ]] || {
  echo "error: LAUNCHER: unknown launcher '$LAUNCHER'; valid: gpus slurm submitit-local" >&2; exit 2; }
# The launcher's settings, passed to dpt.tools.launch as flags when set.
declare -A LAUNCH_FLAG_OF=([NODES]=--nodes [GPUS_PER_NODE]=--gpus-per-node [CPUS_PER_TASK]=--cpus-per-task
  [MEM_GB]=--mem-gb [SLURM_PARTITION]=--partition [SLURM_TIMEOUT_MIN]=--timeout-min
  [SLURM_MAX_TIMEOUTS]=--max-timeouts [SLURM_ARRAY_PARALLELISM]=--array-parallelism [SLURM_EXTRA]=--sbatch)
for var in NODES GPUS_PER_NODE CPUS_PER_TASK SLURM_TIMEOUT_MIN SLURM_MAX_TIMEOUTS SLURM_ARRAY_PARALLELISM; do
  [[ -z "${!var:-}" || "${!var}" =~ ^[0-9]+$ ]] || { echo "error: $var must be a whole number, got '${!var}'" >&2; exit 2; }
done
LAUNCH_FLAGS=()
for var in "${!LAUNCH_FLAG_OF[@]}"; do
  [ -z "${!var:-}" ] || LAUNCH_FLAGS+=("${LAUNCH_FLAG_OF[$var]}=${!var}")
done

# job WORDS...: one shell-quoted command line, ending with the extra overrides.
job() {
  local line
  line=$(printf '%q ' bash "$@")
  if (( ${#EXTRA[@]} )); then line+="-- $(printf '%q ' "${EXTRA[@]}")"; fi
  printf '%s\n' "${line% }"
}

fewshot_jobs() {
  local method dataset shots seed
  for method in $METHODS; do
    for dataset in $DATASETS; do
      if [ "$method" = zeroshot ]; then job "$REPO/scripts/zeroshot.sh" "$dataset"; continue; fi
      for shots in $SHOTS; do
        for seed in $SEEDS; do job "$REPO/scripts/$method.sh" "$dataset" "$shots" "$seed"; done
      done
    done
  done
}

dg_jobs() {
  [[ " $DATASETS " == *" imagenet "* && " $SHOTS " == *" 16 "* ]] || return 0
  local method target seed
  for method in $METHODS; do
    for target in $DG_TARGETS; do
      if [ "$method" = zeroshot ]; then job "$REPO/scripts/zeroshot.sh" "$target"; continue; fi
      for seed in $SEEDS; do job "$REPO/scripts/eval_dg.sh" "${TRAINER_OF[$method]}" "$target" "$seed"; done
    done
  done
}

b2n_jobs() {
  local method dataset seed
  for method in $METHODS; do
    for dataset in $DATASETS; do
      if [ "$method" = zeroshot ]; then job "$REPO/scripts/b2n.sh" zeroshot "$dataset"; continue; fi
      for seed in $SEEDS; do job "$REPO/scripts/b2n.sh" "$method" "$dataset" "$seed"; done
    done
  done
}

xd_jobs() {
  local method target seed
  for method in $METHODS; do
    if [ "$method" = zeroshot ]; then
      for target in $XD_SOURCE $XD_TARGETS; do job "$REPO/scripts/zeroshot.sh" "$target"; done
      continue
    fi
    for seed in $SEEDS; do
      printf '%s ' env "SEEDS=$seed"
      job "$REPO/scripts/xd.sh" "$method" "$XD_SOURCE" $XD_TARGETS
    done
  done
}

if [ "${DRY_RUN:-0}" = 1 ]; then
  for protocol in $PROTOCOLS; do "${protocol}_jobs"; done
  exit 0
fi

# run_one "<N> <command>": run job N on this xargs slot's GPU, its output in LOGS/job<N>.log.
run_one() {
  local id=${1%% *} cmd=${1#* } gpus
  read -r -a gpus <<< "$GPUS"
  if (( ${#gpus[@]} )); then export CUDA_VISIBLE_DEVICES=${gpus[$DPT_SLOT]}; fi
  echo "[start] job $id${CUDA_VISIBLE_DEVICES:+ (GPU $CUDA_VISIBLE_DEVICES)}: $cmd"
  if eval "$cmd" > "$LOGS/job$id.log" 2>&1; then
    echo "[done] job $id"
  else
    echo "[FAILED] job $id: see $LOGS/job$id.log"
    echo "$id" >> "$LOGS/failed"
  fi
}
export -f run_one
export GPUS LOGS

# run_phase FILE [LAUNCH FLAGS...]: run FILE's numbered command lines with LAUNCHER (gpus: one per GPU slot at a
# time); returns when all ended. Jobs not finished are appended to LOGS/failed.
run_phase() {
  local file=$1 slots
  shift
  [ -s "$file" ] || return 0
  if [ "$LAUNCHER" != gpus ]; then
    "$PYTHON" -m dpt.tools.launch "$file" --launcher "$LAUNCHER" --folder "$OUTPUT/submitit" \
      --failed-list "$LOGS/failed" ${LAUNCH_FLAGS[@]+"${LAUNCH_FLAGS[@]}"} "$@" || (( $? == 1 )) || exit 2
    return 0
  fi
  slots=$(wc -w <<< "$GPUS")
  (( slots > 0 )) || slots=1
  xargs -d '\n' -n 1 -P "$slots" --process-slot-var=DPT_SLOT bash -c 'run_one "$1"' run_one < "$file"
}

mkdir -p "$LOGS"
JOBS=$LOGS
if [ "${REPORT_ONLY:-0}" = 1 ]; then JOBS=$(mktemp -d); trap 'rm -rf "$JOBS"' EXIT; else rm -f "$LOGS/failed"; fi
total=0
JOB_FILES=()
for protocol in $PROTOCOLS; do  # numbered job lists, one per phase
  "${protocol}_jobs" | awk -v o="$total" '{print NR + o, $0}' > "$JOBS/jobs_$protocol.txt"
  total=$(( total + $(wc -l < "$JOBS/jobs_$protocol.txt") ))
  JOB_FILES+=("$JOBS/jobs_$protocol.txt")
done
if [ "${REPORT_ONLY:-0}" = 1 ]; then
  echo "reproduce: report only, $total jobs listed"
  failed="- (REPORT_ONLY=1: nothing was run)"
else
  echo "reproduce: $total jobs (launcher $LAUNCHER, ${GPUS:+GPUs $GPUS, }logs in $LOGS)"
  for protocol in $PROTOCOLS; do  # in order: dg after the ImageNet runs it evaluates have finished
    if [ "$protocol" = dg ]; then run_phase "$JOBS/jobs_dg.txt" --single-task  # evaluation only: one GPU
    else run_phase "$JOBS/jobs_$protocol.txt"; fi
  done
  failed=$( [ -f "$LOGS/failed" ] && wc -l < "$LOGS/failed" || echo 0)
fi

# ---- report
mkdir -p "$REPORT"
read -r -a seed_list <<< "$SEEDS"
tables=$("$PYTHON" -m dpt.tools.results "$OUTPUT" --seeds "${seed_list[@]}" --format markdown 2>&1) \
  || tables="dpt-results failed: $tables"
"$PYTHON" -m dpt.tools.results "$OUTPUT" --seeds "${seed_list[@]}" --format csv > "$REPORT/results.csv" 2>/dev/null \
  || rm -f "$REPORT/results.csv"
"$PYTHON" -m dpt.tools.results "$OUTPUT" --seeds "${seed_list[@]}" --table b2n --format csv \
  > "$REPORT/results_b2n.csv" 2>/dev/null || rm -f "$REPORT/results_b2n.csv"
plot_note=$("$PYTHON" -m dpt.tools.plots "$OUTPUT" --seeds "${seed_list[@]}" --out "$REPORT" 2>&1) || true
missing=$("$PYTHON" -m dpt.tools.jobs "${JOB_FILES[@]}" --ledger "$OUTPUT/submitit" 2>&1) \
  || missing="listing the jobs failed: $missing"
{
  echo "# DPT reproduction report"
  echo
  echo "Generated $(date '+%Y-%m-%d %H:%M') by \`scripts/reproduce.sh\` from \`$OUTPUT\`."
  echo
  echo "- datasets: $DATASETS"
  echo "- shots: $SHOTS; seeds: $SEEDS; methods: $METHODS"
  echo "- protocols: $PROTOCOLS"
  echo "- domain generalisation targets: ${DG_TARGETS:-none}"
  echo "- extra overrides: ${EXTRA_OPTS:-none}"
  echo "- jobs: $total, failed: $failed (logs: \`$LOGS\`, launcher $LAUNCHER)"
  echo
  echo "## Jobs"
  echo
  echo "$missing"
  echo
  echo "## Results"
  echo
  echo "$tables"
  echo
  echo "## Accuracy vs shots"
  echo
  if [ -f "$REPORT/accuracy_vs_shots.png" ]; then echo "![accuracy vs shots](accuracy_vs_shots.png)"
  else echo "No plot: $plot_note"; fi
  if [ -f "$REPORT/base_vs_new.png" ]; then
    echo
    echo "## Base vs new accuracy"
    echo
    echo "![base vs new](base_vs_new.png)"
  fi
} > "$REPORT/report.md.tmp"
mv "$REPORT/report.md.tmp" "$REPORT/report.md"
echo "reproduce: wrote $REPORT/report.md"
if [ "${REPORT_ONLY:-0}" = 1 ]; then echo "$missing"; exit 0; fi
(( failed == 0 )) || { echo "reproduce: $failed job(s) failed, see $LOGS/failed" >&2; exit 1; }
