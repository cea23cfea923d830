#!/usr/bin/env bash
# One prepared device check of the GPU path (issue 14), under 8 minutes on one GPU:
#   bash benchmarks/gpu_check.sh                       # the full check on the first CUDA GPU
#   bash benchmarks/gpu_check.sh --device cpu --tiny   # the same checks on CPU in seconds (part of the tests)
# Options: --out DIR (table.md, results.json, logs/; default $OUT/gpu_check when $OUT is set), --budget SECONDS
# (default 480), --keep (keep the work folder). Prints one markdown table; exit 1 when a check fails, 2 on bad
# arguments. Environment: PYTHON (default python). Details: benchmarks/README.md.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" "$REPO/benchmarks/gpu_check.py" "$@"
