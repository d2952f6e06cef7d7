#!/usr/bin/env bash
# Build the libFuzzer targets with clang and run each for a bounded time.
#
#   scripts/fuzz.sh [-b BUILD_DIR] [-t SECONDS] [-k] [TARGET ...]
#
#   -b  build dir (default: build-fuzz)
#   -t  seconds per target (default: 60)
#   -k  keep the scratch corpus between runs (long local fuzzing); without -k it
#       starts afresh from the seeds every time (CI)
#   TARGET  default: every fuzz/fuzz_*.c
#   env CMAKE_ARGS: extra arguments for the cmake configure step
#
# Seeds come from the committed fuzz/corpus/<target>/ (or fuzz/corpus/<target
# without the fuzz_ prefix>/), copied to
# BUILD_DIR/corpus/<target>/ so the committed corpus is never modified.
# fuzz/<target>.dict and fuzz/<target>.options (libFuzzer flags) are used when
# present. Crashes are written to BUILD_DIR/artifacts/; the exit status is
# non-zero when any target failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=build-fuzz
SECS=60
KEEP=0
while getopts "b:t:k" opt; do
    case $opt in
    b) BUILD=$OPTARG ;;
    t) SECS=$OPTARG ;;
    k) KEEP=1 ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD

log() { printf 'fuzz: %s\n' "$*"; }
die() { printf 'fuzz: error: %s\n' "$*" >&2; exit 1; }

command -v clang >/dev/null || die "clang not found; run \`scripts/setup.sh deps\`"

targets=("$@")
if ((${#targets[@]} == 0)); then
    for src in "$ROOT"/fuzz/fuzz_*.c; do
        [[ -e $src ]] && targets+=("$(basename "$src" .c)")
    done
fi
((${#targets[@]} > 0)) || die "no fuzz targets (fuzz/fuzz_*.c)"

# Asserts stay on (Debug) so that an "impossible" state reached from input is found.
CC=clang cmake -S "$ROOT" -B "$BUILD" -DRF_FUZZ=ON -DRF_CUDA=OFF -DRF_BUILD_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" ${CMAKE_ARGS:-} >/dev/null \
    || die "cmake configure of $BUILD failed"
cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}" || die "build of ${targets[*]} failed"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$BUILD/artifacts"
failed=()
for t in "${targets[@]}"; do
    bin=$(find "$BUILD" -type f -name "$t" -perm -u+x -print -quit)
    [[ -n $bin ]] || die "built target $t not found under $BUILD"
    # Seeds: fuzz/corpus/<target>/, or fuzz/corpus/<target without fuzz_>/.
    seeds=$ROOT/fuzz/corpus/$t
    [[ -d $seeds ]] || seeds=$ROOT/fuzz/corpus/${t#fuzz_}
    scratch=$BUILD/corpus/$t
    ((KEEP)) || rm -rf "$scratch"
    mkdir -p "$scratch"
    if [[ -d $seeds ]]; then
        cp -R --no-clobber "$seeds/." "$scratch/"
    else
        log "$t: warning: no seed corpus at fuzz/corpus/$t/ or fuzz/corpus/${t#fuzz_}/"
    fi
    args=(-max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="$BUILD/artifacts/$t-")
    [[ -f $ROOT/fuzz/$t.dict ]] && args+=(-dict="$ROOT/fuzz/$t.dict")
    # fuzz/<target>.options: "name = value" lines (OSS-Fuzz style, [section] lines
    # ignored) become -name=value, e.g. "max_len = 65536". Without it, libFuzzer's
    # max_len is the largest seed, at least 4096.
    if [[ -f $ROOT/fuzz/$t.options ]]; then
        while IFS='=' read -r k v; do
            k=${k//[[:space:]]/} v=${v//[[:space:]]/}
            [[ -n $k && -n $v && $k != \#* && $k != \[* ]] && args+=("-$k=$v")
        done <"$ROOT/fuzz/$t.options"
    fi
    log "$t: ${SECS}s from $(find "$scratch" -type f | wc -l) inputs"
    if "$bin" "${args[@]}" "$scratch" >"$BUILD/$t.log" 2>&1; then
        log "$t: ok, $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$BUILD/$t.log" \
            | grep -o '[0-9]*$' || echo '?') runs, corpus $(find "$scratch" -type f | wc -l)"
    else
        tail -n 40 "$BUILD/$t.log" >&2
        log "$t: FAILED (log: $BUILD/$t.log, artifacts: $BUILD/artifacts/)"
        failed+=("$t")
    fi
done
((${#failed[@]} == 0)) || die "failing targets: ${failed[*]}"
log "all targets passed: ${targets[*]}"
