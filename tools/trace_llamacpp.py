#!/usr/bin/env python3
"""Dump llama.cpp's named intermediate tensors for one evaluation, for op-by-op
comparison with rocmforge's RF_TRACE_DIR dumps (tools/trace_compare.py).

Runs llama-cpp-python's low-level API on the CPU with the settings of the golden
fixtures (tools/golden_logits.py): n_ctx 512, one ubatch, 2 threads, f16 KV cache,
no flash attention. The scheduler's eval callback asks for the tensors whose names
match --names and whose layer is in --layers, and writes each as
<out>/<step>/<name>.npy (numpy shape = ggml ne reversed, float32).

A name produced again (Qcur-0: the product, its reshape, after RoPE) gets .1, .2, ...
Step 0 is the batch of the first n - decode tokens; steps 1.. are single tokens.

  /work/ref/venv/bin/python tools/trace_llamacpp.py MODEL --prompt "Hello" \
      --layers 0,1 --out /tmp/trace_ref [--decode 1] [--list]
"""
import argparse
import ctypes
import os
import re
import sys

import numpy as np

GGML_MAX_DIMS, GGML_MAX_SRC, GGML_MAX_OP_PARAMS, GGML_MAX_NAME = 4, 10, 64, 64
GGML_TYPE_F32, GGML_TYPE_F16 = 0, 1


class GgmlTensor(ctypes.Structure):
    """The leading fields of struct ggml_tensor (ggml.h), enough to read name and data."""
    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * GGML_MAX_DIMS),
        ("nb", ctypes.c_size_t * GGML_MAX_DIMS),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * (GGML_MAX_OP_PARAMS // 4)),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * GGML_MAX_SRC),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * GGML_MAX_NAME),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


def tensor_array(t):
    """A copy of a CPU tensor of type F32 or F16 as float32, honouring its strides."""
    esz = {GGML_TYPE_F32: 4, GGML_TYPE_F16: 2}[t.type]
    ne = [t.ne[i] for i in range(4)]
    nb = [t.nb[i] for i in range(4)]
    span = sum((n - 1) * s for n, s in zip(ne, nb)) + esz
    raw = np.ctypeslib.as_array((ctypes.c_uint8 * span).from_address(t.data))
    dt = np.float32 if t.type == GGML_TYPE_F32 else np.float16
    a = np.lib.stride_tricks.as_strided(raw.view(dt) if span % esz == 0 else raw[: span - span % esz].view(dt),
                                        shape=tuple(reversed(ne)), strides=tuple(reversed(nb)))
    return np.array(a, dtype=np.float32)


def layer_of(name):
    m = re.search(r"-(\d+)$", name)
    return int(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--prompt", default="The quick brown fox jumps over the lazy dog. It was")
    ap.add_argument("--tokens", help="space-separated token ids instead of --prompt")
    ap.add_argument("--layers", default="0", help="comma list of layers, or 'all'")
    ap.add_argument("--names", default=".*", help="regex on the name without the layer suffix")
    ap.add_argument("--decode", type=int, default=0, help="last N tokens one at a time")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    ap.add_argument("--list", action="store_true", help="print every tensor name seen")
    args = ap.parse_args()

    import llama_cpp as L

    L.llama_backend_init()
    mp = L.llama_model_default_params()
    model = L.llama_model_load_from_file(args.model.encode(), mp)
    if not model:
        sys.exit("cannot load model")
    vocab = L.llama_model_get_vocab(model)
    if args.tokens:
        ids = [int(x) for x in args.tokens.split()]
    else:
        buf = (L.llama_token * 4096)()
        text = args.prompt.encode()
        n = L.llama_tokenize(vocab, text, len(text), buf, 4096, True, True)
        ids = list(buf[:n])

    layers = None if args.layers == "all" else {int(x) for x in args.layers.split(",")}
    name_re = re.compile(args.names)
    state = {"step": 0, "seen": [], "count": {}}

    def wanted(name):
        if " " in name:  # views and permutes of a named tensor
            return False
        il = layer_of(name)
        base = re.sub(r"-\d+$", "", name)
        if il is not None and layers is not None and il not in layers:
            return False
        return bool(name_re.fullmatch(base))

    @L.ggml_backend_sched_eval_callback
    def cb(tp, ask, _ud):
        t = GgmlTensor.from_address(tp)
        name = t.name.decode(errors="replace")
        if ask:
            if args.list:
                state["seen"].append((name, t.type, tuple(t.ne)))
            return wanted(name) and t.type in (GGML_TYPE_F32, GGML_TYPE_F16)
        d = os.path.join(args.out, str(state["step"]))
        os.makedirs(d, exist_ok=True)
        # A name given twice (Qcur-0 after the product, again after RoPE): .1, .2, ...
        key = (state["step"], name)
        k = state["count"].get(key, 0)
        state["count"][key] = k + 1
        np.save(os.path.join(d, name + (f".{k}" if k else "") + ".npy"), tensor_array(t))
        return True

    cp = L.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch = 512, 512, 512
    cp.n_threads = cp.n_threads_batch = args.threads
    cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
    cp.cb_eval = cb
    cp.cb_eval_user_data = None
    ctx = L.llama_init_from_model(model, cp)

    def decode(toks, pos0):
        b = L.llama_batch_init(len(toks), 0, 1)
        b.n_tokens = len(toks)
        for i, tok in enumerate(toks):
            b.token[i] = tok
            b.pos[i] = pos0 + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 1
        rc = L.llama_decode(ctx, b)
        L.llama_batch_free(b)
        if rc != 0:
            sys.exit(f"llama_decode: {rc}")

    n_batch = len(ids) - args.decode
    decode(ids[:n_batch], 0)
    for i in range(n_batch, len(ids)):
        state["step"] += 1
        decode([ids[i]], i)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "tokens.txt"), "w") as f:
        f.write(" ".join(map(str, ids)) + f"\n{n_batch}\n")
    if args.list:
        for name, ty, ne in dict.fromkeys(state["seen"]):
            print(name, ty, ne)
    print(f"{len(ids)} tokens ({n_batch} in the batch) -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
