"""SIGTERM: the server stops accepting connections, finishes the requests in flight,
and exits 0."""
import json
import signal
import threading

import pytest
import requests

from conftest import Server


def test_sigterm_drains():
    s = Server("--parallel", 2, "--ctx-size", 256)
    result = {}

    def client():
        with requests.post(s.url + "/v1/completions", stream=True, timeout=120, json={
                "prompt": "Once upon a time", "max_tokens": 40, "temperature": 0,
                "stream": True}) as r:
            texts = []
            for line in r.iter_lines():
                if line.startswith(b"data: ") and line != b"data: [DONE]":
                    ev = json.loads(line[6:])
                    texts.append(ev["choices"][0]["finish_reason"])
                    if len(texts) == 2:
                        started.set()
                elif line == b"data: [DONE]":
                    result["done"] = True
            result["finish"] = texts[-1]
            result["chunks"] = len(texts)

    started = threading.Event()
    t = threading.Thread(target=client)
    t.start()
    assert started.wait(60)
    s.proc.send_signal(signal.SIGTERM)
    t.join(120)
    assert result == {"done": True, "finish": "length", "chunks": 41}
    assert s.proc.wait(60) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(s.url + "/health", timeout=5)
    log = s.log()
    assert "draining" in log and "rocmforge serve: stopped" in log
    assert "Sanitizer" not in log
    s.stop()


def test_sigint_idle_exits_zero():
    s = Server("--parallel", 1, "--ctx-size", 128)
    assert s.get("/health").status_code == 200
    s.proc.send_signal(signal.SIGINT)
    assert s.proc.wait(60) == 0
    s.stop()
