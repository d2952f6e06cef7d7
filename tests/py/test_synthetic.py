"""Synthetic models: the engine's logits against an independent float64 reference and
against llama.cpp, for every supported architecture and weight type.

The models (tools/make_test_model.py) are regenerated into a temp dir; their sha256
must match tests/fixtures/synthetic/manifest.json, which also lists the token
sequence of each. Fixtures per model: <name>.ref.f32 (tools/ref_forward.py, float64,
exact activations) and <name>.lcpp.f32 (llama-cpp-python 0.3.36, CPU, f16 KV cache),
both raw float32 (n_tokens x n_vocab). Regenerate with
`/work/ref/venv/bin/python tools/ref_forward.py fixtures` (needs llama-cpp-python).

Thresholds (THRESHOLDS below), per weight type, from the measured distance between
the two references (tools/ref_forward.py fixtures prints it; manifest.json keeps it
per model as ref_vs_lcpp): llama.cpp rounds activations (F16/BF16, or Q8_0/Q8_1/Q8_K
for block types), its KV cache to f16, and computes in f32, so the references
differ by that rounding, which these random 2-3 layer models amplify. An engine
that rounds like llama.cpp or keeps exact activations both sit within that distance
of each reference, so each limit is 3x the largest value measured for the type over
all architectures, rounded up to one digit:
  kl_mean, kl_max: mean and max over positions of KL(softmax(ref) || softmax(engine))
  gap: top-1 must agree at every position where the reference's top-2 logit gap
       exceeds this (2x the largest |ref - llama.cpp| logit difference of the type);
       closer calls are left to the KL limits.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ENGINE_ENV = dict(os.environ)
# The reference's matrices are tiny: BLAS threads only cost time on a busy machine.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(os.environ.get("RF_SOURCE") or Path(__file__).resolve().parents[2])
FIXTURES = Path(os.environ.get("RF_FIXTURES") or ROOT / "tests" / "fixtures") / "synthetic"
sys.path.insert(0, str(ROOT / "tools"))

import make_test_model as mtm  # noqa: E402
import ref_forward as rf  # noqa: E402

MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
NAMES = sorted(MANIFEST["models"])

# type: (kl_mean, kl_max, gap). Measured maxima of ref vs llama.cpp (kl_mean, kl_max,
# max |logit diff|) in the comments; logits have std ~2.
THRESHOLDS = {
    "f32": (6e-6, 2e-5, 0.03),          # 1.71e-6 4.88e-6 0.011
    "f16": (1e-5, 3e-5, 0.03),          # 3.31e-6 9.41e-6 0.011
    "bf16": (3e-4, 6e-4, 0.13),         # 8.43e-5 1.98e-4 0.060
    "q4_0": (3e-3, 9e-3, 0.46),         # 9.87e-4 2.73e-3 0.229
    "q4_1": (3e-3, 8e-3, 0.36),         # 9.26e-4 2.34e-3 0.178
    "q5_0": (3e-3, 9e-3, 0.46),         # 8.62e-4 2.71e-3 0.226
    "q5_1": (4e-3, 6e-3, 0.47),         # 1.13e-3 1.95e-3 0.232
    "q8_0": (4e-3, 8e-3, 0.49),         # 1.15e-3 2.66e-3 0.240
    "q2_k": (4e-3, 3e-2, 0.61),         # 1.06e-3 6.77e-3 0.302
    "q3_k": (2e-2, 9e-2, 1.02),         # 4.69e-3 2.83e-2 0.508
    "q4_k": (3e-3, 2e-2, 0.52),         # 7.85e-4 4.44e-3 0.257
    "q5_k": (3e-3, 7e-3, 0.46),         # 8.24e-4 2.28e-3 0.228
    "q6_k": (2e-2, 5e-2, 1.06),         # 4.53e-3 1.53e-2 0.527
    "iq4_nl": (2e-3, 4e-3, 0.30),       # 3.50e-4 1.17e-3 0.150
    "q4_1_q8embd": (4e-3, 1e-2, 0.45),  # 1.08e-3 3.06e-3 0.222
    "q4_k_m": (8e-3, 4e-2, 0.55),       # 2.37e-3 1.23e-2 0.275
}


def _entry(name: str) -> dict:
    return MANIFEST["models"][name]


def _fixture(name: str, which: str) -> np.ndarray:
    e = _entry(name)
    data = (FIXTURES / f"{name}.{which}.f32").read_bytes()
    assert hashlib.sha256(data).hexdigest() == e[f"{which}_sha256"], f"{name}.{which}.f32 changed"
    return np.frombuffer(data, dtype="<f4").reshape(len(e["tokens"]), e["n_vocab"])


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


def model_path(name: str, out_dir: Path) -> Path:
    """The model regenerated into out_dir (once), byte-identical to the fixtures'."""
    path = out_dir / f"{name}.gguf"
    if not path.exists():
        path = mtm.write_model(name, out_dir)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == _entry(name)["gguf_sha256"], (
        f"{name}: the generator no longer writes the file the fixtures were made from "
        "(tools/make_test_model.py or gguf/numpy changed); regenerate the fixtures with "
        "tools/ref_forward.py fixtures")
    return path


def check_logits(name: str, test: np.ndarray, ref: np.ndarray, what: str) -> None:
    kl_mean, kl_max, gap = THRESHOLDS[_entry(name)["type"]]
    c = rf.compare(test, ref)
    assert c["kl_mean"] <= kl_mean, f"{name} {what}: mean KL {c['kl_mean']:.3e} > {kl_mean:.0e}"
    assert c["kl_max"] <= kl_max, f"{name} {what}: max KL {c['kl_max']:.3e} > {kl_max:.0e}"
    top2 = np.sort(ref, axis=-1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > gap
    bad = np.nonzero(decisive & (np.argmax(test, axis=-1) != np.argmax(ref, axis=-1)))[0]
    assert bad.size == 0, f"{name} {what}: top-1 differs at positions {bad.tolist()} (gap > {gap})"


# ---------------------------------------------------------------- fixtures themselves

def test_manifest_covers_every_model_and_type():
    assert NAMES == sorted(mtm.model_names())
    assert {e["type"] for e in MANIFEST["models"].values()} == set(THRESHOLDS)
    covered = {t for e in MANIFEST["models"].values() for t in e["weight_types"]}
    assert covered >= {t.name for t in mtm.TYPES.values()}
    assert {e["arch"] for e in MANIFEST["models"].values()} == {"llama", "qwen2", "qwen3", "gemma3"}


@pytest.mark.parametrize("name", NAMES)
def test_reference_self_check(name, model_dir):
    """The numpy reference still computes the committed logits, sits within the
    thresholds of llama.cpp, and its ggml-rounding emulation explains most of the
    gap (exactly, at positions where no f32 rounding decision differs)."""
    e = _entry(name)
    model = rf.load_model(model_path(name, model_dir))
    ref, lcpp = _fixture(name, "ref"), _fixture(name, "lcpp")
    now = rf.forward(model, e["tokens"])
    assert rf.compare(now, ref)["rel_max"] < 1e-5, f"{name}: reference output changed"
    check_logits(name, now, lcpp, "numpy reference vs llama.cpp")
    emu = rf.compare(rf.forward(model, e["tokens"], act_quant=True), lcpp)
    base = rf.compare(now, lcpp)
    assert emu["kl_mean"] < base["kl_mean"], f"{name}: rounding emulation does not help"
    n_exact = round(e["emulated_vs_lcpp"]["exact_pos"] * len(e["tokens"]))
    assert round(emu["exact_pos"] * len(e["tokens"])) >= int(0.75 * n_exact), (
        f"{name}: emulated reference matches llama.cpp at fewer positions than recorded")


# ---------------------------------------------------------------- the engine

def engine_logits(name: str, path: Path, out: Path) -> np.ndarray:
    e = _entry(name)
    cmd = [os.environ["RF_BIN"], "logits", "-m", str(path), "-t", "2",
           "--tokens", ",".join(str(t) for t in e["tokens"]), "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ENGINE_ENV)
    assert r.returncode == 0, f"{name}: rocmforge logits failed: {r.stderr.strip()}"
    data = out.read_bytes()
    assert len(data) == 4 * len(e["tokens"]) * e["n_vocab"], f"{name}: wrong logits size"
    logits = np.frombuffer(data, dtype="<f4").reshape(len(e["tokens"]), e["n_vocab"])
    assert np.all(np.isfinite(logits)), f"{name}: non-finite logits"
    return logits


@pytest.mark.skipif(not os.environ.get("RF_BIN"), reason="RF_BIN (the rocmforge binary) not set")
@pytest.mark.parametrize("name", NAMES)
def test_engine_logits(name, model_dir, tmp_path):
    logits = engine_logits(name, model_path(name, model_dir), tmp_path / "logits.f32")
    check_logits(name, logits, _fixture(name, "ref"), "engine vs numpy reference")
    check_logits(name, logits, _fixture(name, "lcpp"), "engine vs llama.cpp")
