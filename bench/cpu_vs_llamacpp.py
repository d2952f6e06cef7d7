#!/usr/bin/env python3
"""rocmforge vs llama.cpp (through llama-cpp-python) on the CPU, same model, same threads.

    cpu_vs_llamacpp.py -m MODEL [-t THREADS] [-r REPS] [-p 512] [-n 128]
                       [--bin build/rocmforge] [--python PATH] [--json FILE]

Measures, for both engines:
  ppP  prompt processing: P random tokens in one batch from an empty cache
  tgN  generation: N single-token steps from an empty cache
and prints tokens/s (mean +- stddev and median over the reps), the ratio
rocmforge / llama.cpp, and the weight bandwidth of generation in GB/s
(bytes of all weight tensors x tokens/s: each decode step reads every weight once).

rocmforge is measured by its own `rocmforge bench`, whose markdown table
(columns `test` and `t/s`) is parsed here. llama.cpp is measured in-process
through llama_cpp.Llama.eval.

llama-cpp-python is not part of the test venv. Either
  make bench-cpu                      (creates .venv-bench with it and runs this script)
or install it into some interpreter (built from source, about 10 minutes on 2 cores):
  python3 -m venv .venv-bench && .venv-bench/bin/pip install llama-cpp-python==0.3.36
and run this script with that interpreter, or pass --python PATH to run only the
llama.cpp part in that interpreter.
"""
import argparse
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
from fetch_models import FetchError, gguf_summary  # noqa: E402

INSTALL_HINT = ("llama-cpp-python is not importable in %s.\n"
                "  install it: %s -m pip install llama-cpp-python==0.3.36  (builds from source, ~10 min)\n"
                "  or run `make bench-cpu`, or pass --python PATH of an interpreter that has it,\n"
                "  or --skip-llama to measure rocmforge alone.")


def stats(values):
    """Summary of per-rep tokens/s."""
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "median": statistics.median(values),
        "reps": [round(v, 3) for v in values],
    }


# ------------------------------------------------------------------ llama.cpp
def bench_llama(model, threads, n_prompt, n_gen, reps, seed=42):
    import llama_cpp
    from llama_cpp import Llama

    llm = Llama(model_path=model, n_threads=threads, n_threads_batch=threads,
                n_ctx=max(1024, n_prompt + n_gen), n_batch=n_prompt, n_ubatch=n_prompt,
                seed=seed, verbose=False)
    rng = random.Random(seed)
    n_vocab = llm.n_vocab()
    prompt = [rng.randrange(n_vocab) for _ in range(n_prompt)]
    gen = [rng.randrange(n_vocab) for _ in range(n_gen)]

    def run_pp():
        llm.reset()  # eval() drops the cache from n_tokens on: this empties it
        t0 = time.perf_counter()
        llm.eval(prompt)
        return n_prompt / (time.perf_counter() - t0)

    def run_tg():
        llm.reset()
        t0 = time.perf_counter()
        for tok in gen:
            llm.eval([tok])
        return n_gen / (time.perf_counter() - t0)

    run_pp()  # warm-up: page in the weights, spin up the threads
    run_tg()
    res = {"pp%d" % n_prompt: stats([run_pp() for _ in range(reps)]),
           "tg%d" % n_gen: stats([run_tg() for _ in range(reps)])}
    return {"engine": "llama.cpp", "version": "llama-cpp-python " + llama_cpp.__version__,
            "results": res}


def bench_llama_subprocess(python, args):
    cmd = [python, os.path.abspath(__file__), "--llama-only", "-m", args.model,
           "-t", str(args.threads), "-r", str(args.reps), "-p", str(args.n_prompt),
           "-n", str(args.n_gen)]
    res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if res.returncode != 0:
        raise RuntimeError("llama.cpp part failed in %s (exit %d)" % (python, res.returncode))
    return json.loads(res.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ rocmforge
TEST_RE = re.compile(r"^(pp|tg)\d+$")
NUM_RE = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def parse_bench_table(text):
    """Rows of the first markdown table with a `test` column: {test: stats}.
    A t/s cell may read `123.4 ± 5.6`, `123.4 +- 5.6` or `123.4`."""
    header, out = None, {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
            continue  # separator row
        lower = [c.lower() for c in cells]
        if header is None and "test" in lower:
            header = lower
            continue
        if header is None or len(cells) != len(header):
            continue
        test = cells[header.index("test")]
        if not TEST_RE.match(test):
            continue
        ts_col = next((i for i, h in enumerate(header) if h in ("t/s", "tok/s", "tokens/s")),
                      next((i for i, h in enumerate(header) if "t/s" in h), len(cells) - 1))
        nums = [float(x) for x in NUM_RE.findall(cells[ts_col])]
        if not nums:
            continue
        out[test] = {"mean": nums[0], "sd": nums[1] if len(nums) > 1 else 0.0,
                     "median": None, "reps": []}
    return out


def bench_rocmforge(binary, args):
    if not os.access(binary, os.X_OK):
        raise RuntimeError("rocmforge binary %s not found: run `make build` or pass --bin" % binary)
    cmd = [binary, "bench", "-m", args.model, "-p", str(args.n_prompt), "-n", str(args.n_gen),
           "-t", str(args.threads), "-r", str(args.reps)]
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if res.returncode != 0:
        raise RuntimeError("`%s` failed (exit %d): %s"
                           % (" ".join(cmd), res.returncode, res.stderr.strip()[-500:]))
    table = parse_bench_table(res.stdout)
    want = {"pp%d" % args.n_prompt, "tg%d" % args.n_gen}
    if not want <= set(table):
        raise RuntimeError("no %s rows in the output of `%s`:\n%s"
                           % (" and ".join(sorted(want - set(table))), " ".join(cmd), res.stdout))
    return {"engine": "rocmforge", "version": binary, "results": table, "raw": res.stdout}


# ------------------------------------------------------------------ report
def fmt_ts(s):
    text = "%.2f ± %.2f" % (s["mean"], s["sd"])
    return text + ("" if s["median"] is None else " (median %.2f)" % s["median"])


def report(runs, args, weight_bytes):
    print("model:   %s (%s, %.1f MB of weights)" % (os.path.basename(args.model),
          args.arch, weight_bytes / 1e6))
    print("threads: %d, reps: %d, cpu: %s" % (args.threads, args.reps, cpu_name()))
    for r in runs:
        print("%-10s %s" % (r["engine"] + ":", r["version"]))
    print()
    print("| engine | test | t/s | GB/s |")
    print("| --- | --- | ---: | ---: |")
    tests = ["pp%d" % args.n_prompt, "tg%d" % args.n_gen]
    for t in tests:
        for r in runs:
            s = r["results"][t]
            gbs = "%.1f" % (weight_bytes * s["mean"] / 1e9) if t.startswith("tg") else ""
            print("| %s | %s | %s | %s |" % (r["engine"], t, fmt_ts(s), gbs))
    if len(runs) == 2:
        print()
        for t in tests:
            a, b = runs[0]["results"][t]["mean"], runs[1]["results"][t]["mean"]
            print("%s: rocmforge / llama.cpp = %.2fx" % (t, a / b))
    print("\nGB/s = %d weight bytes per token x t/s (generation reads every weight once)"
          % weight_bytes)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count())
    ap.add_argument("-r", "--reps", type=int, default=5)
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "rocmforge"),
                    help="rocmforge binary (default: %(default)s)")
    ap.add_argument("--python", help="interpreter with llama_cpp for the llama.cpp part")
    ap.add_argument("--skip-llama", action="store_true")
    ap.add_argument("--skip-rocmforge", action="store_true")
    ap.add_argument("--json", help="also write all results to this file")
    ap.add_argument("--llama-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reps < 1 or args.threads < 1 or args.n_prompt < 1 or args.n_gen < 1:
        ap.error("-r, -t, -p and -n must be positive")

    if args.llama_only:  # child of --python: one JSON line on stdout
        print(json.dumps(bench_llama(args.model, args.threads, args.n_prompt, args.n_gen,
                                     args.reps)))
        return 0
    try:
        info = gguf_summary(args.model)
    except (FetchError, OSError) as e:
        print("bench: error: %s" % e, file=sys.stderr)
        return 1
    args.arch = info["arch"]

    runs = []
    try:
        if not args.skip_rocmforge:
            runs.append(bench_rocmforge(args.bin, args))
        if not args.skip_llama:
            if args.python:
                runs.append(bench_llama_subprocess(args.python, args))
            else:
                try:
                    import llama_cpp  # noqa: F401
                except ImportError:
                    print(INSTALL_HINT % (sys.executable, sys.executable), file=sys.stderr)
                    return 2
                runs.append(bench_llama(args.model, args.threads, args.n_prompt, args.n_gen,
                                        args.reps))
    except (RuntimeError, OSError, ValueError) as e:
        print("bench: error: %s" % e, file=sys.stderr)
        return 1
    if not runs:
        ap.error("nothing to measure")
    report(runs, args, info["tensor_bytes"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "threads": args.threads, "reps": args.reps,
                       "weight_bytes": info["tensor_bytes"], "cpu": cpu_name(), "runs": runs},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
