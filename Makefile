# Entry points. The build itself is CMake; setup is scripts/setup.sh.
#   make run     set up, build, generate text with the default model
#   make test    set up, build, run the whole test suite (ctest; the GPU tests, label gpu, run on a GPU machine: make test-gpu)
# Variables: BUILD JOBS MODELS MODEL PROMPT N THREADS FUZZ_TIME CMAKE_ARGS (see below).

BUILD     ?= build
JOBS      ?= $(shell nproc)
MODELS    ?= $(or $(ROCMFORGE_MODELS),$(HOME)/.cache/rocmforge/models)
MODEL     ?= $(MODELS)/SmolLM2-135M-Instruct.Q4_1.gguf
PROMPT    ?= Give three tips for staying healthy.
N         ?= 64
THREADS   ?= $(JOBS)
SAN_BUILD ?= build-sanitize
SAN_CC    ?=
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME ?= 600
CTEST_TIMEOUT ?= 900
CMAKE_ARGS ?=

SETUP := bash scripts/setup.sh
MAKEFLAGS += --no-print-directory
export ROCMFORGE_MODELS := $(MODELS)

.PHONY: all run build test test-sanitize fuzz-ci fuzz bench-cpu models setup clean distclean format tidy help gpu-build test-gpu hip-check

all: build

help:
	@sed -n '1,/^$$/s/^# \{0,1\}//p' Makefile
	@echo "targets: run build test test-sanitize fuzz-ci fuzz bench-cpu models setup clean distclean format tidy gpu-build test-gpu hip-check"

run:
	@$(SETUP) deps models
	@$(MAKE) --no-print-directory build
	./$(BUILD)/rocmforge run -m "$(MODEL)" --chat -p "$(PROMPT)" -n $(N) --temp 0

build:
	@$(SETUP) deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)
	cmake --build $(BUILD) -j$(JOBS)

test:
	@$(SETUP) all
	@$(MAKE) --no-print-directory build
	ctest --test-dir $(BUILD) -LE gpu --output-on-failure -j$(JOBS) --timeout $(CTEST_TIMEOUT)

# The whole suite (unit tests, and the end-to-end tests running the sanitized binary)
# under AddressSanitizer + UndefinedBehaviorSanitizer, asserts on;
# clang unless SAN_CC says otherwise (chosen after deps, which installs clang).
test-sanitize:
	@$(SETUP) all
	CC=$(or $(SAN_CC),$$(command -v clang >/dev/null && echo clang || echo gcc)) \
		cmake -S . -B $(SAN_BUILD) -DRF_SANITIZE=ON -DRF_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug \
		-DCMAKE_C_FLAGS_DEBUG="-O1 -g" $(CMAKE_ARGS)
	cmake --build $(SAN_BUILD) -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir $(SAN_BUILD) --output-on-failure -j$(JOBS) --timeout $(CTEST_TIMEOUT)

# Each fuzz target for one minute from its committed seeds (what CI runs).
fuzz-ci:
	@$(SETUP) deps
	CMAKE_ARGS="$(CMAKE_ARGS)" bash scripts/fuzz.sh -b $(FUZZ_BUILD) -t 60

# Longer local fuzzing; the scratch corpus in $(FUZZ_BUILD)/corpus/ grows across runs.
fuzz:
	@$(SETUP) deps
	CMAKE_ARGS="$(CMAKE_ARGS)" bash scripts/fuzz.sh -b $(FUZZ_BUILD) -t $(FUZZ_TIME) -k

# rocmforge vs llama-cpp-python on the same model and thread count (.venv-bench).
bench-cpu: build
	@$(SETUP) models bench
	.venv-bench/bin/python bench/cpu_vs_llamacpp.py --bin ./$(BUILD)/rocmforge -m "$(MODEL)" -t $(THREADS)

models:
	@$(SETUP) models

# GPU: build here (nvcc) into build-gpu/, a folder that runs on the GPU machine ...
# The GPU sources compiled as HIP for gfx1030 and gfx90a, warnings as errors (CI).
hip-check:
	@$(SETUP) hip
	bash scripts/hip_check.sh

gpu-build:
	bash scripts/gpu_build.sh

# ... and there, from the carried folder: the gpu-labelled tests (the folder's CTest
# files name this checkout's path, which is linked to the copy when it differs).
test-gpu:
	@test -f build-gpu/SOURCE_DIR || { echo "build-gpu/ missing: run make gpu-build first" >&2; exit 1; }
	@src=$$(cat build-gpu/SOURCE_DIR); if [ ! -e "$$src" ]; then mkdir -p "$$(dirname "$$src")" && ln -s "$$PWD" "$$src"; fi
	ctest --test-dir build-gpu -L gpu --output-on-failure --timeout $(CTEST_TIMEOUT)

setup:
	@$(SETUP) all

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(FUZZ_BUILD)

distclean: clean
	rm -rf .venv .venv-bench

FORMAT_FILES = $(shell find src include tests examples fuzz -name '*.[ch]' 2>/dev/null)

format:
	@command -v clang-format >/dev/null || $(SETUP) tools
	clang-format -i $(FORMAT_FILES)

tidy: build
	@command -v clang-tidy >/dev/null || $(SETUP) tools
	clang-tidy -p $(BUILD) --quiet $(filter %.c,$(FORMAT_FILES))
