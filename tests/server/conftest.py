"""Black-box server tests: the real `rocmforge serve` ($RF_BIN) on SmolLM2 on the CPU.

Every server listens on a free port (--port 0) read from its start-up line; its log
goes to a file. At teardown it gets SIGTERM and must exit 0 (under ASan the leak
checker runs at that exit, and its report fails the test).
"""
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

BIN = os.environ.get("RF_BIN", "rocmforge")
MODELS = Path(os.environ.get("RF_MODELS", Path.home() / ".cache/rocmforge/models"))
MODEL = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"
THREADS = "2"


class Server:
    def __init__(self, *args, env=None):
        assert MODEL.is_file(), f"model not found: {MODEL} (run scripts/setup.sh)"
        self.log_file = tempfile.NamedTemporaryFile(prefix="rf-serve-", suffix=".log", delete=False)
        e = dict(os.environ)
        e.update(env or {})
        cmd = [BIN, "serve", "-m", str(MODEL), "-t", THREADS, "--port", "0", *map(str, args)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log_file, env=e)
        self.port = self._wait_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self):
        return Path(self.log_file.name).read_text(encoding="utf-8", errors="replace")

    def _wait_port(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(r" on http://[^ ]*:(\d+) ", self.log())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def get(self, path, **kw):
        return requests.get(self.url + path, timeout=kw.pop("timeout", 120), **kw)

    def post(self, path, **kw):
        return requests.post(self.url + path, timeout=kw.pop("timeout", 120), **kw)

    def metrics(self, headers=None):
        r = self.get("/metrics", headers=headers)
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        out = {}
        for line in r.text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def stop(self, timeout=60):
        """SIGTERM; returns the exit code and the log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        log = self.log()
        os.unlink(self.log_file.name)
        return self.proc.returncode, log


def wait_idle(server, headers=None, timeout=30):
    """Waits until nothing is queued or decoding; returns the metrics then."""
    deadline = time.time() + timeout
    while True:
        m = server.metrics(headers)
        if m["rocmforge_queue_length"] == 0 and m["rocmforge_active_sequences"] == 0:
            return m
        assert time.time() < deadline, m
        time.sleep(0.05)


def assert_blocks_free(m):
    """No KV block is held by a sequence; the prefix cache may keep some (reported
    apart: they are reusable and evicted on demand)."""
    assert m["rocmforge_kv_blocks_used"] == 0, m
    total = m["rocmforge_kv_blocks_total"]
    assert total > 0
    assert m["rocmforge_kv_blocks_free"] + m["rocmforge_kv_blocks_cached"] == total, m


def check_clean_exit(server):
    code, log = server.stop()
    assert code == 0, log[-4000:]
    assert "Sanitizer" not in log, log[-4000:]
    assert "rocmforge serve: stopped" in log


@pytest.fixture(scope="session")
def server():
    """The shared server: 8 sequences at once, 512-token contexts."""
    s = Server("--parallel", 8, "--ctx-size", 512, "--queue-size", 256)
    yield s
    check_clean_exit(s)


def run_cli(*args, timeout=120):
    """`rocmforge run` with the same model; returns stdout (the generated text)."""
    r = subprocess.run([BIN, "run", "-m", str(MODEL), "-t", THREADS, *map(str, args)],
                       capture_output=True, timeout=timeout)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode("utf-8")
