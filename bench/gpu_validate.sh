#!/usr/bin/env bash
# One lease on the GPU machine, in three calls on the same warm machine (the real model
# does not fit one call's 64 MiB transfer): .dev1/ (build-gpu.tar.xz from
# `make gpu-build`, SmolLM2's first 32 MB, split -b 32000000: s3.aa), .dev2/ (s3.ab,
# s3.ad), .dev3/ (s3.ac), .pylib/ (gguf-py) and .whl/ (requests, pytest) carried.
#   bench/gpu_validate.sh perf    7B benchmarks (bench, serve_load)       carry .dev1
#   bench/gpu_validate.sh stash   keeps the pieces carried                 carry .dev2
#   bench/gpu_validate.sh tests   the gpu-labelled suite, synthetic models carry .dev3
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
if [ -d .whl ] && ! python3 -c 'import requests, pytest' 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/.pylib
[ -f .dev1/build-gpu.tar.xz ] && { rm -rf build-gpu; tar xJf .dev1/build-gpu.tar.xz; }
# Carried folders do not outlast the call: keep the model's pieces outside the checkout.
mkdir -p /root/rf-parts
for f in .dev*/s3.*; do [ -f "$f" ] && cp "$f" /root/rf-parts/; done
ls -l /root/rf-parts
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
case "${1:-}" in
perf)
    REPS=2 scripts/gpu_bench.sh llama2-7b:q4_0 llama2-7b:q8_0
    f=$(python3 tools/make_test_model.py /tmp/rf-serve --big llama2-7b --big-type q4_0 2>/dev/null)
    python3 bench/serve_load.py --spawn --bin build-gpu/rocmforge -m "$f" --parallel 64 \
        --ctx-size 512 --clients 1,8,32,64 --requests 2 --max-tokens 128 --prompt-words 21
    ;;
tests)
    m=$HOME/.cache/rocmforge/models
    mkdir -p "$m"
    cat /root/rf-parts/s3.a[a-d] >"$m/SmolLM2-135M-Instruct.Q4_1.gguf"
    sha256sum "$m/SmolLM2-135M-Instruct.Q4_1.gguf"
    make test-gpu CTEST_TIMEOUT=400
    RF_BIN=$PWD/build-gpu/rocmforge RF_FIXTURES=$PWD/tests/fixtures RF_MODELS=$m \
        python3 -m pytest -q -p no:cacheprovider tests/py/test_synthetic.py 2>&1 | tail -15
    ;;
stash) ;;
*) echo "usage: $0 perf|stash|tests" >&2; exit 2 ;;
esac
