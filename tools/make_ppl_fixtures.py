#!/usr/bin/env python3
"""Perplexity references from llama-cpp-python for `rocmforge perplexity`.

    /work/ref/venv/bin/python tools/make_ppl_fixtures.py [--models DIR] [NAME ...]

Writes tests/fixtures/ppl_<NAME>.json for each case in CASES (all when no NAME):
llama-cpp-python's perplexity over exactly the windows the engine scores:

  * the text is tokenized once with BOS/EOS as the model asks and special-token text
    left as text (llama.tokenize(text, add_bos=True, special=False));
  * windows are the non-overlapping runs of `ctx` tokens from the start, the partial
    one at the end dropped, at most `chunks` of them; when the model adds BOS, the
    first token of every window is replaced by BOS;
  * each window is evaluated from an empty KV cache (f16, as the engine's); the logits
    at positions ctx/2 .. ctx-2 are scored against the next token: NLL = -log_softmax
    (computed in float64 from the f32 logits);
  * PPL = exp(mean NLL), se = PPL * std(NLL, ddof=1) / sqrt(N).

The JSON keeps the inputs (model file, text file and their sha256, ctx, chunks), the
token ids of the whole text (the test checks the engine's tokenization against them),
the window layout, the per-window PPL and the final PPL with its standard error.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
FIXTURES = ROOT / "tests" / "fixtures"

# name: model file (in the models cache), text (in tests/data), window length, at most
# this many windows. Sizes keep the engine's side of the test short on two CPU cores.
CASES = {
    "smollm2": dict(model="SmolLM2-135M-Instruct.Q4_1.gguf", text="alice_ch1.txt", ctx=512,
                    chunks=4),
    "gemma3": dict(model="gemma-3-270m-q4_k_m.gguf", text="alice_ch1.txt", ctx=512, chunks=2),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def windows(ids: list[int], ctx: int, chunks: int, bos: int | None) -> list[list[int]]:
    n = min(len(ids) // ctx, chunks)
    if n < 2:
        raise SystemExit(f"the text gives {len(ids)} tokens: fewer than 2 windows of {ctx}")
    out = [list(ids[w * ctx:(w + 1) * ctx]) for w in range(n)]
    if bos is not None:
        for win in out:
            win[0] = bos
    return out


def adds_bos(llm) -> int | None:
    """BOS when the model starts every text with it (the tokens of an empty text)."""
    ids = llm.tokenize(b"", add_bos=True, special=False)
    bos = llm.token_bos()
    return bos if ids and ids[0] == bos else None


def window_nll(llm, win: list[int]) -> np.ndarray:
    ctx = len(win)
    first = ctx // 2
    llm.reset()
    llm.eval(win)
    logits = np.asarray(llm.scores[first:ctx - 1], dtype=np.float64)
    m = logits.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))[:, 0]
    targets = np.asarray(win[first + 1:ctx])
    return lse - logits[np.arange(len(targets)), targets]


def make_case(name: str, case: dict, models: Path, threads: int) -> dict:
    import llama_cpp

    model_path = models / case["model"]
    text_path = DATA / case["text"]
    llm = llama_cpp.Llama(model_path=str(model_path), n_ctx=case["ctx"], n_batch=512,
                          n_threads=threads, logits_all=True, verbose=False)
    ids = llm.tokenize(text_path.read_bytes(), add_bos=True, special=False)
    bos = adds_bos(llm)
    wins = windows(ids, case["ctx"], case["chunks"], bos)
    per_window = [window_nll(llm, w) for w in wins]
    nll = np.concatenate(per_window)
    ppl = float(np.exp(nll.mean()))
    se = ppl * float(nll.std(ddof=1)) / np.sqrt(len(nll))
    print(f"{name}: {len(ids)} tokens, {len(wins)} windows of {case['ctx']}, "
          f"PPL = {ppl:.4f} +/- {se:.4f}")
    return {
        "model": case["model"],
        "model_sha256": sha256(model_path),
        "text": case["text"],
        "text_sha256": sha256(text_path),
        "ctx": case["ctx"],
        "chunks": case["chunks"],
        "reference": f"llama-cpp-python {llama_cpp.__version__}, CPU, f16 KV cache",
        "bos_per_window": bos is not None,
        "n_tokens": len(ids),
        "n_windows": len(wins),
        "first_scored": case["ctx"] // 2,
        "n_scored": int(len(nll)),
        "window_ppl": [float(np.exp(x.mean())) for x in per_window],
        "ppl": ppl,
        "se": se,
        "tokens": [int(t) for t in ids],
    }


def to_json(out: dict) -> str:
    """Indented, except the token ids: one line."""
    head = json.dumps({k: v for k, v in out.items() if k != "tokens"}, indent=1)
    return head[:-2] + ',\n "tokens": ' + json.dumps(out["tokens"]) + "\n}\n"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help=f"cases (default: all of {sorted(CASES)})")
    ap.add_argument("--models", default=os.environ.get(
        "ROCMFORGE_MODELS", str(Path.home() / ".cache" / "rocmforge" / "models")))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    for name in args.names or sorted(CASES):
        if name not in CASES:
            ap.error(f"unknown case {name!r}")
        out = make_case(name, CASES[name], Path(args.models), args.threads)
        path = FIXTURES / f"ppl_{name}.json"
        path.write_text(to_json(out))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
