"""Bad models and bad requests end with one clear line and a non-zero exit, never a
crash: unsupported architectures, tensors contradicting the metadata, missing tensors,
prompts over the context, corrupt files."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

ROOT = Path(os.environ.get("RF_SOURCE", Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(ROOT / "tools"))
import make_test_model  # noqa: E402

BIN = os.environ.get("RF_BIN", str(ROOT / "build" / "rocmforge"))
VT = gguf.GGUFValueType


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> Path:
    return make_test_model.write_model("llama3-f32", tmp_path_factory.mktemp("models"))


def rewrite(src: Path, dst: Path, arch: str | None = None, tensors=None) -> Path:
    """Copies a GGUF with gguf-py, renaming the architecture (and its keys) and passing
    each (name, data, type) tensor through `tensors`, which may drop it (None) or change it."""
    r = gguf.GGUFReader(str(src))
    old = r.fields["general.architecture"].contents()
    new = arch or old
    w = gguf.GGUFWriter(str(dst), new)
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if key.startswith(old + "."):
            key = new + key[len(old):]
        sub = f.types[1] if f.types[0] == VT.ARRAY else None
        w.add_key_value(key, f.contents(), f.types[0], sub_type=sub)
    for t in r.tensors:
        item = (t.name, np.array(t.data), t.tensor_type)
        item = tensors(item) if tensors else item
        if item is not None:
            name, data, qtype = item
            w.add_tensor(name, data, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60)


def one_line_error(p: subprocess.CompletedProcess) -> str:
    assert p.returncode != 0, p.stdout
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, p.stderr
    assert "Sanitizer" not in p.stderr and "Segmentation" not in p.stderr
    return lines[0]


def test_copy_is_faithful(base_model, tmp_path):
    """The rewriter itself changes nothing when asked to change nothing."""
    same = rewrite(base_model, tmp_path / "same.gguf")
    a = run("logits", "-m", str(base_model), "--tokens", "1,2,3", "--out", str(tmp_path / "a"))
    b = run("logits", "-m", str(same), "--tokens", "1,2,3", "--out", str(tmp_path / "b"))
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_unsupported_architecture_is_named(base_model, tmp_path):
    bad = rewrite(base_model, tmp_path / "arch.gguf", arch="bert")
    line = one_line_error(run("run", "-m", str(bad), "-p", "hi", "-n", "1"))
    assert "unsupported architecture 'bert'" in line
    for supported in ("llama", "mistral", "qwen2", "qwen3", "gemma3"):
        assert supported in line
    assert str(bad) in line


def test_shape_contradicting_metadata_names_tensor_and_shapes(base_model, tmp_path):
    def shrink(item):
        name, data, qtype = item
        return (name, data[:-16], qtype) if name == "blk.1.ffn_up.weight" else item

    bad = rewrite(base_model, tmp_path / "shape.gguf", tensors=shrink)
    line = one_line_error(run("run", "-m", str(bad), "-p", "hi", "-n", "1"))
    assert "blk.1.ffn_up.weight" in line
    assert "(256, 752)" in line and "(256, 768)" in line


def test_missing_tensor_is_named(base_model, tmp_path):
    bad = rewrite(base_model, tmp_path / "missing.gguf",
                  tensors=lambda it: None if it[0] == "blk.0.attn_k.weight" else it)
    line = one_line_error(run("run", "-m", str(bad), "-p", "hi", "-n", "1"))
    assert "missing tensor 'blk.0.attn_k.weight'" in line


@pytest.fixture(scope="module")
def gemma_model(tmp_path_factory) -> Path:
    return make_test_model.write_model("gemma3-f32", tmp_path_factory.mktemp("gemma"))


def test_gemma3_post_norms_are_checked(gemma_model, tmp_path):
    """Gemma 3's extra norms are bound like the others: a missing one and a wrong
    length are named."""
    bad = rewrite(gemma_model, tmp_path / "nopost.gguf",
                  tensors=lambda it: None if it[0] == "blk.2.post_ffw_norm.weight" else it)
    line = one_line_error(run("run", "-m", str(bad), "-p", "hi", "-n", "1"))
    assert "missing tensor 'blk.2.post_ffw_norm.weight'" in line

    def shrink(item):
        name, data, qtype = item
        return (name, data[:-1], qtype) if name == "blk.4.post_attention_norm.weight" else item

    bad = rewrite(gemma_model, tmp_path / "short.gguf", tensors=shrink)
    line = one_line_error(run("run", "-m", str(bad), "-p", "hi", "-n", "1"))
    assert "blk.4.post_attention_norm.weight" in line
    assert "(255)" in line and "(256)" in line


def test_prompt_over_context_names_both_lengths(base_model):
    p = run("run", "-m", str(base_model), "-c", "16", "-p", "word " * 40, "-n", "1")
    line = one_line_error(p)
    assert "16" in line and "context" in line


def test_token_out_of_range(base_model, tmp_path):
    line = one_line_error(run("logits", "-m", str(base_model), "--tokens", "1,99999",
                              "--out", str(tmp_path / "x")))
    assert "99999" in line


@pytest.mark.parametrize("cut", [0, 4, 8, 100, 5000, -1])
def test_truncated_model(base_model, tmp_path, cut):
    data = base_model.read_bytes()
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(data[:cut] if cut >= 0 else data[:-7])
    for args in (("run", "-m", str(bad), "-p", "hi", "-n", "1"), ("info", str(bad))):
        line = one_line_error(run(*args))
        assert str(bad) in line or "gguf" in line
