#!/usr/bin/env bash
# Set up a Debian 12 machine for building and testing rocmforge.
#
#   scripts/setup.sh [STEP ...]      STEP: deps venv models all (default: all)
#                                          tools (clang-format, clang-tidy; not in all)
#                                          bench (.venv-bench with llama-cpp-python; not in all)
#                                          hip (Debian's hipcc for the HIP compile check; not in all)
#                                          models-NAME (one model, also those on request:
#                                          scripts/fetch_models.py --list names them)
#
# Every step is idempotent and returns quickly when there is nothing to do:
#   deps    apt packages, checked with dpkg-query; apt-get runs only for missing ones
#   venv    .venv with tests/requirements.txt; reinstalled when the file's hash changes
#   models  default and test models into ${ROCMFORGE_MODELS:-~/.cache/rocmforge/models}
#   bench   .venv-bench with llama-cpp-python built from source (~10 min on 2 cores)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1

APT_PACKAGES=(
    build-essential cmake pkg-config
    libmicrohttpd-dev libcjson-dev libpcre2-dev libcmocka-dev
    python3 python3-venv python3-pip ca-certificates
    clang libclang-rt-14-dev
    unzip
)
TOOLS_PACKAGES=(clang-format clang-tidy)
HIP_PACKAGES=(hipcc) # Debian's ROCm 5.2 HIP compiler, for the HIP compile check
LLAMA_CPP_PYTHON=llama-cpp-python==0.3.36

# System python: the venvs must not depend on whatever python3 is first on PATH.
PYTHON=${RF_PYTHON:-/usr/bin/python3}
[[ -x $PYTHON ]] || PYTHON=python3

log() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Prints the packages of "$@" that dpkg does not report as installed.
missing_packages() {
    local p
    for p in "$@"; do
        if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) != "install ok installed" ]]; then
            printf '%s\n' "$p"
        fi
    done
}

apt_install() {
    local missing
    command -v dpkg-query >/dev/null || die "dpkg-query not found: this script supports Debian/Ubuntu"
    mapfile -t missing < <(missing_packages "$@")
    if ((${#missing[@]} == 0)); then
        log "deps: all $# packages present"
        return
    fi
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "deps: missing ${missing[*]}; run as root to install them"
        sudo=(sudo --preserve-env=DEBIAN_FRONTEND)
    fi
    log "deps: installing ${missing[*]}"
    local out
    out=$(mktemp)
    if ! { "${sudo[@]}" apt-get update -q && "${sudo[@]}" apt-get install -y -q "${missing[@]}"; } \
        >"$out" 2>&1; then
        tail -n 20 "$out" >&2
        rm -f "$out"
        die "deps: apt-get could not install ${missing[*]} (output above)"
    fi
    rm -f "$out"
}

sha256_of() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

# make_venv DIR STAMP_KEY INSTALL_CMD...: (re)creates DIR unless DIR/.rf-stamp
# holds STAMP_KEY, then runs INSTALL_CMD with DIR/bin/pip.
make_venv() {
    local dir=$1 key=$2
    shift 2
    if [[ -x $dir/bin/python && -f $dir/.rf-stamp && $(<"$dir/.rf-stamp") == "$key" ]]; then
        log "$(basename "$dir"): up to date"
        return
    fi
    "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
        || die "$(basename "$dir"): $PYTHON lacks venv/ensurepip; run \`scripts/setup.sh deps\`"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir" || die "$(basename "$dir"): python -m venv failed"
    "$@" || die "$(basename "$dir"): pip install failed (see above)"
    printf '%s' "$key" >"$dir/.rf-stamp"
}

step_deps() { apt_install "${APT_PACKAGES[@]}"; }

step_tools() { apt_install "${TOOLS_PACKAGES[@]}"; }

step_hip() { apt_install "${HIP_PACKAGES[@]}"; }

step_venv() {
    local req=$ROOT/tests/requirements.txt
    local key
    key=$(sha256_of "$req")-$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')
    make_venv "$ROOT/.venv" "$key" \
        "$ROOT/.venv/bin/pip" install -q --progress-bar off -r "$req"
}

step_models() {
    "$PYTHON" "$ROOT/scripts/fetch_models.py" "$@" || exit 1
}

step_bench() {
    local key
    key=$LLAMA_CPP_PYTHON-$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')
    log ".venv-bench: building $LLAMA_CPP_PYTHON from source if needed (about 10 min on 2 cores)"
    make_venv "$ROOT/.venv-bench" "$key" \
        env CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        "$ROOT/.venv-bench/bin/pip" install -q --progress-bar off \
        "$LLAMA_CPP_PYTHON"
}

run_step() {
    local t0=$EPOCHREALTIME
    "step_$1" "${@:2}"
    log "$1 done in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')s"
}

main() {
    (($# > 0)) || set -- all
    local s
    for s in "$@"; do
        case $s in
        all) run_step deps; run_step venv; run_step models ;;
        deps | venv | models | tools | bench | hip) run_step "$s" ;;
        models-?*) run_step models "${s#models-}" ;;
        -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; return ;;
        *) die "unknown step '$s' (steps: deps venv models all tools bench hip models-NAME)" ;;
        esac
    done
}

main "$@"
