#!/usr/bin/env bash
# Compiles every GPU source as HIP with Debian's hipcc (ROCm 5.2) for gfx1030 (RDNA2,
# 32-wide waves) and gfx90a (CDNA2, 64-wide waves), warnings as errors: the .cu files
# as device code, the host .c files as C against HIP's runtime headers. Nothing is
# linked or run (no AMD GPU here). gfx1100 (RDNA3) needs device libraries newer than
# Debian's, so it stays in CMake's list (RF_HIP=ON) but is not checked here.
#   scripts/hip_check.sh          exit 0 when everything compiles
set -euo pipefail
cd "$(dirname "$0")/.."
HIPCC=${HIPCC:-hipcc}
BITCODE=${ROCM_BITCODE:-/usr/lib/x86_64-linux-gnu/amdgcn/bitcode}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
common=(-DRF_HIP -DRF_HAVE_GPU -D_GNU_SOURCE -Iinclude -Isrc -Wall -Wextra -Werror)
fail=0
for arch in gfx1030 gfx90a; do
    for f in src/backend/gpu/*.cu; do
        if ! "$HIPCC" -x hip --offload-arch="$arch" --rocm-device-lib-path="$BITCODE" -std=c++17 \
            -O2 "${common[@]}" -c "$f" -o "$OUT/$(basename "$f").$arch.o"; then
            echo "hip_check: $f does not compile for $arch" >&2
            fail=1
        fi
    done
done
for f in src/backend/gpu/*.c; do
    if ! gcc -std=c11 -Wshadow -Wstrict-prototypes -D__HIP_PLATFORM_AMD__ "${common[@]}" \
        -c "$f" -o "$OUT/$(basename "$f").o"; then
        echo "hip_check: $f does not compile against HIP's headers" >&2
        fail=1
    fi
done
[ $fail = 0 ] && echo "hip_check: every GPU source compiles as HIP (gfx1030, gfx90a)"
exit $fail
