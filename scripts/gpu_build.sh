#!/usr/bin/env bash
# Builds the CUDA backend here (nvcc, static CUDA runtime) and assembles build-gpu/, a
# folder that runs on the GPU machine, which has the CUDA driver and toolkit (cuBLAS)
# but none of our -dev libraries and no package registry:
#   build-gpu-obj/   the CMake build (objects, incremental; never carried)
#   build-gpu/       the CLI, the GPU-labelled test binaries and their CTest files, and
#                    lib/ with every shared library ldd shows that is neither glibc's
#                    nor CUDA's (found through rpath $ORIGIN/lib, $ORIGIN/../lib, ...)
# Then, on the GPU machine (run tool, carry ["build-gpu"]): make test-gpu
# Variables: JOBS (default 2), CMAKE_ARGS, GPU_OBJ and GPU_OUT (the two folders).
set -euo pipefail
cd "$(dirname "$0")/.."
OBJ=${GPU_OBJ:-build-gpu-obj}
OUT=${GPU_OUT:-build-gpu}
JOBS=${JOBS:-2}
RPATH='$ORIGIN/lib;$ORIGIN/../lib;$ORIGIN/../../lib;/usr/local/cuda/lib64'

cmake -S . -B "$OBJ" -DRF_CUDA=ON -DRF_WERROR=ON -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_BUILD_RPATH="$RPATH" ${CMAKE_ARGS:-} >/dev/null

# The executables the GPU tests run, plus the CLI and the kernel benchmark: only
# these are built (their target names are their file names). Read from the CTest
# files, which name an executable before it is built.
gpu_tests() {
    find "$OBJ" -name CTestTestfile.cmake -exec cat {} + | python3 -c '
import re, sys
text = sys.stdin.read()
exe = dict(re.findall(r"add_test\(\[=\[(.+?)\]=\] \"([^\"]+)\"", text))
for name, props in re.findall(r"set_tests_properties\(\[=\[(.+?)\]=\] PROPERTIES(.*)", text):
    if re.search(r"LABELS \"([^\"]*;)?gpu[;\"]", props) and name in exe: print(exe[name])'
}
mapfile -t exes < <(gpu_tests)
exes+=("$PWD/$OBJ/rocmforge" "$PWD/$OBJ/bench_ops")
targets=(rocmforge_cli bench_ops)
for e in "${exes[@]}"; do
    n=$(basename "$e")
    [ "$n" = rocmforge ] || [ "$n" = bench_ops ] || targets+=("$n")
done
cmake --build "$OBJ" -j"$JOBS" --target $(printf '%s\n' "${targets[@]}" | sort -u)

rm -rf "$OUT"
mkdir -p "$OUT/lib"
for e in $(printf '%s\n' "${exes[@]}" | sort -u); do
    [ -x "$e" ] || continue
    rel=${e#"$PWD/$OBJ/"}
    mkdir -p "$OUT/$(dirname "$rel")"
    cp "$e" "$OUT/$rel"
    strip --strip-unneeded "$OUT/$rel"
    ldd "$e" | awk '/=> \// {print $3}' | while read -r lib; do
        case "$(basename "$lib")" in
        libc.so* | libm.so* | libpthread.so* | libdl.so* | librt.so* | ld-linux* | \
            libstdc++.so* | libgcc_s.so* | libcuda.so* | libcublas* | libcudart*) ;;
        *) cp -Ln "$lib" "$OUT/lib/" 2>/dev/null || true ;;
        esac
    done
done
# CTest files of every directory, pointing at the carried folder.
(cd "$OBJ" && find . -name CTestTestfile.cmake) | while read -r f; do
    mkdir -p "$OUT/$(dirname "$f")"
    sed "s#$PWD/$OBJ#$PWD/$OUT#g" "$OBJ/$f" >"$OUT/$f"
done
echo "$PWD" >"$OUT/SOURCE_DIR"
du -sh "$OUT"
