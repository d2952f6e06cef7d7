#!/usr/bin/env python3
"""Op-by-op comparison of rocmforge's intermediate tensors with llama.cpp's.

Runs tools/trace_llamacpp.py (llama.cpp's tensors through its eval callback) and
`rocmforge logits` with RF_TRACE_DIR (ours, see src/model/forward.c) on the same
tokens, then prints for each op of the chosen layers: the number of floats that
differ bit for bit, the largest |difference| and the largest relative difference.

  /work/ref/venv/bin/python tools/trace_compare.py MODEL --bin build/rocmforge \
      [--prompt TEXT | --tokens "1 2 3"] [--layers 0,1,29] [--decode]

--decode evaluates the last token on its own (llama.cpp and ours: a batch of n-1
tokens, then one), and compares that single-token step.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# (our file name, llama.cpp's file name) in graph order; {l} is the layer.
LAYER_OPS = [
    ("attn_norm-{l}", "attn_norm-{l}"),
    ("Qcur-{l}", "Qcur-{l}.2"),  # llama.cpp names the product, its reshape and the roped tensor alike
    ("Kcur-{l}", "Kcur-{l}.2"),
    ("Vcur-{l}", "Vcur-{l}"),
    ("kqv_out-{l}", "kqv_out-{l}"),
    ("attn_out-{l}", "attn_out-{l}"),
    ("attn_post_norm-{l}", "attn_post_norm-{l}"),  # gemma3
    ("ffn_inp-{l}", "ffn_inp-{l}"),
    ("sa_out-{l}", "sa_out-{l}"),  # gemma3: the residual after attention
    ("ffn_norm-{l}", "ffn_norm-{l}"),
    ("ffn_gate-{l}", "ffn_gate-{l}"),
    ("ffn_up-{l}", "ffn_up-{l}"),
    ("ffn_swiglu-{l}", "ffn_swiglu-{l}"),
    ("ffn_geglu-{l}", "ffn_geglu-{l}"),
    ("ffn_out-{l}", "ffn_out-{l}"),
    ("ffn_post_norm-{l}", "ffn_post_norm-{l}"),
    ("l_out-{l}", "l_out-{l}"),
]
FIRST_OPS = [("embd", "embd"), ("inp_scaled", "inp_scaled")]
FINAL_OPS = [("result_norm", "result_norm"), ("result_output", "result_output")]


def compare(ours, ref):
    a, b = ours.ravel(), ref.ravel()
    if a.size != b.size:
        return f"size {a.size} vs {b.size}"
    diff = a.view(np.uint32) != b.view(np.uint32)
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    rel = d / np.maximum(np.abs(b.astype(np.float64)), 1e-30)
    first = int(np.argmax(diff)) if diff.any() else -1
    return (f"{int(diff.sum()):8d}/{a.size:<8d} max|d| {d.max():.3e}  max rel {rel.max():.3e}"
            + (f"  first at {first}" if first >= 0 else ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--bin", required=True, help="the rocmforge executable")
    ap.add_argument("--prompt", default="The quick brown fox jumps over the lazy dog. It was")
    ap.add_argument("--tokens")
    ap.add_argument("--layers", default="0,1")
    ap.add_argument("--decode", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", help="directory for the dumps (default: a temporary one)")
    args = ap.parse_args()

    work = args.work or tempfile.mkdtemp(prefix="rf_trace_")
    ref_dir, our_dir = os.path.join(work, "ref"), os.path.join(work, "ours")
    layers = [int(x) for x in args.layers.split(",")]
    cmd = [sys.executable, os.path.join(HERE, "trace_llamacpp.py"), args.model, "--out", ref_dir,
           "--layers", args.layers, "--threads", str(args.threads),
           "--decode", "1" if args.decode else "0"]
    cmd += ["--tokens", args.tokens] if args.tokens else ["--prompt", args.prompt]
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    with open(os.path.join(ref_dir, "tokens.txt")) as f:
        ids = f.readline().split()
        n_batch = int(f.readline())

    for step in range(2):
        os.makedirs(os.path.join(our_dir, str(step)), exist_ok=True)
    env = dict(os.environ, RF_TRACE_DIR=our_dir)
    subprocess.run([args.bin, "logits", "-m", args.model, "--tokens", ",".join(ids),
                    "--out", os.path.join(work, "logits.f32"), "-t", str(args.threads),
                    "-b", str(n_batch)], check=True, env=env)

    step = 1 if args.decode else 0
    print(f"{len(ids)} tokens, step {step} ({'one token' if args.decode else f'{n_batch} tokens'})")
    ops = FIRST_OPS + [(o.format(l=l), r.format(l=l)) for l in layers for o, r in LAYER_OPS] + FINAL_OPS
    for ours_name, ref_name in ops:
        rp = os.path.join(ref_dir, str(step), ref_name + ".npy")
        op = os.path.join(our_dir, str(step), ours_name + ".f32")
        if not os.path.exists(rp) or not os.path.exists(op):
            continue
        ref = np.load(rp)
        ours = np.fromfile(op, dtype=np.float32)
        if ours_name == "result_output" or ours_name == "result_norm":
            # ours has only the rows whose logits are wanted (all of them here)
            ref = ref.reshape(-1, ref.shape[-1])[-(ours.size // ref.shape[-1]):]
        print(f"{ours_name:16s} {compare(ours, ref)}")


if __name__ == "__main__":
    main()
