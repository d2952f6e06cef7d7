#!/usr/bin/env python3
"""Writes tests/fixtures/quant/ggml_dot_<TYPE>.bin: dot products computed by
llama.cpp's CPU kernels (the libggml-cpu.so shipped with llama-cpp-python, built
for an AVX2/FMA/F16C x86-64 CPU), so the test can hold our AVX2 kernels to them
bit for bit without llama.cpp at test time.

Run with the reference venv:  /work/ref/venv/bin/python tools/make_quant_ggml_fixtures.py
Generate on an AVX2 machine without AVX-512 (the library picks its kernels at run
time; the fixtures must come from its AVX2 ones). The script refuses otherwise.

File (little-endian, header fields uint32):
  magic "RFGD", type id, activation (vec_dot_type) id, n, rows,
  rows * row_size(type, n) weight bytes (random valid blocks, as make_quant_fixtures),
  n float32 activations,
  row_size(vec_dot_type, n) bytes = ggml's from_float(activations),
  rows float32 = ggml's vec_dot(n, weight row r, those activation bytes).
"""
import ctypes
import os
import struct
import sys

import numpy as np
import llama_cpp
from gguf import GGMLQuantizationType as T

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_quant_fixtures as mqf  # noqa: E402  (random valid blocks, block sizes)

OUT = mqf.OUT
# (weight type, n): n not a multiple of 32 for the float types exercises the remainders
CASES = [(T.F32, 583), (T.F16, 583), (T.BF16, 583), (T.Q4_0, 576), (T.Q4_1, 576), (T.Q5_0, 576),
         (T.Q5_1, 576), (T.Q8_0, 576), (T.Q4_K, 768), (T.Q6_K, 768)]
ROWS = 16


class Traits(ctypes.Structure):
    _fields_ = [("from_float", ctypes.c_void_p), ("vec_dot", ctypes.c_void_p),
                ("vec_dot_type", ctypes.c_int), ("nrows", ctypes.c_int64)]


FROM = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
DOT = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                       ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


def load_ggml():
    flags = open("/proc/cpuinfo").read()
    if " avx2 " not in flags or " avx512f " in flags:
        sys.exit("need an AVX2 CPU without AVX-512 (the fixtures hold the AVX2 kernels' results)")
    lib = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-cpu.so"))
    lib.ggml_cpu_init()
    lib.ggml_get_type_traits_cpu.restype = ctypes.POINTER(Traits)
    lib.ggml_get_type_traits_cpu.argtypes = [ctypes.c_int]
    return lib


def row_size(qtype, n):
    bs, ts = mqf.q8_sizes(qtype)
    return n // bs * ts


def float_weights(qtype, count):
    """Float types: values +-[1e-3, 10) (as the unit test's random blocks)."""
    v = (np.where(mqf.rng.random(count) < 0.5, -1, 1) * 10.0 ** mqf.rng.uniform(-3, 1, count)).astype(np.float32)
    if qtype == T.F32:
        return v.view(np.uint8)
    if qtype == T.F16:
        return v.astype(np.float16).view(np.uint8)
    return (v.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)  # BF16, truncated


def write_case(lib, qtype, n):
    tr = lib.ggml_get_type_traits_cpu(int(qtype)).contents
    act = T(tr.vec_dot_type)
    if qtype in (T.F32, T.F16, T.BF16):
        w = float_weights(qtype, n * ROWS)
    else:
        w = mqf.random_blocks(qtype, n // mqf.q8_sizes(qtype)[0] * ROWS).reshape(-1)
    w = np.ascontiguousarray(w, dtype=np.uint8)
    assert w.size == row_size(qtype, n) * ROWS
    x = (mqf.rng.standard_normal(n) * np.float32(10.0) ** mqf.rng.uniform(-2, 1)).astype(np.float32)
    xq = np.zeros(row_size(act, n), dtype=np.uint8)
    conv = lib.ggml_get_type_traits_cpu(int(act)).contents.from_float
    if conv:
        FROM(conv)(x.ctypes.data, xq.ctypes.data, n)
    else:  # F32 activations are used as they are
        assert act == T.F32
        xq[:] = x.view(np.uint8)
    dot = DOT(tr.vec_dot)
    out = np.zeros(ROWS, dtype=np.float32)
    rs = row_size(qtype, n)
    for r in range(ROWS):
        s = ctypes.c_float()
        dot(n, ctypes.addressof(s), 0, w.ctypes.data + r * rs, 0, xq.ctypes.data, 0, 1)
        out[r] = s.value
    assert np.all(np.isfinite(out)), qtype.name
    with open(os.path.join(OUT, f"ggml_dot_{qtype.name}.bin"), "wb") as fh:
        fh.write(b"RFGD" + struct.pack("<4I", int(qtype), int(act), n, ROWS))
        fh.write(w.tobytes())
        fh.write(x.tobytes())
        fh.write(xq.tobytes())
        fh.write(out.tobytes())


def main():
    np.seterr(over="ignore")
    lib = load_ggml()
    for qtype, n in CASES:
        write_case(lib, qtype, n)
    print(f"wrote {len(CASES)} files to {os.path.normpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
