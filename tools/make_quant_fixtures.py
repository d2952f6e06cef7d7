#!/usr/bin/env python3
"""Writes the quantization fixtures under tests/fixtures/quant/ from gguf-py.

Run with the reference venv:  /work/ref/venv/bin/python tools/make_quant_fixtures.py

Files (little-endian, all header fields uint32):
  deq_<TYPE>.bin   magic "RFDQ", type id, n_blocks, block_size, type_size,
                   then n_blocks*type_size block bytes,
                   then n_blocks*block_size float32 = gguf.quants.dequantize(bytes)
  q_<TYPE>.bin     magic "RFQZ", type id, n_elems, n_bytes,
                   then n_elems float32 inputs, then n_bytes = gguf.quants.quantize(inputs)
  sizes.txt        "id name block_size type_size" for every gguf-py type (GGML_QUANT_SIZES)

Random blocks: random bytes are valid codes for every type; only the scale fields
are overwritten so every result is finite: f16 scales are float16(+-10^U(-3,1)),
with a few blocks forced to +0, -0, the smallest subnormal (0x0001), the largest
subnormal (0x03ff) and 1.0 so those paths are covered; MXFP4's E8M0 exponent is
drawn from 0..252 (0, 1, 2 forced in the first blocks: the subnormal path) since
e >= 253 times the largest code overflows f32; Q8_K's f32 scale is +-10^U(-6,-1).

gguf-py 0.19 has no Q8_1 or Q8_K (activation-only types). Their fixtures come from
the numpy functions below, written from ggml's reference quantizer algorithm
(quantize_row_q8_1_ref / quantize_row_q8_K_ref), not from gguf-py.
"""
import os
import struct
import sys

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf import quants

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "quant")
rng = np.random.default_rng(20240611)

# (type, n_blocks) for the dequantize fixtures
DEQ_TYPES = [
    (T.F32, 1024), (T.F16, 4096), (T.BF16, 4096),
    (T.Q4_0, 256), (T.Q4_1, 256), (T.Q5_0, 256), (T.Q5_1, 256), (T.Q8_0, 256),
    (T.Q8_1, 256), (T.Q2_K, 32), (T.Q3_K, 32), (T.Q4_K, 32), (T.Q5_K, 32), (T.Q6_K, 32),
    (T.Q8_K, 32), (T.IQ4_NL, 256), (T.MXFP4, 256),
]

# byte offsets of the f16 scale fields inside each block
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q8_1: [0, 2], T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2],
    T.Q6_K: [208], T.IQ4_NL: [0],
}

SPECIAL_F16 = [0x0000, 0x8000, 0x0001, 0x03FF, 0x3C00, 0x8001]


def q8_sizes(qtype):
    # gguf-py's GGML_QUANT_SIZES still gives Q8_1 the old 40-byte (two f32) layout;
    # ggml and this project use two f16 halves: 36 bytes.
    if qtype == T.Q8_1:
        return 32, 36
    return GGML_QUANT_SIZES[qtype]


def sane_f16(n):
    mag = 10.0 ** rng.uniform(-3, 1, n)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    h = (sign * mag).astype(np.float16).view(np.uint16)
    k = min(n, len(SPECIAL_F16))
    h[:k] = SPECIAL_F16[:k]
    return h


def random_blocks(qtype, n_blocks):
    bs, ts = q8_sizes(qtype)
    if qtype == T.F16:
        h = rng.integers(0, 1 << 16, n_blocks, dtype=np.uint32).astype(np.uint16)
        h = np.where((h & 0x7C00) == 0x7C00, h & 0x83FF, h).astype(np.uint16)  # finite only
        h[:4] = [0x7C00, 0xFC00, 0x0001, 0x8000]  # +-inf are exact too
        return h.view(np.uint8).reshape(n_blocks, ts)
    raw = rng.integers(0, 256, (n_blocks, ts), dtype=np.uint16).astype(np.uint8)
    if qtype == T.F32:
        f = rng.standard_normal(n_blocks).astype(np.float32) * np.float32(10.0) ** rng.integers(-30, 30, n_blocks).astype(np.float32)
        return f.view(np.uint8).reshape(n_blocks, ts)
    if qtype == T.MXFP4:
        raw[:, 0] = rng.integers(0, 253, n_blocks).astype(np.uint8)
        raw[:3, 0] = [0, 1, 2]
    if qtype == T.Q8_K:
        d = (10.0 ** rng.uniform(-6, -1, n_blocks) * np.where(rng.random(n_blocks) < 0.5, -1, 1)).astype(np.float32)
        raw[:, 0:4] = d.view(np.uint8).reshape(n_blocks, 4)
    for off in F16_FIELDS.get(qtype, []):
        raw[:, off:off + 2] = sane_f16(n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw


def dequant_q8_1(raw):
    d = raw[:, 0:2].copy().view(np.float16).astype(np.float32)
    return d * raw[:, 4:].copy().view(np.int8).astype(np.float32)


def dequant_q8_K(raw):
    d = raw[:, 0:4].copy().view(np.float32)
    return d * raw[:, 4:260].copy().view(np.int8).astype(np.float32)


def np_roundf(v):  # half away from zero, as C roundf
    a = np.abs(v)
    f = np.floor(a)
    return np.sign(v) * (f + np.floor(2 * (a - f)))


def quant_q8_1(x):
    blocks = x.reshape(-1, 32).astype(np.float32)
    d = np.abs(blocks).max(axis=1, keepdims=True) / np.float32(127)
    with np.errstate(divide="ignore"):
        idv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    qs = np_roundf(blocks * idv).astype(np.int8)
    s = qs.astype(np.int32).sum(axis=1, keepdims=True).astype(np.float32) * d
    return np.concatenate([d.astype(np.float16).view(np.uint8), s.astype(np.float16).view(np.uint8),
                           qs.view(np.uint8)], axis=1).reshape(-1)


def quant_q8_K(x):
    out = []
    for b in x.reshape(-1, 256).astype(np.float32):
        a = np.abs(b)
        if a.max() == 0:
            out.append(np.zeros(292, np.uint8))
            continue
        mx = b[np.argmax(a)]
        iscale = np.float32(-127.0) / mx
        qs = np.minimum(np.rint(iscale * b), 127).astype(np.int8)  # rint: half to even
        bsums = qs.reshape(16, 16).astype(np.int32).sum(axis=1).astype(np.int16)
        d = np.array([np.float32(1.0) / iscale], np.float32)
        out.append(np.concatenate([d.view(np.uint8), qs.view(np.uint8), bsums.view(np.uint8)]))
    return np.concatenate(out)


def dequantize(qtype, raw):
    if qtype == T.Q8_1:
        return dequant_q8_1(raw)
    if qtype == T.Q8_K:
        return dequant_q8_K(raw)
    return quants.dequantize(raw, qtype)


def write_deq(qtype, n_blocks):
    bs, ts = q8_sizes(qtype)
    raw = random_blocks(qtype, n_blocks)
    f = np.ascontiguousarray(dequantize(qtype, raw), dtype=np.float32).reshape(-1)
    assert f.size == n_blocks * bs
    if qtype not in (T.F16, T.BF16, T.F32):
        assert np.all(np.isfinite(f)), qtype.name
    with open(os.path.join(OUT, f"deq_{qtype.name}.bin"), "wb") as fh:
        fh.write(b"RFDQ" + struct.pack("<4I", int(qtype), n_blocks, bs, ts))
        fh.write(raw.tobytes())
        fh.write(f.tobytes())


def awkward_inputs(block, n_blocks):
    """Blocks of `block` floats: gaussian at awkward magnitudes, zeros, -0, constant
    blocks, all-negative, +-ties of the largest magnitude, exact .5 rounding ties."""
    x = rng.standard_normal((n_blocks, block)).astype(np.float32)
    scales = np.float32(10.0) ** rng.uniform(-6, 5, (n_blocks, 1)).astype(np.float32)
    x *= scales
    specials = [
        np.zeros(block),
        -np.zeros(block),
        np.full(block, 3.25),
        np.full(block, -0.7),
        -np.abs(rng.standard_normal(block)) * 100,
        np.abs(rng.standard_normal(block)) * 1e-3,
        np.concatenate([[-2.0, 2.0], rng.uniform(-1.9, 1.9, block - 2)]),
        np.concatenate([[127.0], np.resize([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 126.5], block - 1)]),
        np.concatenate([[-127.0], np.resize([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 126.5], block - 1)]),
        # just below the .5 ties (127/amax = 1): 0.49999997 must round to 0, not 1
        np.concatenate([[127.0], np.nextafter(np.resize(np.float32([0.5, 1.5, 2.5, -0.5, -3.5, 126.5, 7.5, -64.5]),
                                                        block - 1), np.float32(0))]),
        rng.standard_normal(block) * 1e-30,
        rng.standard_normal(block) * 7e4,
        rng.standard_normal(block) * 1e6,
        np.concatenate([[0.0], rng.standard_normal(block - 1) * 1e-7]),
    ]
    for i, s in enumerate(specials):
        x[i] = np.asarray(s, dtype=np.float32)
    x[len(specials)][block // 2] = 0.0  # zero inside a normal block
    return x.reshape(-1)


def write_q(qtype, x, qbytes):
    qbytes = np.ascontiguousarray(qbytes).view(np.uint8).reshape(-1)
    with open(os.path.join(OUT, f"q_{qtype.name}.bin"), "wb") as fh:
        fh.write(b"RFQZ" + struct.pack("<3I", int(qtype), x.size, qbytes.size))
        fh.write(x.astype(np.float32).tobytes())
        fh.write(qbytes.tobytes())


def write_quant_fixtures():
    for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
        x = awkward_inputs(32, 64)
        write_q(qtype, x, quants.quantize(x.reshape(-1, 32 * 8), qtype))
    x = awkward_inputs(32, 64)
    write_q(T.Q8_1, x, quant_q8_1(x))
    x = awkward_inputs(256, 24)
    write_q(T.Q8_K, x, quant_q8_K(x))
    for qtype in (T.F16, T.BF16):
        x = awkward_inputs(32, 32)
        ties = np.array([1 + 2**-11, 1 + 3 * 2**-11, 65504.0, 65520.0, 65519.99, 6e-8, 3e-8, 2.9e-8,
                         1e-45, -1e-40, 1 + 2**-8, 1 + 3 * 2**-8, 3.4e38, np.inf, -np.inf, -0.0],
                        dtype=np.float32)
        x[: ties.size] = ties
        write_q(qtype, x, quants.quantize(x, qtype))


def write_sizes():
    with open(os.path.join(OUT, "sizes.txt"), "w") as fh:
        fh.write("# id name block_size type_size (gguf-py GGML_QUANT_SIZES)\n")
        for qtype, (bs, ts) in sorted(GGML_QUANT_SIZES.items(), key=lambda kv: int(kv[0])):
            fh.write(f"{int(qtype)} {qtype.name} {bs} {ts}\n")


def main():
    np.seterr(over="ignore")  # scales that overflow f16 to inf are intended test cases
    os.makedirs(OUT, exist_ok=True)
    for qtype, n in DEQ_TYPES:
        write_deq(qtype, n)
    write_quant_fixtures()
    write_sizes()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes to {os.path.normpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
