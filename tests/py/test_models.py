"""`rocmforge models` and `-m NAME`: the listing of a directory of GGUF files (symlinks
to the real models, a synthetic Qwen 2 model, bad files), its columns against a
reading of the same files' headers here, and model names resolved by -m."""
import math
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

BIN = os.environ.get("RF_BIN", "rocmforge")
ROOT = Path(os.environ.get("RF_SOURCE") or Path(__file__).resolve().parents[2])
MODELS = Path(os.environ.get("RF_MODELS", ""))
SMOL = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA = MODELS / "gemma-3-270m-q4_k_m.gguf"
sys.path.insert(0, str(ROOT / "tools"))

import make_test_model as mtm  # noqa: E402

# general.file_type ids of the files used here (llama_ftype).
FILE_TYPES = {3: "Q4_1", 7: "Q8_0", 15: "Q4_K_M"}
ROW = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+\.\d (?:KiB|MiB)|\d+\.\d\d GiB)$")


def rf(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([BIN, *map(str, args)], capture_output=True, timeout=120, env=e)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    assert SMOL.is_file(), f"model not found: {SMOL} (run scripts/setup.sh)"
    d = tmp_path_factory.mktemp("models")
    (d / "smollm2.gguf").symlink_to(SMOL)
    (d / "SmolLM2-copy.gguf").symlink_to(SMOL)
    if GEMMA.is_file():
        (d / "gemma3.gguf").symlink_to(GEMMA)
    qwen = mtm.write_model("qwen2-q8_0", d)
    # The same without general.file_type (the key renamed in place, same length).
    data = qwen.read_bytes()
    assert data.count(b"general.file_type") == 1
    (d / "qwen2-no-ftype.gguf").write_bytes(data.replace(b"general.file_type", b"general.xile_type"))
    (d / "garbage.gguf").write_bytes(b"not a model at all\n")
    with open(SMOL, "rb") as f:  # header and tensor infos, no tensor data
        (d / "truncated.gguf").write_bytes(f.read(4 << 20))
    (d / "dangling.gguf").symlink_to(d / "missing-target")
    (d / "notes.txt").write_text("not listed: not .gguf")
    (d / ".hidden.gguf").symlink_to(SMOL)
    return d


# Independent of the engine's reader: (block elements, bytes) and names of the
# tensor types these files use, and a minimal GGUF header walk (gguf-py reads the
# 262k-token vocabulary of Gemma 3 far too slowly for a test).
TYPES = {0: (1, 4, "F32"), 1: (1, 2, "F16"), 3: (32, 20, "Q4_1"), 8: (32, 34, "Q8_0"),
         12: (256, 144, "Q4_K"), 14: (256, 210, "Q6_K"), 30: (1, 2, "BF16")}
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
           12: "d"}


def read_header(path):
    """Metadata scalars and strings (arrays skipped) and (n_elements, type) per tensor."""
    data = path.read_bytes()[: 64 << 20]
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize(fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        pos += n
        return data[pos - n:pos].decode()

    def value(vtype):
        nonlocal pos
        if vtype in SCALARS:
            return take(SCALARS[vtype])
        if vtype == 8:
            return string()
        etype, n = take("I"), take("Q")
        if etype in SCALARS:
            pos += n * struct.calcsize(SCALARS[etype])
        else:
            for _ in range(n):
                value(etype)
        return None

    assert data[:4] == b"GGUF"
    pos = 8
    n_tensors, n_kv = take("Q"), take("Q")
    kv = {}
    for _ in range(n_kv):
        key = string()
        kv[key] = value(take("I"))
    tensors = []
    for _ in range(n_tensors):
        string()
        dims = [take("Q") for _ in range(take("I"))]
        tensors.append((math.prod(dims), take("I")))
        take("Q")
    return kv, tensors


def expected_row(path):
    """(arch, params, quant, context) of a file."""
    kv, tensors = read_header(path)
    arch = kv["general.architecture"]
    params = sum(n for n, _ in tensors)
    params = f"{params / 1e9:.2f}B" if params >= 1e9 else (
        f"{params / 1e6:.1f}M" if params >= 1e6 else f"{params / 1e3:.1f}K")
    if "general.file_type" in kv:
        quant = FILE_TYPES[kv["general.file_type"]]
    else:  # the type with the most bytes
        by_type = {}
        for n, t in tensors:
            block, size, name = TYPES[t]
            by_type[name] = by_type.get(name, 0) + n // block * size
        quant = max(by_type, key=by_type.get)
    return arch, params, quant, str(kv[f"{arch}.context_length"])


def human_size(n):
    if n >= 1 << 30:
        return f"{n / (1 << 30):.2f} GiB"
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n / 1024:.1f} KiB"


def listing(models_dir):
    code, out, err = rf("models", "--dir", models_dir)
    assert code == 0 and err == "", err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "ARCH", "PARAMS", "QUANT", "CONTEXT", "SIZE"]
    rows = {}
    for line in lines[1:-1]:
        name, rest = line.split(None, 1)
        rows[name] = rest
    return rows, lines[-1]


def test_listing(models_dir):
    rows, summary = listing(models_dir)
    good = ["smollm2", "SmolLM2-copy", "qwen2-q8_0", "qwen2-no-ftype"]
    good += ["gemma3"] if GEMMA.is_file() else []
    bad = ["garbage", "truncated", "dangling"]
    assert sorted(rows) == sorted(good + bad)  # not notes.txt, not .hidden.gguf
    assert summary == f"{len(good)} model{'s' if len(good) > 1 else ''} in {models_dir}, 3 unreadable"
    for name in good:
        path = models_dir / f"{name}.gguf"
        m = ROW.match(f"{name} {rows[name]}")
        assert m, rows[name]
        assert m.groups()[1:5] == expected_row(path), name
        assert m.group(6) == human_size(path.stat().st_size)
    assert rows["qwen2-q8_0"].split()[0:4:2] == ["qwen2", "Q8_0"]
    # Without general.file_type: the type with the most bytes, which is Q8_0 here too.
    assert rows["qwen2-no-ftype"].split()[0:4:2] == ["qwen2", "Q8_0"]
    assert rows["garbage"] == "error: gguf: bad magic at byte 0: 6e 6f 74 20 (expected 47 47 55 46, \"GGUF\")"
    assert re.fullmatch(r"error: gguf: tensor #\d+ '[^']+': data range \[\d+, \d+\) exceeds file "
                        r"size 4194304", rows["truncated"]), rows["truncated"]
    assert rows["dangling"] == "error: No such file or directory"


def test_default_dir_and_errors(models_dir, tmp_path):
    code, out, err = rf("models", env={"ROCMFORGE_MODELS": str(models_dir)})
    n_good = 5 if GEMMA.is_file() else 4
    assert code == 0 and out.splitlines()[-1] == f"{n_good} models in {models_dir}, 3 unreadable"
    code, out, err = rf("models", env={"ROCMFORGE_MODELS": str(tmp_path)})
    assert code == 0 and out == f"no GGUF files in {tmp_path} (`make models` or scripts/setup.sh " \
                                "downloads the default model)\n"
    code, out, err = rf("models", "--dir", tmp_path / "nope")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert f"cannot read the directory {tmp_path / 'nope'}: No such file or directory" in err
    code, out, err = rf("models", "extra")
    assert code == 2 and "unexpected argument 'extra'" in err


def tokens(model, env):
    code, out, err = rf("tokenize", "-m", model, "-p", "Hello", env=env)
    return code, out.strip(), err


@pytest.mark.parametrize("name", ["smollm2", "smollm2.gguf", "smollm2.g", "SmolLM2-c", "SMOLLM2-COPY"])
def test_model_name_resolves(models_dir, name):
    code, out, err = tokens(name, {"ROCMFORGE_MODELS": str(models_dir)})
    assert code == 0, err
    assert out == "[19556]"


def test_model_name_errors(models_dir, tmp_path):
    env = {"ROCMFORGE_MODELS": str(models_dir)}
    # "s" starts smollm2 and SmolLM2-copy (case-insensitive): ambiguous.
    code, out, err = tokens("s", env)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert f"model name 's' matches 2 files in {models_dir}: SmolLM2-copy.gguf, smollm2.gguf" in err
    code, out, err = tokens("llama", env)
    assert code == 1 and err.count("\n") == 1
    assert f"llama is neither a file nor a model name in {models_dir}" in err
    # A name of a bad file resolves, then fails to load with the reason.
    code, out, err = tokens("garbage", env)
    assert code == 1 and "bad magic" in err and str(models_dir / "garbage.gguf") in err
    # A file in the working directory wins over a model of the same name.
    shutil.copy(models_dir / "qwen2-q8_0.gguf", tmp_path / "smollm2")
    r = subprocess.run([BIN, "tokenize", "-m", "smollm2", "-p", "Hello"], capture_output=True,
                       cwd=tmp_path, env={**os.environ, **env}, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() != b"[19556]"
