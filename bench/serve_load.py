#!/usr/bin/env python3
"""Load on `rocmforge serve`: N concurrent streaming clients, each sending its requests
back to back; prints the aggregate generated tokens/s, time to first token and the time
per output token (p50/p99) for each N.

  python bench/serve_load.py --url http://127.0.0.1:8080 --clients 1,8,32,64
  python bench/serve_load.py --spawn -m MODEL.gguf --parallel 64 --ctx-size 512

--spawn starts the server itself (with --port 0; arguments this script does not know
go to the server) and stops it at the end. Prompts are --prompt-words random words, a
different prompt for every request so that the prefix cache does not help. Each request
asks for --max-tokens tokens; one that meets an end-of-generation token stops early,
and the tokens counted are those the server reports in usage. TTFT is measured from
sending the request to the first text; TPOT is the gap between consecutive text chunks
of one stream. Needs only the standard library and requests.
"""
import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests

WORDS = ("time river stone light paper garden window music number cloud forest "
         "engine market silver winter summer letter story bridge mountain").split()


def prompt_of(seed, n_words):
    rnd = random.Random(seed)
    return " ".join(rnd.choice(WORDS) for _ in range(n_words))


def one_request(url, prompt, max_tokens, temperature):
    """Streams one completion; returns (ttft s, [inter-token gaps s], tokens)."""
    t0 = time.perf_counter()
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": temperature,
            "stream": True, "stream_options": {"include_usage": True}}
    ttft, last, gaps, tokens = None, None, [], 0
    with requests.post(url + "/v1/completions", json=body, stream=True, timeout=3600) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:300]}")
        for line in r.iter_lines():
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            ev = json.loads(line[6:])
            now = time.perf_counter()
            if ev.get("usage"):
                tokens = ev["usage"]["completion_tokens"]
            if not ev["choices"] or not ev["choices"][0]["text"]:
                continue
            if ttft is None:
                ttft = now - t0
            else:
                gaps.append(now - last)
            last = now
    return ttft, gaps, tokens


def run_level(url, n_clients, n_requests, args):
    results, lock = [], threading.Lock()
    counter = iter(range(n_clients * n_requests))

    def client():
        for _ in range(n_requests):
            with lock:
                k = next(counter)
            res = one_request(url, prompt_of(k * 7919 + n_clients, args.prompt_words),
                              args.max_tokens, args.temperature)
            with lock:
                results.append(res)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return wall, results


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def spawn(args):
    log = tempfile.NamedTemporaryFile(prefix="rf-serve-bench-", suffix=".log", delete=False)
    cmd = [args.bin, "serve", "--port", "0", "--log-format", "none", *args.server_args]
    if args.model:
        cmd += ["-m", args.model]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(1200):
        text = open(log.name, encoding="utf-8", errors="replace").read()
        m = re.search(r" on http://[^ ]*:(\d+) ", text)
        if m:
            return proc, f"http://127.0.0.1:{m.group(1)}", log.name
        if proc.poll() is not None:
            sys.exit(f"server exited {proc.returncode}:\n{text}")
        time.sleep(0.1)
    proc.kill()
    sys.exit("server did not start")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--clients", default="1,8,32,64")
    ap.add_argument("--requests", type=int, default=2, help="requests per client per level")
    ap.add_argument("--prompt-words", type=int, default=100,
                    help="words per prompt (about 1.3 tokens each for BPE vocabularies)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--spawn", action="store_true", help="start `rocmforge serve` itself")
    ap.add_argument("--bin", default=os.environ.get("RF_BIN", "build/rocmforge"))
    ap.add_argument("-m", "--model")
    args, server_args = ap.parse_known_args()
    args.server_args = server_args
    proc = None
    url = args.url
    if args.spawn:
        proc, url, _ = spawn(args)
    try:
        models = requests.get(url + "/v1/models", timeout=30).json()["data"]
        print(f"server {url}, model {models[0]['id']}; prompts ~{args.prompt_words} words, "
              f"{args.max_tokens} tokens each, temperature {args.temperature}")
        print("| clients | requests | gen tok/s | TTFT p50 ms | TTFT p99 ms | "
              "TPOT p50 ms | TPOT p99 ms |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for n in [int(x) for x in args.clients.split(",")]:
            wall, res = run_level(url, n, args.requests, args)
            tokens = sum(r[2] for r in res)
            ttfts = [r[0] * 1e3 for r in res if r[0] is not None]
            gaps = [g * 1e3 for r in res for g in r[1]]
            print(f"| {n} | {len(res)} | {tokens / wall:.1f} | {pct(ttfts, 50):.1f} | "
                  f"{pct(ttfts, 99):.1f} | {pct(gaps, 50):.2f} | {pct(gaps, 99):.2f} |",
                  flush=True)
        if gaps:
            print(f"(last level: mean TPOT {statistics.mean(gaps):.2f} ms over {len(gaps)} gaps)")
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)


if __name__ == "__main__":
    main()
