#!/usr/bin/env python3
"""Independent float64 reference forward pass for llama / mistral (arch "llama"),
qwen2, qwen3 and gemma3 GGUF models, and the generator of the synthetic-model fixtures.

    ref_forward.py run MODEL --tokens 1,2,3 [--out FILE.f32]
        logits of every position (n_tokens x n_vocab, little-endian float32)
    ref_forward.py fixtures [--out-dir tests/fixtures/synthetic] [NAME ...]
        regenerate the synthetic models (tools/make_test_model.py) in a temp dir,
        run this reference and llama-cpp-python on each, write the logits and
        manifest.json, print the reference-vs-llama.cpp error table

Weights are dequantized with gguf-py (gguf.quants.dequantize) and everything after
that is float64 numpy, written from the architecture definitions:
  x = token_embd[tokens]
  per layer: h = rmsnorm(x) * attn_norm
             q, k, v = h Wq^T (+bq), h Wk^T (+bk), h Wv^T (+bv)
             qwen3: q, k = per-head rmsnorm * attn_q_norm / attn_k_norm
             rope on q, k (llama: adjacent pairs; qwen2/qwen3: halves, "NeoX")
             causal softmax(q k^T / sqrt(head_dim)) v, kv head = head / (n_head/n_head_kv)
             x += attn Wo^T;  h = rmsnorm(x) * ffn_norm
             x += (silu(h Wgate^T) * (h Wup^T)) Wdown^T
  logits = (rmsnorm(x) * output_norm) Wout^T, Wout = output or token_embd (tied)
gemma3 on top of that (NeoX rope, q/k norms): x = token_embd[tokens] * sqrt(n_embd);
  layer il is global when il % 6 == 5, else it sees the last sliding_window positions
  and its rope base is 10000 (rope.freq_base_swa), without the linear rope scaling
  (which multiplies positions by 1/factor); the attention and MLP outputs are
  rmsnorm'ed (post_attention_norm, post_ffw_norm) before each residual add; the MLP
  is gelu_tanh(h Wgate^T) * (h Wup^T); final_logit_softcapping c, when the file has
  it: logits = c tanh(logits / c)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path

# Tiny matrices: BLAS threads cost more than they give (before numpy loads BLAS).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import gguf  # noqa: E402
from gguf import GGUFReader  # noqa: E402
from gguf import GGMLQuantizationType as QT  # noqa: E402

NEOX_ARCHES = {"qwen2", "qwen3", "gemma3"}
SUPPORTED_ARCHES = {"llama", "qwen2", "qwen3", "gemma3"}
GEMMA_SWA_PATTERN = 6  # every 6th layer global (llama.cpp's for gemma3)


# ---------------------------------------------------------------- loading

def _meta(r: GGUFReader, key: str, default=None):
    f = r.fields.get(key)
    if f is None:
        if default is None:
            raise KeyError(f"missing metadata {key}")
        return default
    return f.contents()


def _rope_scale(r: GGUFReader, arch: str) -> float:
    """Position factor of linear RoPE scaling (1 / rope.scaling.factor), else 1."""
    if _meta(r, f"{arch}.rope.scaling.type", "none") != "linear":
        return 1.0
    return 1.0 / float(_meta(r, f"{arch}.rope.scaling.factor"))


def load_model(path: str | Path) -> dict:
    """hparams and float64 weights (name -> array of numpy shape (ne1, ne0))."""
    r = GGUFReader(str(path))
    arch = _meta(r, "general.architecture")
    if arch not in SUPPORTED_ARCHES:
        raise ValueError(f"unsupported architecture {arch!r}")
    n_embd = int(_meta(r, f"{arch}.embedding_length"))
    n_head = int(_meta(r, f"{arch}.attention.head_count"))
    hd_k = int(_meta(r, f"{arch}.attention.key_length", n_embd // n_head))
    hp = dict(
        arch=arch,
        n_embd=n_embd,
        n_layer=int(_meta(r, f"{arch}.block_count")),
        n_head=n_head,
        n_head_kv=int(_meta(r, f"{arch}.attention.head_count_kv", n_head)),
        head_dim=hd_k,
        head_dim_v=int(_meta(r, f"{arch}.attention.value_length", hd_k)),
        n_rot=int(_meta(r, f"{arch}.rope.dimension_count", hd_k)),
        rope_base=float(_meta(r, f"{arch}.rope.freq_base", 10000.0)),
        eps=float(_meta(r, f"{arch}.attention.layer_norm_rms_epsilon")),
        n_ctx_train=int(_meta(r, f"{arch}.context_length")),
        neox=arch in NEOX_ARCHES,
        gemma=arch == "gemma3",
        n_swa=int(_meta(r, f"{arch}.attention.sliding_window", 0)),
        rope_base_swa=float(_meta(r, f"{arch}.rope.freq_base_swa", 10000.0)),
        final_softcap=float(_meta(r, f"{arch}.final_logit_softcapping", 0.0)),
        rope_scale=_rope_scale(r, arch),
    )
    w, types = {}, {}
    for t in r.tensors:
        types[t.name] = gguf.GGMLQuantizationType(t.tensor_type)
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        a = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
        w[t.name] = np.asarray(a, dtype=np.float64).reshape(shape)
        if t.tensor_type in (QT.Q4_1, QT.Q5_1):
            # per-block min m (f16 at byte 2 of each block), for the Q8_1 emulation
            bs, ts = gguf.GGML_QUANT_SIZES[t.tensor_type]
            blk = np.asarray(t.data).reshape(-1, ts)
            mins = blk[:, 2:4].copy().view(np.float16).astype(np.float64)
            w[t.name + "@min"] = mins.reshape(shape[0], shape[1] // bs)
    hp["n_vocab"] = w["token_embd.weight"].shape[0]
    return dict(hp=hp, w=w, types=types, act_quant=False)


# ---------------------------------------------------------------- ops

def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """Over the last axis: x / sqrt(mean(x^2) + eps) * weight."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope(x: np.ndarray, pos: np.ndarray, n_rot: int, base: float, neox: bool) -> np.ndarray:
    """x: (T, n_heads, head_dim). Rotates the first n_rot dims of each head by
    angle pos * base^(-2i/n_rot) for pair i; pairs are (2i, 2i+1), or (i, i+n_rot/2)
    when neox. Dims past n_rot pass through."""
    half = n_rot // 2
    inv = base ** (-2.0 * np.arange(half, dtype=np.float64) / n_rot)
    ang = pos.astype(np.float64)[:, None] * inv[None, :]        # (T, half)
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]  # (T, 1, half)
    out = x.copy()
    if neox:
        a, b = x[..., :half], x[..., half:n_rot]
        out[..., :half] = a * cos - b * sin
        out[..., half:n_rot] = a * sin + b * cos
    else:
        a, b = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
        out[..., 0:n_rot:2] = a * cos - b * sin
        out[..., 1:n_rot:2] = a * sin + b * cos
    return out


def _f16(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(np.float16).astype(np.float64)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, f16: bool = False,
              window: int = 0) -> np.ndarray:
    """q: (T, n_head, hd), k: (T, n_kv, hd), v: (T, n_kv, hd_v) -> (T, n_head*hd_v);
    causal, scale 1/sqrt(hd), query head h reads kv head h // (n_head/n_kv); window
    > 0: position i sees positions i-window+1..i only.
    f16: round k, v (an f16 KV cache) and both products' other operand (q, the
    probabilities) to f16, as ggml's CPU attention does with an f16 cache."""
    T, n_head, hd = q.shape
    group = n_head // k.shape[1]
    if f16:
        q, k, v = _f16(q), _f16(k), _f16(v)
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    if window > 0:
        mask = mask + np.tril(np.full((T, T), -np.inf), k=-window)
    out = np.empty((T, n_head, v.shape[2]))
    for h in range(n_head):
        s = q[:, h, :] @ k[:, h // group, :].T / np.sqrt(hd) + mask
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        p = s / s.sum(axis=-1, keepdims=True)
        out[:, h, :] = (_f16(p) if f16 else p) @ v[:, h // group, :]
    return out.reshape(T, -1)


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def gelu_tanh(x: np.ndarray, f16: bool = False) -> np.ndarray:
    """0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2))). f16: as ggml's CPU GELU,
    input and output rounded to f16 for -10 < x < 10, 0 below, x above."""
    def g(t):
        return 0.5 * t * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * t * (1.0 + 0.044715 * t * t)))
    if not f16:
        return g(x)
    return np.where(x <= -10, 0.0, np.where(x >= 10, x, _f16(g(_f16(x)))))


def _layer_window(hp: dict, il: int) -> tuple[int, float, float]:
    """(attention window, rope base, rope position scale) of layer il."""
    if hp["gemma"] and hp["n_swa"] > 0 and il % GEMMA_SWA_PATTERN < GEMMA_SWA_PATTERN - 1:
        return hp["n_swa"], hp["rope_base_swa"], 1.0
    return 0, hp["rope_base"], hp["rope_scale"]


# ---- optional emulation of the activation rounding of ggml's CPU matmuls: the
# input row is converted to the weight type's dot-product partner (F16 -> F16,
# BF16 -> BF16, legacy and IQ4_NL -> Q8_0, Q4_1/Q5_1 -> Q8_1, K-quants -> Q8_K)
# before an exact dot product. Used to validate this reference against llama.cpp
# tightly; the plain reference keeps activations exact.

def _blocks(x: np.ndarray, bs: int) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).reshape(x.shape[0], -1, bs)


def _round_away(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))


def _q8_0(x: np.ndarray):
    """-> (dequantized x, d (f32), sum of quants) per block of 32."""
    b = _blocks(x, 32)
    amax = np.abs(b).max(axis=-1, keepdims=True)
    d = amax / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(amax > 0, np.float32(127) / amax, np.float32(0)).astype(np.float32)
    q = np.rint(b * inv)
    d16 = d.astype(np.float16).astype(np.float64)
    return (q * d16).reshape(x.shape), d, q.sum(axis=-1)


def _q8_k(x: np.ndarray) -> np.ndarray:
    """Blocks of 256, scale -127/(signed value of largest magnitude), f32 scale,
    round half to even."""
    b = _blocks(x, 256)
    idx = np.abs(b).argmax(axis=-1)[..., None]
    mx = np.take_along_axis(b, idx, axis=-1)
    with np.errstate(divide="ignore"):
        iscale = np.where(mx != 0, np.float32(-127) / mx, np.float32(0)).astype(np.float32)
    q = np.minimum(np.rint(b * iscale), 127)
    with np.errstate(divide="ignore"):
        d = np.where(iscale != 0, np.float32(1) / iscale, np.float32(0)).astype(np.float32)
    return (q.astype(np.float64) * d).reshape(x.shape)


def _bf16(x: np.ndarray) -> np.ndarray:
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32).astype(np.float64)


_Q8_0_PARTNER = {QT.Q4_0, QT.Q5_0, QT.Q8_0, QT.IQ4_NL}
_Q8_K_PARTNER = {QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K, QT.Q6_K}


def _act_matmul(m: dict, name: str, x: np.ndarray) -> np.ndarray:
    w = m["w"][name]
    t = m["types"][name] if m["act_quant"] else QT.F32
    if t == QT.F16:
        return x.astype(np.float16).astype(np.float64) @ w.T
    if t == QT.BF16:
        return _bf16(x) @ w.T
    if t in _Q8_0_PARTNER:
        return _q8_0(x)[0] @ w.T
    if t in _Q8_K_PARTNER:
        return _q8_k(x) @ w.T
    if t in (QT.Q4_1, QT.Q5_1):
        # Q8_1 keeps s = f16(d * sum(q)) per block; the weight's min term uses it.
        xq, d, sq = _q8_0(x)
        d = d[..., 0]
        s = (d * sq.astype(np.float32)).astype(np.float16).astype(np.float64)
        exact = d.astype(np.float16).astype(np.float64) * sq
        return xq @ w.T + (s - exact) @ m["w"][name + "@min"].T
    return x @ w.T


def _linear(m: dict, name: str, x: np.ndarray) -> np.ndarray:
    y = _act_matmul(m, name + ".weight", x)
    if name + ".bias" in m["w"]:
        y = y + m["w"][name + ".bias"]
    return y


def _attn_block(m: dict, il: int, x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    hp, w, p = m["hp"], m["w"], f"blk.{il}."
    T = x.shape[0]
    h = rms_norm(x, w[p + "attn_norm.weight"], hp["eps"])
    q = _linear(m, p + "attn_q", h).reshape(T, hp["n_head"], hp["head_dim"])
    k = _linear(m, p + "attn_k", h).reshape(T, hp["n_head_kv"], hp["head_dim"])
    v = _linear(m, p + "attn_v", h).reshape(T, hp["n_head_kv"], hp["head_dim_v"])
    if p + "attn_q_norm.weight" in w:
        q = rms_norm(q, w[p + "attn_q_norm.weight"], hp["eps"])
        k = rms_norm(k, w[p + "attn_k_norm.weight"], hp["eps"])
    window, base, scale = _layer_window(hp, il)
    q = rope(q, pos * scale, hp["n_rot"], base, hp["neox"])
    k = rope(k, pos * scale, hp["n_rot"], base, hp["neox"])
    out = _linear(m, p + "attn_output", attention(q, k, v, m["act_quant"], window))
    if p + "post_attention_norm.weight" in w:
        out = rms_norm(out, w[p + "post_attention_norm.weight"], hp["eps"])
    return out


def _ffn_block(m: dict, il: int, x: np.ndarray) -> np.ndarray:
    hp, w, p = m["hp"], m["w"], f"blk.{il}."
    h = rms_norm(x, w[p + "ffn_norm.weight"], hp["eps"])
    gate = _linear(m, p + "ffn_gate", h)
    act = gelu_tanh(gate, m["act_quant"]) if hp["gemma"] else silu(gate)
    out = _linear(m, p + "ffn_down", act * _linear(m, p + "ffn_up", h))
    if p + "post_ffw_norm.weight" in w:
        out = rms_norm(out, w[p + "post_ffw_norm.weight"], hp["eps"])
    return out


def forward(m: dict, tokens, act_quant: bool = False) -> np.ndarray:
    """Logits (n_tokens, n_vocab) float64 for tokens at positions 0..n-1.
    act_quant: round matmul inputs as ggml's CPU backend does (see _act_matmul)
    and keep K/V in f16 (attention(f16=True)), to emulate llama.cpp's defaults."""
    m = dict(m, act_quant=act_quant)
    hp, w = m["hp"], m["w"]
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.min() < 0 or tokens.max() >= hp["n_vocab"]:
        raise ValueError("token id out of range")
    pos = np.arange(len(tokens))
    x = w["token_embd.weight"][tokens]
    if hp["gemma"]:
        x = x * np.sqrt(hp["n_embd"])
    for il in range(hp["n_layer"]):
        x = x + _attn_block(m, il, x, pos)
        x = x + _ffn_block(m, il, x)
    x = rms_norm(x, w["output_norm.weight"], hp["eps"])
    logits = _act_matmul(m, "output.weight" if "output.weight" in w else "token_embd.weight", x)
    if hp["final_softcap"] > 0:
        logits = hp["final_softcap"] * np.tanh(logits / hp["final_softcap"])
    return logits


# ---------------------------------------------------------------- comparison

def log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def compare(test: np.ndarray, ref: np.ndarray) -> dict:
    """Distances of test logits from ref logits, both (T, V).
    kl_*: KL(softmax(ref) || softmax(test)) over positions; rel_max: max over
    positions of max|test-ref| / rms(ref); top1: fraction of positions with the same
    argmax; exact_pos: fraction of positions with max|test-ref| / rms(ref) < 1e-4."""
    lp, lq = log_softmax(ref), log_softmax(test)
    kl = np.sum(np.exp(lp) * (lp - lq), axis=-1)
    ref64, test64 = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    rms = np.sqrt(np.mean(ref64 * ref64, axis=-1))
    rel = np.max(np.abs(test64 - ref64), axis=-1) / rms
    top1 = np.mean(np.argmax(test64, axis=-1) == np.argmax(ref64, axis=-1))
    return dict(kl_mean=float(kl.mean()), kl_max=float(kl.max()), rel_max=float(rel.max()),
                top1=float(top1), exact_pos=float(np.mean(rel < 1e-4)))


# ---------------------------------------------------------------- llama.cpp

def llama_cpp_logits(path: Path, tokens: list[int], n_ctx: int, f32_kv: bool) -> np.ndarray:
    """llama-cpp-python's logits for every position: CPU, 2 threads, no flash
    attention, f16 KV cache (llama.cpp's default) or f32."""
    import llama_cpp
    kv = dict(type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32) if f32_kv else {}
    llm = llama_cpp.Llama(model_path=str(path), logits_all=True, n_ctx=n_ctx, n_batch=n_ctx,
                          n_threads=2, verbose=False, flash_attn=False, **kv)
    llm.eval(tokens)
    out = np.array(llm.scores[:len(tokens)], dtype=np.float32)
    llm.close()
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _round_metrics(d: dict) -> dict:
    return {k: float(f"{v:.3g}") for k, v in d.items()}


def _fixture_entry(mtm, name: str, path: Path, out_dir: Path) -> dict:
    vname, tname = mtm.parse_name(name)
    v = mtm.VARIANTS[vname]
    tokens = mtm.test_tokens(name)
    model = load_model(path)
    ref = forward(model, tokens).astype(np.float32)
    lcpp = llama_cpp_logits(path, tokens, mtm.N_CTX_TRAIN, f32_kv=False)
    lcpp32 = llama_cpp_logits(path, tokens, mtm.N_CTX_TRAIN, f32_kv=True)
    emu = forward(model, tokens, act_quant=True)
    (out_dir / f"{name}.ref.f32").write_bytes(ref.astype("<f4").tobytes())
    (out_dir / f"{name}.lcpp.f32").write_bytes(lcpp.astype("<f4").tobytes())
    types = {mtm.tensor_type(t, tname) for t, _, k in mtm.tensor_plan(v) if k in ("embd", "mat")}
    return dict(
        variant=vname, type=tname, arch=v["arch"], spec=v,
        weight_types=sorted(t.name for t in types),
        random_block_types=sorted(t.name for t in types if t in mtm.RANDOM_BLOCK_TYPES),
        gguf_sha256=_sha256(path), gguf_bytes=path.stat().st_size,
        tokens=tokens, n_vocab=int(ref.shape[1]),
        ref_sha256=_sha256(out_dir / f"{name}.ref.f32"),
        lcpp_sha256=_sha256(out_dir / f"{name}.lcpp.f32"),
        ref_logit_std=round(float(ref.std()), 3),
        ref_vs_lcpp=_round_metrics(compare(ref, lcpp)),
        ref_vs_lcpp_f32kv=_round_metrics(compare(ref, lcpp32)),
        emulated_vs_lcpp=_round_metrics(compare(emu, lcpp)))


def make_fixtures(out_dir: Path, names: list[str]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import make_test_model as mtm
    import llama_cpp

    out_dir.mkdir(parents=True, exist_ok=True)
    man_path = out_dir / "manifest.json"
    manifest = json.loads(man_path.read_text()) if man_path.exists() else {}
    manifest.update(
        generator=("models: tools/make_test_model.py (regenerated at test time, checked by "
                   "gguf_sha256); logits: tools/ref_forward.py fixtures"),
        seed=mtm.SEED, gguf_py=_gguf_version(), numpy=np.__version__,
        llama_cpp_python=llama_cpp.__version__,
        logits_format="<name>.<ref|lcpp>.f32: raw little-endian float32, n_tokens x n_vocab",
        ref="tools/ref_forward.py: float64 forward, exact activations, stored as float32",
        lcpp=("llama-cpp-python: CPU, n_threads=2, n_ctx=256, f16 KV cache (default), "
              "no flash attention, one batch"),
        metrics=("KL(softmax(first)||softmax(second)) mean/max over positions; rel_max = "
                 "max|a-b|/rms(first) per position, max; top1 = same argmax fraction; "
                 "exact_pos = fraction of positions with rel < 1e-4. ref_vs_lcpp_f32kv: "
                 "llama.cpp with an f32 KV cache (not stored). emulated_vs_lcpp: this "
                 "reference rounding activations, K/V, q and attention weights as ggml's "
                 "CPU backend does (tools/ref_forward.py forward(act_quant=True))."),
    )
    models = manifest.setdefault("models", {})
    hdr = f"{'model':22s} {'kl_mean':>9s} {'kl_max':>9s} {'rel_max':>9s} {'top1':>5s}"
    print(f"{hdr} | f32kv rel | emulated kl_mean exact_pos")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            e = models[name] = _fixture_entry(mtm, name, mtm.write_model(name, Path(tmp)), out_dir)
            c, c32, ce = e["ref_vs_lcpp"], e["ref_vs_lcpp_f32kv"], e["emulated_vs_lcpp"]
            print(f"{name:22s} {c['kl_mean']:9.2e} {c['kl_max']:9.2e} {c['rel_max']:9.2e} "
                  f"{c['top1']:5.3f} | {c32['rel_max']:9.2e} | {ce['kl_mean']:9.2e} "
                  f"{ce['exact_pos']:5.3f}", flush=True)
    manifest["models"] = {k: models[k] for k in sorted(models)}
    man_path.write_text(dump_manifest(manifest))


def dump_manifest(manifest: dict) -> str:
    """Indented JSON with lists of scalars kept on one line."""
    text = json.dumps(manifest, indent=1)
    return re.sub(r"\[\s*([^\[\]{}]*?)\s*\]",
                  lambda mo: "[" + re.sub(r",\s+", ", ", mo.group(1)) + "]", text) + "\n"


def _gguf_version() -> str:
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("model")
    r.add_argument("--tokens", required=True, help="comma-separated token ids")
    r.add_argument("--out", help="write logits here (raw float32) instead of a summary")
    f = sub.add_parser("fixtures")
    f.add_argument("--out-dir", default=str(Path(__file__).resolve().parents[1]
                                            / "tests" / "fixtures" / "synthetic"))
    f.add_argument("names", nargs="*")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        logits = forward(load_model(args.model), [int(t) for t in args.tokens.split(",")])
        if args.out:
            Path(args.out).write_bytes(logits.astype("<f4").tobytes())
        else:
            for i, row in enumerate(logits):
                print(i, int(np.argmax(row)), f"{row.max():.4f}")
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import make_test_model as mtm
    make_fixtures(Path(args.out_dir), args.names or mtm.model_names())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
