#!/usr/bin/env python3
"""Tiny random-weight GGUF models for tests: every supported architecture, every
supported weight type.

    make_test_model.py OUT_DIR [NAME ...]     write the models (all when no NAME)
    make_test_model.py --list                 print the model names

Models are named <variant>-<type>, e.g. llama3-q4_k. A variant fixes the
architecture, the hyper-parameters and the vocabulary; all types of a variant share
the same float weights (quantized differently), except the types gguf-py cannot
quantize (K-quants, IQ4_NL): their weights are random valid blocks (every bit
pattern of the quants and sub-block scales occurs), scaled to the same std.

Variants (all n_embd 256, context 256, 2-3 layers; gemma3 6):
  llama3   llama arch, GQA 4/2, head_dim 64, byte-level BPE (pre "default"), untied
  smollm   llama arch, MQA 4/1, 3 layers, BPE (pre "gpt-2"), specials first, tied
  llama2   llama arch, MHA 4/4, SentencePiece vocab, no rope.dimension_count key
  mistral  llama arch (llama.cpp has no "mistral" arch), GQA 8/2, head_dim 32,
           rope base 1e6, SentencePiece vocab
  qwen2    q/k/v biases, NeoX rope, GQA 8/4, head_dim 32, BPE, tied
  qwen3    q/k per-head RMSNorm, NeoX rope, GQA 8/2, head_dim 64 (q width 512 =
           2 n_embd, attention.key_length), BPE, untied
  gemma3   6 layers (5 sliding-window of 8 tokens, then 1 global, so the window
           matters within the test tokens), MQA 4/1, q/k norms, post-attention and
           post-MLP norms, GeGLU, NeoX rope (linear scaling 8 on the global layer),
           final logit soft-capping at 30, SentencePiece vocab, tied
Tokenizers: BPE = the 256 byte tokens (GPT-2 byte alphabet), merges trained on a
built-in text, <|endoftext|> <|im_start|> <|im_end|> (control) and a ChatML
template; SPM = <unk> <s> </s>, <0x00>..<0xFF>, pieces with scores.

Everything is deterministic and independent of numpy's random generators: the
noise comes from a counter-based splitmix64 hash, normals from sums of uniforms, so
the bytes of each file depend only on the seed, this script and gguf-py's quantizers
(tests check a sha256 per file against tests/fixtures/synthetic/manifest.json).
"""
from __future__ import annotations

import argparse
import functools
import re
import sys
import zlib
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

SEED = 20240611
N_CTX_TRAIN = 256

# ---------------------------------------------------------------- noise

_U64 = np.uint64


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer, elementwise on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


def _bits(key: str, n: int) -> np.ndarray:
    """n pseudo-random uint64 for the stream named key (stable across versions)."""
    base = (SEED << 32) ^ zlib.crc32(key.encode())
    ctr = np.arange(n, dtype=np.uint64) * _U64(0xD1B54A32D192ED03)
    with np.errstate(over="ignore"):
        return _splitmix64(ctr + _U64(base & 0xFFFFFFFFFFFFFFFF))


def uniform(key: str, n: int) -> np.ndarray:
    """n float64 in [0, 1)."""
    return (_bits(key, n) >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))


def normal(key: str, shape, std: float = 1.0) -> np.ndarray:
    """Approximately N(0, std^2) float32: sum of four 16-bit uniforms (bounded at
    +-3.46 std). Only exact integer and float64 arithmetic, so bit-reproducible."""
    n = int(np.prod(shape))
    # the sum of the four 16-bit pieces of each word does not depend on byte order
    s = _bits(key, n).view(np.uint16).reshape(n, 4).sum(axis=1, dtype=np.uint32)
    s = (s.astype(np.float64) / 65536.0 - 2.0 + 2.0 / 65536.0) * np.sqrt(3.0)
    return (s * std).astype(np.float32).reshape(shape)


def random_bytes(key: str, n: int) -> np.ndarray:
    return (_bits(key, n) & _U64(0xFF)).astype(np.uint8)


# ---------------------------------------------------------------- variants

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

# head_dim is the attention head size; when n_head*head_dim != n_embd the file says
# so through attention.key_length/value_length (the Qwen3 layout).
VARIANTS: dict[str, dict] = {
    # Llama 3 style: GQA 2:1, byte-level BPE, big rope base, untied output.
    "llama3": dict(arch="llama", n_layer=2, n_embd=256, n_head=4, n_head_kv=2, head_dim=64,
                   n_ff=768, n_vocab=512, vocab="bpe", pre="default", specials="end",
                   bos="<|endoftext|>", eos="<|im_end|>", add_bos=True, tied=False,
                   rope_base=500000.0, eps=1e-5),
    # SmolLM2 style: MQA, 3 layers, special tokens first, tied output.
    "smollm": dict(arch="llama", n_layer=3, n_embd=256, n_head=4, n_head_kv=1, head_dim=64,
                   n_ff=512, n_vocab=384, vocab="bpe", pre="gpt-2", specials="start",
                   bos="<|im_start|>", eos="<|im_end|>", add_bos=False, tied=True,
                   rope_base=100000.0, eps=1e-5),
    # Llama 2 style: MHA, SentencePiece vocab, no rope.dimension_count key.
    "llama2": dict(arch="llama", n_layer=2, n_embd=256, n_head=4, n_head_kv=4, head_dim=64,
                   n_ff=512, n_vocab=320, vocab="spm", add_bos=True, tied=False,
                   rope_base=10000.0, eps=1e-6, rope_dim_key=False),
    # Mistral 7B style (arch "llama"; llama.cpp has no "mistral" arch): GQA 4:1,
    # rope base 1e6, SentencePiece vocab, no sliding window.
    "mistral": dict(arch="llama", n_layer=2, n_embd=256, n_head=8, n_head_kv=2, head_dim=32,
                    n_ff=768, n_vocab=448, vocab="spm", add_bos=True, tied=False,
                    rope_base=1000000.0, eps=1e-5),
    # Qwen2 style: q/k/v biases, NeoX rope, tied output.
    "qwen2": dict(arch="qwen2", n_layer=2, n_embd=256, n_head=8, n_head_kv=4, head_dim=32,
                  n_ff=512, n_vocab=420, vocab="bpe", pre="gpt-2", specials="end",
                  bos="<|endoftext|>", eos="<|im_end|>", add_bos=False, tied=True,
                  rope_base=1000000.0, eps=1e-6, qkv_bias=True),
    # Qwen3 style: per-head q/k RMSNorm, NeoX rope, n_head*head_dim = 2*n_embd.
    "qwen3": dict(arch="qwen3", n_layer=2, n_embd=256, n_head=8, n_head_kv=2, head_dim=64,
                  n_ff=768, n_vocab=500, vocab="bpe", pre="gpt-2", specials="end",
                  bos="<|endoftext|>", eos="<|im_end|>", add_bos=False, tied=False,
                  rope_base=1000000.0, eps=1e-6, qk_norm=True),
    # Gemma 3 style: embeddings scaled by sqrt(n_embd), norms after attention and MLP,
    # GeGLU, sliding-window layers (local RoPE base 10000) with every 6th global, final
    # logits soft-capped (as Gemma 2 files ask; llama.cpp applies it for gemma3 too).
    "gemma3": dict(arch="gemma3", n_layer=6, n_embd=256, n_head=4, n_head_kv=1, head_dim=64,
                   n_ff=512, n_vocab=320, vocab="spm", add_bos=True, tied=True,
                   rope_base=1000000.0, eps=1e-6, qk_norm=True, post_norms=True,
                   sliding_window=8, final_softcap=30.0, rope_linear=8.0),
}

# Weight types: name -> (ggml type, how the blocks are made).
TYPES: dict[str, QT] = {
    "f32": QT.F32, "f16": QT.F16, "bf16": QT.BF16,
    "q4_0": QT.Q4_0, "q4_1": QT.Q4_1, "q5_0": QT.Q5_0, "q5_1": QT.Q5_1, "q8_0": QT.Q8_0,
    "q2_k": QT.Q2_K, "q3_k": QT.Q3_K, "q4_k": QT.Q4_K, "q5_k": QT.Q5_K, "q6_k": QT.Q6_K,
    "iq4_nl": QT.IQ4_NL,
}
RANDOM_BLOCK_TYPES = {QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K, QT.Q6_K, QT.IQ4_NL}

# Per-model tensor-type overrides, by tensor name suffix (real files mix types).
MIXES: dict[str, dict[str, QT]] = {
    # like SmolLM2-135M-Instruct.Q4_1.gguf: Q8_0 embeddings (tied output)
    "q4_1_q8embd": {"token_embd.weight": QT.Q8_0},
    # like a Q4_K_M file: Q6_K for attn_v, ffn_down and output
    "q4_k_m": {"attn_v.weight": QT.Q6_K, "ffn_down.weight": QT.Q6_K, "output.weight": QT.Q6_K},
}
MIX_BASE = {"q4_1_q8embd": "q4_1", "q4_k_m": "q4_k"}

# Which (variant, type) pairs exist: every type on llama3, a spread on the others
# so each architecture sees F32 (exact check) and several block formats.
MODELS: list[tuple[str, str]] = (
    [("llama3", t) for t in TYPES] + [("llama3", "q4_k_m")]
    + [("smollm", t) for t in ("f32", "f16", "q4_1_q8embd", "q8_0", "q4_k", "q6_k")]
    + [("llama2", t) for t in ("f32", "f16", "q4_0", "q5_1", "q3_k", "iq4_nl")]
    + [("mistral", t) for t in ("f32", "bf16", "q5_0", "q2_k", "q4_k", "q8_0")]
    + [("qwen2", t) for t in ("f32", "f16", "q4_0", "q8_0", "q5_k", "q6_k")]
    + [("qwen3", t) for t in ("f32", "bf16", "q8_0", "q3_k", "q4_k", "q5_k", "iq4_nl")]
    + [("gemma3", t) for t in ("f32", "q8_0", "q4_k", "q6_k")]
)

FILE_TYPES = {
    "f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
    "bf16": gguf.LlamaFileType.MOSTLY_BF16, "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
    "q4_1": gguf.LlamaFileType.MOSTLY_Q4_1, "q5_0": gguf.LlamaFileType.MOSTLY_Q5_0,
    "q5_1": gguf.LlamaFileType.MOSTLY_Q5_1, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    "q2_k": gguf.LlamaFileType.MOSTLY_Q2_K, "q3_k": gguf.LlamaFileType.MOSTLY_Q3_K_S,
    "q4_k": gguf.LlamaFileType.MOSTLY_Q4_K_S, "q5_k": gguf.LlamaFileType.MOSTLY_Q5_K_S,
    "q6_k": gguf.LlamaFileType.MOSTLY_Q6_K, "iq4_nl": gguf.LlamaFileType.MOSTLY_IQ4_NL,
    "q4_1_q8embd": gguf.LlamaFileType.MOSTLY_Q4_1, "q4_k_m": gguf.LlamaFileType.MOSTLY_Q4_K_M,
}


def model_names() -> list[str]:
    return [f"{v}-{t}" for v, t in MODELS]


def parse_name(name: str) -> tuple[str, str]:
    v, _, t = name.partition("-")
    if (v, t) not in MODELS:
        raise KeyError(f"unknown test model {name!r}")
    return v, t


# ---------------------------------------------------------------- vocabularies

# Training text for the tiny tokenizers (ASCII, so every piece is valid UTF-8).
CORPUS = """
The small model reads a line of text and writes the next word. It has two layers,
a few heads and a short memory, so what it says is noise; the numbers are what we
test. Every weight comes from a seeded hash, every file is the same on every run.
When the engine and the reference agree on these logits, the kernels, the rope, the
attention and the norms are right, whatever the weights mean. The quick brown fox
jumps over the lazy dog while the cat sleeps in the warm sun by the open window.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 256 1024 2048 4096 65536 and 3.14159 too.
def forward(tokens): return logits  # code, too: x = y + 1; if (a < b) { b = a; }
Questions? Answers! Lists: one, two, three. Quotes: "hello", 'world'. Paths: /tmp/a.b
They went there and then they came back here, where the other ones were waiting for
them with water, bread, apples and stories about the mountains, rivers and towns.
""" * 2


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2 byte-level alphabet: printable bytes stand for themselves, the rest map
    to code points from 256 up."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@functools.lru_cache(maxsize=None)
def _train_bpe(n_merges: int) -> list[tuple[str, str]]:
    """Greedy byte-level BPE on CORPUS; ties broken by the pair's text."""
    b2u = _byte_to_unicode()
    words: dict[tuple[str, ...], int] = {}
    for w in re.findall(r" ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+", CORPUS):
        key = tuple(b2u[b] for b in w.encode())
        words[key] = words.get(key, 0) + 1
    merges = []
    while len(merges) < n_merges:
        pairs: dict[tuple[str, str], int] = {}
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            raise ValueError(f"corpus too small for {n_merges} merges")
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        new_words = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + c
        words = new_words
    return merges


SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_BYTE = 1, 2, 3, 6


def bpe_vocab(v: dict) -> dict:
    n_merges = v["n_vocab"] - 256 - len(SPECIALS)
    merges = _train_bpe(n_merges)
    b2u = _byte_to_unicode()
    normal_toks = [b2u[b] for b in range(256)] + [a + b for a, b in merges]
    if len(set(normal_toks)) != len(normal_toks):
        raise ValueError("duplicate BPE token")
    if v["specials"] == "start":
        tokens = SPECIALS + normal_toks
        types = [TT_CONTROL] * 3 + [TT_NORMAL] * len(normal_toks)
    else:
        tokens = normal_toks + SPECIALS
        types = [TT_NORMAL] * len(normal_toks) + [TT_CONTROL] * 3
    return dict(model="gpt2", tokens=tokens, types=types, scores=None,
                merges=[f"{a} {b}" for a, b in merges],
                bos=tokens.index(v["bos"]), eos=tokens.index(v["eos"]),
                unk=None, pad=tokens.index("<|endoftext|>"))


def spm_vocab(v: dict) -> dict:
    """<unk> <s> </s>, the 256 byte pieces, then '\u2581', letters and merged pieces."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [TT_UNKNOWN, TT_CONTROL, TT_CONTROL] + [TT_BYTE] * 256
    n_pieces = v["n_vocab"] - len(tokens)
    pieces = ["\u2581"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    for a, b in _train_bpe(n_pieces):
        p = (a + b).replace("\u0120", "\u2581")
        if p not in pieces and all(ch.isprintable() for ch in p):
            pieces.append(p)
    pieces = pieces[:n_pieces]
    if len(pieces) != n_pieces:
        raise ValueError("not enough SPM pieces")
    tokens += pieces
    types += [TT_NORMAL] * n_pieces
    scores = [0.0] * (len(tokens) - n_pieces) + [-float(i) for i in range(n_pieces)]
    return dict(model="llama", tokens=tokens, types=types, scores=scores, merges=None,
                bos=1, eos=2, unk=0, pad=None)


# ---------------------------------------------------------------- weights

def tensor_plan(v: dict) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, numpy shape (rows, cols) = (ne1, ne0), kind) in file order. kind:
    'embd', 'mat', 'norm', 'bias'."""
    d, hd, ff = v["n_embd"], v["head_dim"], v["n_ff"]
    q_dim, kv_dim = v["n_head"] * hd, v["n_head_kv"] * hd
    plan = [("token_embd.weight", (v["n_vocab"], d), "embd")]
    for i in range(v["n_layer"]):
        p = f"blk.{i}."
        plan += [(p + "attn_norm.weight", (d,), "norm"),
                 (p + "attn_q.weight", (q_dim, d), "mat"),
                 (p + "attn_k.weight", (kv_dim, d), "mat"),
                 (p + "attn_v.weight", (kv_dim, d), "mat")]
        if v.get("qkv_bias"):
            plan += [(p + "attn_q.bias", (q_dim,), "bias"),
                     (p + "attn_k.bias", (kv_dim,), "bias"),
                     (p + "attn_v.bias", (kv_dim,), "bias")]
        if v.get("qk_norm"):
            plan += [(p + "attn_q_norm.weight", (hd,), "norm"),
                     (p + "attn_k_norm.weight", (hd,), "norm")]
        plan += [(p + "attn_output.weight", (d, q_dim), "mat")]
        if v.get("post_norms"):
            plan += [(p + "post_attention_norm.weight", (d,), "norm")]
        plan += [(p + "ffn_norm.weight", (d,), "norm"),
                 (p + "ffn_gate.weight", (ff, d), "mat"),
                 (p + "ffn_up.weight", (ff, d), "mat"),
                 (p + "ffn_down.weight", (d, ff), "mat")]
        if v.get("post_norms"):
            plan += [(p + "post_ffw_norm.weight", (d,), "norm")]
    plan.append(("output_norm.weight", (d,), "norm"))
    if not v["tied"]:
        plan.append(("output.weight", (v["n_vocab"], d), "mat"))
    return plan


def weight_std(name: str, shape: tuple[int, ...], kind: str, v: dict) -> float:
    """Scales chosen so attention scores and logits have std ~1-3 (not flat, not
    saturated): matrices 1/sqrt(fan_in) (q, k a bit more), embeddings and output
    2/sqrt(n_embd)."""
    if kind == "embd" or name == "output.weight":
        return 2.0 / np.sqrt(v["n_embd"])
    gain = 1.3 if ("attn_q." in name or "attn_k." in name) else 1.0
    return gain / np.sqrt(shape[1])


@functools.lru_cache(maxsize=None)
def _float_weight(vname: str, name: str, shape: tuple[int, ...], kind: str) -> np.ndarray:
    key = f"{vname}/{name}"
    if kind == "norm":
        w = (1.0 + normal(key, shape, 0.1)).astype(np.float32)
    elif kind == "bias":
        w = normal(key, shape, 0.2)
    else:
        w = normal(key, shape, weight_std(name, shape, kind, VARIANTS[vname]))
    w.setflags(write=False)
    return w


def float_weight(vname: str, name: str, shape, kind: str, v: dict) -> np.ndarray:
    """The variant's float weights (shared by all its types; cached, read-only)."""
    assert v is VARIANTS[vname]
    return _float_weight(vname, name, tuple(shape), kind)


# Byte offsets of the f16 scale fields in one block, and dmin/d used to centre
# types with a min term (mean quant * mean scale = mean min * ratio).
_SCALE_FIELDS = {
    QT.Q2_K: ((80, 82), 1.5), QT.Q3_K: ((108,), 0.0), QT.Q4_K: ((0, 2), 7.5),
    QT.Q5_K: ((0, 2), 15.5), QT.Q6_K: ((208,), 0.0), QT.IQ4_NL: ((0,), 0.0),
}


def _set_scales(blocks: np.ndarray, qtype: QT, d: np.ndarray) -> None:
    offs, ratio = _SCALE_FIELDS[qtype]
    blocks[:, offs[0]:offs[0] + 2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    if len(offs) > 1:
        dm = (d * ratio).astype(np.float16)
        blocks[:, offs[1]:offs[1] + 2] = dm.view(np.uint8).reshape(-1, 2)


def random_blocks(key: str, shape, qtype: QT, std: float) -> np.ndarray:
    """Random valid blocks of qtype (bytes, shape (rows, row bytes)) whose values
    have about the given std; block scales vary by a factor 0.5..1.5."""
    rows, cols = shape
    bs, ts = gguf.GGML_QUANT_SIZES[qtype]
    nb = rows * cols // bs
    blocks = random_bytes(key, nb * ts).reshape(nb, ts)
    _set_scales(blocks, qtype, np.ones(nb, dtype=np.float64))
    unit_std = float(gguf.quants.dequantize(blocks.reshape(rows, -1), qtype).std())
    factor = 0.5 + uniform(key + "/scale", nb)
    _set_scales(blocks, qtype, std / unit_std * factor)
    return blocks.reshape(rows, cols // bs * ts)


def encode_weight(vname: str, name: str, shape, kind: str, v: dict, qtype: QT):
    """-> (array for GGUFWriter.add_tensor, raw_dtype or None)."""
    if kind in ("norm", "bias"):
        return float_weight(vname, name, shape, kind, v), None
    if qtype in RANDOM_BLOCK_TYPES:
        std = weight_std(name, shape, kind, v)
        return random_blocks(f"{vname}/{name}/{qtype.name}", shape, qtype, std), qtype
    w = float_weight(vname, name, shape, kind, v)
    if qtype == QT.F32:
        return w, None
    if qtype == QT.F16:
        return w.astype(np.float16), None
    return gguf.quants.quantize(w, qtype), qtype


def tensor_type(name: str, tname: str) -> QT:
    for suffix, qt in MIXES.get(tname, {}).items():
        if name.endswith(suffix):
            return qt
    return TYPES[MIX_BASE.get(tname, tname)]


# ---------------------------------------------------------------- file

def _write_hparams(w: gguf.GGUFWriter, v: dict) -> None:
    a = v["arch"]
    w.add_uint32(f"{a}.context_length", N_CTX_TRAIN)
    w.add_uint32(f"{a}.embedding_length", v["n_embd"])
    w.add_uint32(f"{a}.block_count", v["n_layer"])
    w.add_uint32(f"{a}.feed_forward_length", v["n_ff"])
    w.add_uint32(f"{a}.attention.head_count", v["n_head"])
    w.add_uint32(f"{a}.attention.head_count_kv", v["n_head_kv"])
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", v["eps"])
    w.add_float32(f"{a}.rope.freq_base", v["rope_base"])
    if v.get("rope_dim_key", True):
        w.add_uint32(f"{a}.rope.dimension_count", v["head_dim"])
    if v["n_head"] * v["head_dim"] != v["n_embd"]:
        w.add_uint32(f"{a}.attention.key_length", v["head_dim"])
        w.add_uint32(f"{a}.attention.value_length", v["head_dim"])
    if a == "llama":
        w.add_uint32(f"{a}.vocab_size", v["n_vocab"])
    if v.get("sliding_window"):
        w.add_uint32(f"{a}.attention.sliding_window", v["sliding_window"])
    if v.get("final_softcap"):
        w.add_float32(f"{a}.final_logit_softcapping", v["final_softcap"])
    if v.get("rope_linear"):
        w.add_string(f"{a}.rope.scaling.type", "linear")
        w.add_float32(f"{a}.rope.scaling.factor", v["rope_linear"])


def _write_vocab(w: gguf.GGUFWriter, v: dict) -> None:
    voc = bpe_vocab(v) if v["vocab"] == "bpe" else spm_vocab(v)
    assert len(voc["tokens"]) == v["n_vocab"]
    w.add_string("tokenizer.ggml.model", voc["model"])
    if voc["model"] == "gpt2":
        w.add_string("tokenizer.ggml.pre", v["pre"])
    w.add_array("tokenizer.ggml.tokens", voc["tokens"])
    w.add_array("tokenizer.ggml.token_type", voc["types"])
    if voc["scores"] is not None:
        w.add_array("tokenizer.ggml.scores", voc["scores"])
    if voc["merges"] is not None:
        w.add_array("tokenizer.ggml.merges", voc["merges"])
    w.add_uint32("tokenizer.ggml.bos_token_id", voc["bos"])
    w.add_uint32("tokenizer.ggml.eos_token_id", voc["eos"])
    if voc["unk"] is not None:
        w.add_uint32("tokenizer.ggml.unknown_token_id", voc["unk"])
    if voc["pad"] is not None:
        w.add_uint32("tokenizer.ggml.padding_token_id", voc["pad"])
    w.add_bool("tokenizer.ggml.add_bos_token", v["add_bos"])
    w.add_bool("tokenizer.ggml.add_eos_token", False)
    if "<|im_start|>" in voc["tokens"]:
        w.add_string("tokenizer.chat_template", CHATML)


def write_model(name: str, out_dir: Path) -> Path:
    vname, tname = parse_name(name)
    v = VARIANTS[vname]
    path = Path(out_dir) / f"{name}.gguf"
    w = gguf.GGUFWriter(str(path), v["arch"])
    w.add_string("general.name", f"rocmforge-test-{name}")
    w.add_uint32("general.file_type", int(FILE_TYPES[tname]))
    if tname not in ("f32", "f16", "bf16"):
        w.add_uint32("general.quantization_version", gguf.GGML_QUANT_VERSION)
    _write_hparams(w, v)
    _write_vocab(w, v)
    for tn, shape, kind in tensor_plan(v):
        data, raw = encode_weight(vname, tn, shape, kind, v, tensor_type(tn, tname))
        w.add_tensor(tn, data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_tokens(name: str, n: int = 24) -> list[int]:
    """Fixed token sequence for a model: the BOS first, then seeded random ids over
    the whole vocabulary (special tokens included)."""
    v = VARIANTS[parse_name(name)[0]]
    voc_bos = bpe_vocab(v)["bos"] if v["vocab"] == "bpe" else 1
    ids = (_bits(f"{name}/tokens", n - 1) % _U64(v["n_vocab"])).astype(np.int64)
    return [int(voc_bos)] + [int(i) for i in ids]


# ---------------------------------------------------------------- big shapes (benchmarks)
#
#     make_test_model.py OUT_DIR --big llama2-7b --big-type q4_0 [--jobs N]
#
# Random-weight files with the exact tensor shapes and types of real 7B/8B GGUF files,
# for speed benchmarks (the values mean nothing): weights N(0, 0.02), norms 1.0; the
# legacy types through this file's own block quantizers (numpy, rounding as gguf-py's
# reference), the K-quants as random blocks with small fixed scales (their speed does
# not depend on the values). Tensors are written in parallel row chunks straight into
# the file, so a 7B file takes seconds per GB on a many-core machine. Types per tensor
# follow llama.cpp's files: output.weight Q6_K in the 4- and 5-bit files, Q4_K_M with
# Q6_K attn_v / ffn_down on the layers llama.cpp gives more bits.

BIG_SHAPES: dict[str, dict] = {
    "llama2-7b": dict(arch="llama", n_layer=32, n_embd=4096, n_head=32, n_head_kv=32,
                      head_dim=128, n_ff=11008, n_vocab=32000, tied=False,
                      rope_base=10000.0, eps=1e-5, n_ctx=4096),
    "llama3-8b": dict(arch="llama", n_layer=32, n_embd=4096, n_head=32, n_head_kv=8,
                      head_dim=128, n_ff=14336, n_vocab=128256, tied=False,
                      rope_base=500000.0, eps=1e-5, n_ctx=8192),
    # a small file of the same construction, to check the generator itself
    "mini": dict(arch="llama", n_layer=2, n_embd=256, n_head=4, n_head_kv=2, head_dim=64,
                 n_ff=512, n_vocab=1000, tied=False, rope_base=10000.0, eps=1e-5, n_ctx=512),
}
BIG_TYPES = ("f16", "q4_0", "q4_1", "q5_0", "q8_0", "q4_k_m")
_BIG_FILE_TYPES = {"f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 8, "q8_0": 7, "q4_k_m": 15}


def _more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def big_tensor_type(name: str, t: str, n_layer: int) -> QT:
    if name.endswith("_norm.weight"):
        return QT.F32
    if t == "f16":
        return QT.F16
    if t == "q4_k_m":
        if name == "output.weight":
            return QT.Q6_K
        if name.endswith("attn_v.weight") or name.endswith("ffn_down.weight"):
            return QT.Q6_K if _more_bits(int(name.split(".")[1]), n_layer) else QT.Q4_K
        return QT.Q4_K
    if name == "output.weight" and t != "q8_0":
        return QT.Q6_K
    return TYPES[t]


def _f16_bytes(d: np.ndarray) -> np.ndarray:
    return d.astype(np.float16).view(np.uint8).reshape(-1, 2)


def _signed_absmax(x: np.ndarray) -> np.ndarray:
    idx = np.abs(x).argmax(axis=1)
    return x[np.arange(len(x)), idx]


def _inv(d: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(d != 0, 1.0 / np.where(d != 0, d, 1), 0).astype(np.float32)


def _pack_nibbles(q: np.ndarray) -> np.ndarray:
    return (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)


def quantize_big(x: np.ndarray, qt: QT, rng: np.random.Generator) -> np.ndarray:
    """Rows of floats (or of shape only, for random blocks) -> block bytes (rows, row bytes)."""
    rows, cols = x.shape
    if qt == QT.F16:
        return x.astype(np.float16).view(np.uint8)
    bs, ts = gguf.GGML_QUANT_SIZES[qt]
    if qt in (QT.Q4_K, QT.Q6_K):
        b = rng.integers(0, 256, size=(rows * cols // bs, ts), dtype=np.uint8)
        if qt == QT.Q4_K:
            b[:, 0:2] = _f16_bytes(np.full(len(b), 2e-4))
            b[:, 2:4] = _f16_bytes(np.full(len(b), 1e-4))
        else:
            b[:, 208:210] = _f16_bytes(np.full(len(b), 1e-4))
        return b.reshape(rows, -1)
    v = x.reshape(-1, 32).astype(np.float32)
    if qt == QT.Q8_0:
        d = np.abs(v).max(axis=1) / 127.0
        q = np.round(v * _inv(d)[:, None]).astype(np.int8).view(np.uint8)
        out = np.concatenate([_f16_bytes(d), q], axis=1)
    elif qt == QT.Q4_0:
        d = _signed_absmax(v) / -8.0
        q = np.clip(np.trunc(v * _inv(d)[:, None] + 8.5), 0, 15).astype(np.uint8)
        out = np.concatenate([_f16_bytes(d), _pack_nibbles(q)], axis=1)
    elif qt == QT.Q4_1:
        mn, mx = v.min(axis=1), v.max(axis=1)
        d = (mx - mn) / 15.0
        q = np.clip(np.trunc((v - mn[:, None]) * _inv(d)[:, None] + 0.5), 0, 15).astype(np.uint8)
        out = np.concatenate([_f16_bytes(d), _f16_bytes(mn), _pack_nibbles(q)], axis=1)
    elif qt == QT.Q5_0:
        d = _signed_absmax(v) / -16.0
        q = np.clip(np.trunc(v * _inv(d)[:, None] + 16.5), 0, 31).astype(np.uint32)
        qh = ((q >> 4) << np.arange(32, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)
        out = np.concatenate([_f16_bytes(d), qh.astype("<u4").view(np.uint8).reshape(-1, 4),
                              _pack_nibbles((q & 15).astype(np.uint8))], axis=1)
    else:
        raise ValueError(f"no big-file quantizer for {qt.name}")
    return out.reshape(rows, -1)


def _big_vocab(n: int) -> tuple[list[str], list[int], list[float]]:
    """SentencePiece-style: <unk> <s> </s>, the 256 byte pieces, then distinct filler
    pieces (the benchmark feeds token ids, never text)."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [TT_UNKNOWN, TT_CONTROL, TT_CONTROL] + [TT_BYTE] * 256
    fill = ["\u2581"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    fill += [f"\u2581w{i}" for i in range(n - len(tokens) - len(fill))]
    scores = [0.0] * len(tokens) + [-float(i) for i in range(len(fill))]
    return tokens + fill, types + [TT_NORMAL] * len(fill), scores


def _big_header(path: Path, shape: str, t: str, plan) -> int:
    v = BIG_SHAPES[shape]
    a = v["arch"]
    w = gguf.GGUFWriter(str(path), a)
    w.add_string("general.name", f"rocmforge-bench-{shape}-{t}")
    w.add_uint32("general.file_type", _BIG_FILE_TYPES[t])
    w.add_uint32("general.quantization_version", gguf.GGML_QUANT_VERSION)
    for key, val in (("context_length", v["n_ctx"]), ("embedding_length", v["n_embd"]),
                     ("block_count", v["n_layer"]), ("feed_forward_length", v["n_ff"]),
                     ("attention.head_count", v["n_head"]),
                     ("attention.head_count_kv", v["n_head_kv"]),
                     ("rope.dimension_count", v["head_dim"]), ("vocab_size", v["n_vocab"])):
        w.add_uint32(f"{a}.{key}", val)
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", v["eps"])
    w.add_float32(f"{a}.rope.freq_base", v["rope_base"])
    tokens, types, scores = _big_vocab(v["n_vocab"])
    w.add_string("tokenizer.ggml.model", "llama")
    w.add_array("tokenizer.ggml.tokens", tokens)
    w.add_array("tokenizer.ggml.token_type", types)
    w.add_array("tokenizer.ggml.scores", scores)
    w.add_uint32("tokenizer.ggml.bos_token_id", 1)
    w.add_uint32("tokenizer.ggml.eos_token_id", 2)
    w.add_uint32("tokenizer.ggml.unknown_token_id", 0)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    for name, shp, qt, nbytes in plan:
        if qt == QT.F32:
            w.add_tensor_info(name, shp, np.dtype(np.float32), nbytes)
        elif qt == QT.F16:
            w.add_tensor_info(name, shp, np.dtype(np.float16), nbytes)
        else:
            bs, ts = gguf.GGML_QUANT_SIZES[qt]
            w.add_tensor_info(name, (shp[0], shp[1] // bs * ts), np.dtype(np.uint8), nbytes, qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    return (path.stat().st_size + 31) // 32 * 32


def _big_chunk(job) -> None:
    path, off, rows, cols, r0, r1, qt_id, seed = job
    qt = QT(qt_id)
    rng = np.random.default_rng(seed)
    if qt == QT.F32:
        data = np.ones((r1 - r0, cols), dtype=np.float32).view(np.uint8)
    elif qt in (QT.Q4_K, QT.Q6_K):
        data = quantize_big(np.empty((r1 - r0, cols), dtype=np.float32), qt, rng)
    else:
        x = rng.standard_normal((r1 - r0, cols), dtype=np.float32) * np.float32(0.02)
        data = quantize_big(x, qt, rng)
    row_bytes = data.shape[1]
    mm = np.memmap(path, dtype=np.uint8, mode="r+", offset=off + r0 * row_bytes,
                   shape=((r1 - r0) * row_bytes,))
    mm[:] = data.reshape(-1)
    mm.flush()
    del mm


def write_big_model(shape: str, t: str, out_dir: Path, jobs: int) -> Path:
    import multiprocessing as mp
    v = BIG_SHAPES[shape]
    path = Path(out_dir) / f"{shape}-{t}.gguf"
    plan = []
    for name, shp, _kind in tensor_plan(v):
        qt = big_tensor_type(name, t, v["n_layer"])
        rows, cols = (1, shp[0]) if len(shp) == 1 else shp
        bs, ts = gguf.GGML_QUANT_SIZES[qt]
        plan.append((name, shp, qt, rows * cols // bs * ts))
    data_start = _big_header(path, shape, t, plan)
    total, work, off = 0, [], data_start
    for i, (name, shp, qt, nbytes) in enumerate(plan):
        rows, cols = (1, shp[0]) if len(shp) == 1 else shp
        step = max(1, (1 << 24) // (cols * 4))
        work += [(str(path), off, rows, cols, r0, min(rows, r0 + step), int(qt),
                  (SEED, i, r0)) for r0 in range(0, rows, step)]
        off += (nbytes + 31) // 32 * 32
        total += nbytes
    with open(path, "r+b") as f:
        f.truncate(off)
    with mp.Pool(jobs) as pool:
        for _ in pool.imap_unordered(_big_chunk, work, chunksize=4):
            pass
    print(f"{path}: {total} bytes of tensors", file=sys.stderr)
    return path


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", nargs="?")
    ap.add_argument("names", nargs="*")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--big", choices=sorted(BIG_SHAPES), help="a benchmark-size file (see above)")
    ap.add_argument("--big-type", choices=BIG_TYPES, default="q4_0")
    ap.add_argument("--jobs", type=int, default=0, help="processes for --big (0: all CPUs)")
    args = ap.parse_args(argv)
    if args.big:
        import os
        if not args.out_dir:
            ap.error("OUT_DIR is required")
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
        print(write_big_model(args.big, args.big_type, Path(args.out_dir),
                              args.jobs or os.cpu_count() or 1))
        return 0
    if args.list:
        print("\n".join(model_names()))
        return 0
    if not args.out_dir:
        ap.error("OUT_DIR is required")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for n in args.names or model_names():
        print(write_model(n, out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
