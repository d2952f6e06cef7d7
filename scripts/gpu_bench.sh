#!/usr/bin/env bash
# On the GPU machine, from a carried build-gpu/ (scripts/gpu_build.sh): makes each
# benchmark model with tools/make_test_model.py --big (random weights, the exact
# shapes and tensor types of the real files), runs `rocmforge bench -p 512 -n 128`
# on it, and deletes it (the disk holds a few at a time). The first Q4_0 case also
# times load to first token with the file in the page cache.
#   scripts/gpu_bench.sh [SHAPE:TYPE ...]   default: the reference table of issue 3
# Variables: BUILD (build-gpu), MODELS_DIR (/tmp/rf-bench-models), REPS (3), PYTHON.
# gguf-py must be importable (PYTHONPATH; the GPU machine has numpy and PyYAML).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build-gpu}
M=${MODELS_DIR:-/tmp/rf-bench-models}
PY=${PYTHON:-python3}
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(llama2-7b:f16 llama2-7b:q4_0 llama2-7b:q4_1 llama2-7b:q5_0
    llama2-7b:q8_0 llama2-7b:q4_k_m llama3-8b:q4_0 llama3-8b:q8_0)
timed_load=0
for c in "${cases[@]}"; do
    shape=${c%%:*} type=${c##*:}
    t0=$(date +%s%N)
    f=$("$PY" tools/make_test_model.py "$M" --big "$shape" --big-type "$type" 2>/dev/null)
    echo "made $f in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    if [ "$type" = q4_0 ] && [ $timed_load = 0 ]; then
        cat "$f" >/dev/null
        t0=$(date +%s%N)
        "$B/rocmforge" run -m "$f" -p "hello" -n 1 >/dev/null 2>&1 || true
        echo "load to first token (page cache): $(( ($(date +%s%N) - t0) / 1000000 )) ms"
        timed_load=1
    fi
    "$B/rocmforge" bench -m "$f" -p 512 -n 128 -r "${REPS:-3}" | grep -E "^\| (llama|model)|^of copy"
    rm -f "$f"
done
