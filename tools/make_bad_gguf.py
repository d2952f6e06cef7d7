#!/usr/bin/env python3
"""Writes the GGUF parser corpus: small valid files and handcrafted bad ones.

    tests/fixtures/bad_gguf/valid_*.gguf   files that must parse (values checked by
                                           tests/unit/test_gguf.c)
    tests/fixtures/bad_gguf/<name>.gguf    files that must be rejected
    tests/fixtures/bad_gguf/expected.txt   "<file>\t<substring of the error message>"
    fuzz/corpus/gguf/                      seed corpus for fuzz/fuzz_gguf.c

Files are built byte by byte with struct so that each defect is exactly the one named.
The valid files are also read back with gguf-py's GGUFReader as an independent check.

usage: python tools/make_bad_gguf.py [--root REPO]
"""
import argparse
import os
import struct
import sys

# metadata value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
              BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}
# tensor types: (id, elements per block, bytes per block)
T_F32, T_F16, T_Q4_0, T_Q8_0 = (0, 1, 4), (1, 1, 2), (2, 32, 18), (8, 32, 34)


def u32(x):
    return struct.pack("<I", x)


def u64(x):
    return struct.pack("<Q", x)


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return u64(len(b)) + b


def scalar(t, x):
    return struct.pack(SCALAR_FMT[t], x)


def kv(key, t, payload):
    """payload: the encoded value (without its type)."""
    return gstr(key) + u32(t) + payload


def kv_scalar(key, t, x):
    return kv(key, t, scalar(t, x))


def kv_str(key, s):
    return kv(key, STR, gstr(s))


def arr_body(elem_t, items):
    """An array value without its leading ARR tag; items already encoded."""
    return u32(elem_t) + u64(len(items)) + b"".join(items)


def arr_scalars(elem_t, xs):
    return arr_body(elem_t, [scalar(elem_t, x) for x in xs])


def arr_strs(xs):
    return arr_body(STR, [gstr(x) for x in xs])


def tinfo(name, dims, ttype, offset):
    return (gstr(name) + u32(len(dims)) + b"".join(u64(d) for d in dims) + u32(ttype[0])
            + u64(offset))


def nbytes(dims, ttype):
    n = 1
    for d in dims:
        n *= d
    return n // ttype[1] * ttype[2]


def pad_to(n, align):
    return (align - n % align) % align


class Tensor:
    def __init__(self, name, dims, ttype, data=None, offset=None):
        self.name, self.dims, self.ttype, self.offset = name, dims, ttype, offset
        size = nbytes(dims, ttype)
        self.data = data if data is not None else bytes((i * 7 + 3) & 0xFF for i in range(size))
        assert len(self.data) == size, name


def gguf(kvs, tensors=(), version=3, align=32, n_kv=None, n_tensors=None, magic=b"GGUF"):
    """A whole file. Offsets of tensors without one are laid out in order, aligned."""
    head = magic + u32(version) + u64(len(tensors) if n_tensors is None else n_tensors)
    head += u64(len(kvs) if n_kv is None else n_kv) + b"".join(kvs)
    off, blobs = 0, []
    for t in tensors:
        if t.offset is None:
            off += pad_to(off, align)
            t.offset = off
        blobs.append((t.offset, t.data))
        off = max(off, t.offset + len(t.data))
    infos = b"".join(tinfo(t.name, t.dims, t.ttype, t.offset) for t in tensors)
    body = head + infos
    if not tensors:
        return body
    body += b"\0" * pad_to(len(body), align)
    data = bytearray(off)
    for o, d in blobs:
        data[o:o + len(d)] = d
    return body + bytes(data)


def nested(depth, leaf):
    """An array value nested depth levels deep around the encoded innermost array."""
    v = leaf
    for _ in range(depth - 1):
        v = u32(ARR) + u64(1) + v
    return v


# ---------------------------------------------------------------- valid files

def f32_data(xs):
    return b"".join(struct.pack("<f", x) for x in xs)


def f16_data(xs):
    return b"".join(struct.pack("<e", x) for x in xs)


def valid_all():
    """Every value type, arrays of each kind, nested arrays, four tensor types."""
    kvs = [
        kv_str("general.architecture", "test"),
        kv_str("general.name", "all value types"),
        kv_scalar("t.u8", U8, 200),
        kv_scalar("t.i8", I8, -100),
        kv_scalar("t.u16", U16, 60000),
        kv_scalar("t.i16", I16, -30000),
        kv_scalar("t.u32", U32, 4000000000),
        kv_scalar("t.i32", I32, -2000000000),
        kv_scalar("t.f32", F32, 1.5),
        kv_scalar("t.bool", BOOL, 1),
        kv_str("t.str", "h\u00e9llo"),
        kv_scalar("t.u64", U64, (1 << 63) + 5),
        kv_scalar("t.i64", I64, -(1 << 62) - 7),
        kv_scalar("t.f64", F64, -2.25e300),
        kv("t.arr.u8", ARR, arr_scalars(U8, [1, 2, 255])),
        kv("t.arr.i8", ARR, arr_scalars(I8, [-1, 0, 127])),
        kv("t.arr.u16", ARR, arr_scalars(U16, [65535])),
        kv("t.arr.i16", ARR, arr_scalars(I16, [-32768, 5])),
        kv("t.arr.u32", ARR, arr_scalars(U32, [7, 4294967295])),
        kv("t.arr.i32", ARR, arr_scalars(I32, [-5, 6, -7, 8, -9])),
        kv("t.arr.f32", ARR, arr_scalars(F32, [0.25, -8.0])),
        kv("t.arr.bool", ARR, arr_scalars(BOOL, [1, 0, 1])),
        kv("t.arr.u64", ARR, arr_scalars(U64, [1 << 40])),
        kv("t.arr.i64", ARR, arr_scalars(I64, [-(1 << 40)])),
        kv("t.arr.f64", ARR, arr_scalars(F64, [3.5e-200])),
        kv("t.arr.str", ARR, arr_strs(["a", "", "ccc"])),
        kv("t.arr.empty", ARR, arr_scalars(I32, [])),
        # arrays of arrays: each element is { u32 elem_type, u64 n, elements }
        kv("t.nested", ARR, arr_body(ARR, [arr_scalars(I32, [1, 2]), arr_scalars(I32, [3]),
                                           arr_scalars(I32, [])])),
        kv("t.nested_str", ARR, arr_body(ARR, [arr_strs(["x", "yy"]), arr_strs(["zzz"])])),
        kv("t.deep", ARR, nested(8, arr_scalars(U8, [7]))),  # at the depth limit
        kv_scalar("test.block_count", U32, 2),
        kv_scalar("test.rope.freq_base", F32, 10000.0),
        kv_scalar("test.use_bias", BOOL, 0),
        kv("test.layer_sizes", ARR, arr_scalars(I32, [10, 20, 30, 40, 50, 60])),
        kv_str("tokenizer.ggml.model", "gpt2"),
        kv("tokenizer.ggml.tokens", ARR, arr_strs(["a", "b", "c"])),
        kv_scalar("tokenizer.ggml.bos_token_id", U32, 1),
        kv_scalar("tokenizer.ggml.eos_token_id", U32, 2),
        kv_str("tokenizer.chat_template", "{{ messages }}"),
    ]
    tensors = [
        Tensor("f32.weight", [3, 2], T_F32, f32_data([0, 1, 2, 3, 4, 5])),
        Tensor("f16.weight", [4], T_F16, f16_data([1, 2, 3, 4])),
        Tensor("q8.weight", [32, 2], T_Q8_0),
        Tensor("q4.weight", [64, 1, 1, 1], T_Q4_0),
    ]
    return gguf(kvs, tensors)


def valid_v2():
    return gguf([kv_str("general.architecture", "test"), kv_scalar("test.block_count", U32, 1)],
                [Tensor("w", [2, 2], T_F32, f32_data([1, -1, 2, -2]))], version=2)


def valid_align64():
    """alignment 64, with the tensor infos ending where 32 would start the data earlier."""
    tensors = [Tensor("a", [8], T_F32, f32_data(range(8))),
               Tensor("b", [4], T_F32, f32_data([9, 8, 7, 6]))]
    for pad in range(64):
        kvs = [kv_scalar("general.alignment", U32, 64), kv_str("general.architecture", "test"),
               kv_str("test.pad", "p" * pad)]
        infos_end = 24 + sum(map(len, kvs)) + sum(len(tinfo(t.name, t.dims, t.ttype, 0))
                                                 for t in tensors)
        if 0 < infos_end % 64 <= 32:
            return gguf(kvs, tensors, align=64)
    raise AssertionError("unreachable")


def valid_no_tensors():
    return gguf([kv_str("general.architecture", "test"), kv_scalar("x.y", I32, 5)])


def valid_minimal():
    return gguf([])


VALID = {
    "valid_v3_all.gguf": valid_all,
    "valid_v2.gguf": valid_v2,
    "valid_align64.gguf": valid_align64,
    "valid_no_tensors.gguf": valid_no_tensors,
    "valid_minimal.gguf": valid_minimal,
}

# ---------------------------------------------------------------- bad files

HDR = b"GGUF" + u32(3)


def header(n_tensors, n_kv):
    return HDR + u64(n_tensors) + u64(n_kv)


def one_tensor(t, kvs=None):
    return gguf(kvs if kvs is not None else [kv_str("general.architecture", "test")], [t])


def bad_files():
    """(name, bytes, expected substring of the message)"""
    arch = kv_str("general.architecture", "test")
    w = lambda: Tensor("w", [4], T_F32)  # noqa: E731
    base = gguf([arch], [w()])
    key = gstr("general.architecture")
    b = []
    add = lambda name, data, msg: b.append((name, data, msg))  # noqa: E731

    # empty and truncated at each section
    add("empty.gguf", b"", "empty")
    add("trunc_magic.gguf", b"GG", "magic at byte 0 needs 4 bytes, 2 remain")
    add("trunc_version.gguf", b"GGUF\x03\x00", "version at byte 4 needs 4 bytes")
    add("trunc_n_tensors.gguf", HDR + b"\x01\x00\x00", "n_tensors at byte 8 needs 8 bytes")
    add("trunc_n_kv.gguf", HDR + u64(0) + b"\x01", "n_kv at byte 16 needs 8 bytes")
    # (n_kv is first checked against the bytes left: 14 per key-value at least)
    add("trunc_key_length.gguf", header(0, 2) + kv_scalar("a.b.c.d.e.f", U8, 1) + b"\x05\0\0\0\0",
        "metadata key #1: truncated: key length at byte 48 needs 8 bytes, 5 remain")
    add("trunc_key.gguf", header(0, 1) + u64(20) + b"general.a",
        "key length 20 at byte 24 exceeds remaining 9 bytes")
    add("trunc_value_type.gguf", header(0, 1) + key + b"\x08\x00", "value type at byte 52")
    add("trunc_value.gguf", header(0, 1) + gstr("a.b") + u32(U32) + b"\x01\x02",
        "'a.b': truncated: uint32 at byte 39 needs 4 bytes, 2 remain")
    add("trunc_string_value.gguf", header(0, 1) + key + u32(STR) + u64(20) + b"llama",
        "string length 20 at byte 56 exceeds remaining 5 bytes")
    add("trunc_array_header.gguf", header(0, 1) + gstr("a") + u32(ARR) + b"\x04\x00",
        "array element type at byte 37")
    add("trunc_array.gguf", header(0, 1) + gstr("a") + u32(ARR) + u32(U32) + u64(10) + b"\0" * 12,
        "array length 10 at byte 41 exceeds remaining 12 bytes")
    add("trunc_array_strings.gguf",
        header(0, 1) + gstr("a") + u32(ARR) + u32(STR) + u64(3) + gstr("ab") + u64(100) + b"x" * 20,
        "string length 100 at byte 59 exceeds remaining 20 bytes")
    t_name = header(1, 1) + kv_str("a", "b")
    # (n_tensors is checked against the bytes left after the metadata, 33 per tensor at least,
    # so the cut is in the second of two infos, the first with a 40-byte name)
    t2 = header(2, 1) + kv_str("a", "b") + tinfo("x" * 40, [64], T_F32, 0)
    add("trunc_tensor_name.gguf", t2 + u64(20) + b"blk.0.attn_q.",
        "tensor #1: tensor name length 20 at byte 118 exceeds remaining 13 bytes")
    add("trunc_tensor_dims.gguf", t2 + gstr("w") + u32(2) + u64(4) + b"\x04" * 7,
        "tensor #1 'w': truncated: dimension at byte 139 needs 8 bytes, 7 remain")
    add("trunc_tensor_offset.gguf", t2 + gstr("w") + u32(1) + u64(4) + u32(0) + b"\0\0\0",
        "tensor #1 'w': truncated: offset at byte 143 needs 8 bytes, 3 remain")
    add("trunc_data.gguf", base[:-5], "data range [")
    add("trunc_no_data.gguf", base[:-16], "exceeds file size")

    # header
    add("bad_magic.gguf", b"GGML" + base[4:], "bad magic at byte 0")
    add("version1.gguf", b"GGUF" + u32(1) + u32(0) + u32(0), "version 1 at byte 4 is not supported")
    add("version4.gguf", b"GGUF" + u32(4) + base[8:], "version 4 at byte 4 is not supported")
    add("version_huge.gguf", b"GGUF" + u32(0x7FFF0000) + base[8:], "is not supported")
    add("big_endian.gguf", b"GGUF" + struct.pack(">IQQ", 3, 0, 1) + struct.pack(">Q", 1) + b"a"
        + struct.pack(">I", U8) + b"\x01", "big-endian")
    add("huge_n_kv.gguf", header(0, 1 << 62) + base[24:], "n_kv 4611686018427387904 at byte 16 exceeds the limit of 1048576")
    add("huge_n_tensors.gguf", header(2**64 - 1, 1) + base[24:],
        "n_tensors 18446744073709551615 at byte 8 exceeds the limit")
    add("many_kv.gguf", header(0, 1000) + base[24:],
        "n_kv 1000 at byte 16 exceeds what the remaining 120 bytes can hold")
    add("many_tensors.gguf", header(1000, 1) + base[24:],
        "n_tensors 1000 at byte 8 exceeds what the remaining 120 bytes can hold")
    add("n_tensors_after_kv.gguf", header(3, 1) + key + u32(STR) + gstr("x" * 100),
        "n_tensors 3 at byte 8 exceeds what the remaining 0 bytes after the metadata can hold")

    # metadata
    add("huge_array_len.gguf", header(0, 1) + gstr("a") + u32(ARR) + u32(U8) + u64(1 << 63) + b"\0" * 8,
        "array length 9223372036854775808 at byte 41")
    add("huge_array_len_str.gguf", header(0, 1) + gstr("a") + u32(ARR) + u32(STR) + u64(1 << 61)
        + gstr("x"), "array length 2305843009213693952 at byte 41")
    add("huge_array_len_nested.gguf", header(0, 1) + gstr("a") + u32(ARR) + u32(ARR) + u64(2**64 - 1)
        + arr_scalars(U8, [1]), "array length 18446744073709551615 at byte 41")
    add("huge_string_len.gguf", header(0, 1) + key + u32(STR) + u64(2**64 - 1) + b"llama",
        "string length 18446744073709551615 at byte 56 exceeds remaining 5 bytes")
    add("huge_string_len_32.gguf", header(0, 1) + key + u32(STR) + u64(2**32 - 1) + b"x" * 80,
        "string length 4294967295 at byte 56 exceeds remaining 80 bytes")
    add("huge_key_len.gguf", header(0, 1) + u64(2**64 - 1) + b"abcdefgh",
        "key length 18446744073709551615 at byte 24 exceeds the limit of 65535")
    add("long_key.gguf", header(0, 1) + u64(65536) + b"a" * 64, "key length 65536 at byte 24")
    add("empty_key.gguf", header(0, 1) + gstr("") + u32(STR) + gstr("abc"), "empty key at byte 24")
    add("nul_key.gguf", header(0, 1) + gstr("a\0b") + u32(U8) + b"\1", "contains a NUL byte")
    add("unknown_vtype.gguf", header(0, 1) + gstr("x.y") + u32(13) + u32(0),
        "metadata key #0 'x.y': unknown value type 13 at byte 35")
    add("unknown_vtype_huge.gguf", header(0, 1) + gstr("x.y") + u32(0xFFFFFFFF) + u32(0),
        "unknown value type 4294967295")
    add("unknown_array_type.gguf", header(0, 2) + arch + gstr("x.arr") + u32(ARR) + u32(13) + u64(1)
        + u32(0), "metadata key #1 'x.arr': unknown array element type 13")
    add("dup_key.gguf", header(0, 3) + arch + kv_scalar("x.y", U8, 1) + kv_scalar("x.y", U32, 2),
        "metadata key #2 'x.y' at byte 84 duplicates key #1")
    add("bad_bool.gguf", header(0, 1) + kv_scalar("x.flag", BOOL, 2), "bool value 2 at byte 42")
    add("bad_bool_array.gguf", header(0, 1) + kv("x.flags", ARR, arr_scalars(BOOL, [1, 0, 7])),
        "bool value 7 at byte 57")
    add("deep_nesting.gguf", header(0, 1) + kv("x", ARR, nested(9, arr_scalars(U8, [1]))),
        "nested 9 deep exceeds the limit of 8")
    add("deep_nesting_1000.gguf", header(0, 1) + kv("x", ARR, nested(1000, arr_scalars(U8, [1]))),
        "nested 9 deep exceeds the limit of 8")
    add("align0.gguf", gguf([kv_scalar("general.alignment", U32, 0)]),
        "'general.alignment' at byte 24: value 0 must be a non-zero power of two")
    add("align48.gguf", gguf([arch, kv_scalar("general.alignment", U32, 48)], [w()]),
        "value 48 must be a non-zero power of two")
    add("align_negative.gguf", gguf([kv_scalar("general.alignment", I32, -32)]),
        "value -32 must be a non-zero power of two")
    add("align_string.gguf", gguf([kv_str("general.alignment", "32")]),
        "has type string, expected an unsigned integer")

    # tensor infos
    add("ndims0.gguf", t_name + gstr("w") + u32(0) + u32(0) + u64(0) + b"\0" * 32,
        "n_dims 0 at byte 55 is not in 1..4")
    add("ndims5.gguf", one_tensor(Tensor("w", [1, 1, 1, 1, 2], T_F32)), "n_dims 5 at byte")
    add("dim_zero.gguf", t_name + gstr("w") + u32(2) + u64(4) + u64(0) + u32(0) + u64(0),
        "dimension 1 = 0 at byte 67")
    add("dim_negative.gguf", t_name + gstr("w") + u32(1) + u64(1 << 63) + u32(0) + u64(0),
        "dimension 0 = 9223372036854775808")
    add("dims_overflow.gguf", t_name + gstr("w") + u32(3) + u64(1 << 32) * 3 + u32(0) + u64(0),
        "element count of dims [4294967296, 4294967296, 4294967296, 1] at byte 55 overflows")
    add("bytes_overflow.gguf", t_name + gstr("w") + u32(2) + u64(1 << 31) + u64(1 << 31) + u32(0)
        + u64(0), "byte size of 4611686018427387904 elements of type F32 (dims at byte 55) overflows")
    # one row whose byte size alone wraps: (2^62 + 8) elements x 4 bytes = 32 mod 2^64
    add("row_bytes_overflow.gguf", t_name + gstr("w") + u32(1) + u64((1 << 62) + 8) + u32(0)
        + u64(0), "byte size of 4611686018427387912 elements of type F32 (dims at byte 55) overflows")
    add("long_tensor_name.gguf", one_tensor(Tensor("n" * 257, [4], T_F32)),
        "tensor name length 257 at byte 68 exceeds the limit of 256")
    add("empty_tensor_name.gguf", one_tensor(Tensor("", [4], T_F32)), "empty tensor name at byte 68")
    add("nul_tensor_name.gguf", one_tensor(Tensor("a\0b", [4], T_F32)), "contains a NUL byte")
    add("unknown_type.gguf", gguf([arch], [w(), Tensor("bad.weight", [4], (99, 1, 1))]),
        "tensor #1 'bad.weight': unknown type id 99")
    add("gap_type.gguf", one_tensor(Tensor("w", [32], (4, 32, 20))), "unknown type id 4")
    add("bad_block.gguf", one_tensor(Tensor("q", [33], (8, 33, 34))),
        "ne[0] = 33 at byte 81 is not a multiple of the block size 32 of type Q8_0")
    add("misaligned_offset.gguf", one_tensor(Tensor("w", [4], T_F32, offset=16)),
        "offset 16 at byte 93 is not a multiple of the alignment 32")
    add("offset_beyond.gguf", one_tensor(Tensor("w", [4], T_F32, offset=4096))[:-4096],
        "exceeds file size")
    add("offset_overflow.gguf", t_name + gstr("w") + u32(1) + u64(4) + u32(0) + u64(2**64 - 32),
        "overflows")
    add("dup_tensor.gguf", gguf([arch], [w(), Tensor("w", [4], T_F32)]),
        "duplicate tensor name: tensor #1 'w' at byte 101 repeats tensor #0 at byte 68")
    add("overlap.gguf", gguf([arch], [Tensor("a", [16], T_F32), Tensor("b", [4], T_F32, offset=32)]),
        "data ranges [160, 224) and [192, 208) overlap")
    return b


def check_valid_with_reference(path):
    try:
        from gguf import GGUFReader
    except ImportError:
        return
    GGUFReader(path)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


SEEDS = ["valid_v3_all.gguf", "valid_v2.gguf", "valid_align64.gguf", "valid_no_tensors.gguf",
         "trunc_data.gguf", "dup_key.gguf", "deep_nesting.gguf", "overlap.gguf",
         "unknown_type.gguf", "misaligned_offset.gguf"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    args = ap.parse_args()
    out = os.path.join(args.root, "tests", "fixtures", "bad_gguf")
    seeds = os.path.join(args.root, "fuzz", "corpus", "gguf")
    os.makedirs(out, exist_ok=True)
    os.makedirs(seeds, exist_ok=True)
    for f in os.listdir(out):
        if f.endswith(".gguf"):
            os.remove(os.path.join(out, f))
    files = {}
    for name, fn in VALID.items():
        files[name] = fn()
        write(os.path.join(out, name), files[name])
        check_valid_with_reference(os.path.join(out, name))
    lines = ["# file\tsubstring the error message must contain (tools/make_bad_gguf.py)"]
    names = set()
    for name, data, msg in bad_files():
        assert name not in names and not name.startswith("valid_"), name
        names.add(name)
        files[name] = data
        write(os.path.join(out, name), data)
        lines.append(f"{name}\t{msg}")
    write(os.path.join(out, "expected.txt"), ("\n".join(lines) + "\n").encode())
    for name in SEEDS:
        write(os.path.join(seeds, name), files[name])
    total = sum(len(d) for d in files.values())
    print(f"{len(files)} files ({len(VALID)} valid), {total} bytes -> {out}; "
          f"{len(SEEDS)} seeds -> {seeds}", file=sys.stderr)


if __name__ == "__main__":
    main()
