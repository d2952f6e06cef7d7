"""The engine's own endpoints: /generate, /generate/stream, /status/ID, /cancel/ID,
/models, /health, /ready, /metrics (docs/server.md)."""
import re
import time

from conftest import assert_blocks_free, run_cli, wait_idle
from sse import events


def test_generate_equals_run(server):
    r = server.post("/generate", json={"prompt": "Once upon a time", "n_predict": 12,
                                       "temperature": 0})
    assert r.status_code == 200
    body = r.json()
    assert body["text"] == run_cli("-p", "Once upon a time", "-n", 12, "--temp", 0)
    assert body["finish_reason"] == "length"
    assert body["tokens_generated"] == 12 and body["tokens_prompt"] > 0
    assert body["timings"]["total_ms"] >= body["timings"]["ttft_ms"] > 0
    assert r.headers["X-Request-Id"] == str(body["id"])
    st = server.get(f"/status/{body['id']}").json()
    assert st == {"id": body["id"], "state": "finished", "tokens_prompt": body["tokens_prompt"],
                  "tokens_generated": 12, "tokens_cached": body["tokens_cached"]}


def test_generate_stream(server):
    full = server.post("/generate", json={"prompt": "The weather today", "max_tokens": 10,
                                          "temperature": 0}).json()
    r = server.post("/generate/stream", stream=True,
                    json={"prompt": "The weather today", "max_tokens": 10, "temperature": 0})
    evts = events(r)
    ids = {e["id"] for e in evts}
    assert ids == {int(r.headers["X-Request-Id"])}
    assert "".join(e["text"] for e in evts) == full["text"]
    assert all("finish_reason" not in e for e in evts[:-1])
    assert evts[-1]["finish_reason"] == "length" and evts[-1]["tokens_generated"] == 10


def test_cancel_running(server):
    r = server.post("/generate/stream", stream=True,
                    json={"prompt": "Write a long story.", "max_tokens": 400, "temperature": 0})
    rid = int(r.headers["X-Request-Id"])
    lines = r.iter_lines()
    next(x for x in lines if x.startswith(b"data: "))
    assert server.get(f"/status/{rid}").json()["state"] in ("queued", "running")
    c = server.post(f"/cancel/{rid}")
    assert c.status_code == 200 and c.json()["cancelled"] is True
    rest = [x for x in lines if x.startswith(b"data: ")]
    assert rest[-1] == b"data: [DONE]"
    assert b'"finish_reason":"cancelled"' in rest[-2]
    st = server.get(f"/status/{rid}").json()
    assert st["state"] == "cancelled" and st["tokens_generated"] < 400
    again = server.post(f"/cancel/{rid}")
    assert again.status_code == 409 and again.json()["cancelled"] is False


def test_models(server):
    m = server.get("/models").json()["models"]
    assert len(m) == 1
    assert m[0]["id"] == "SmolLM2-135M-Instruct.Q4_1" and m[0]["arch"] == "llama"
    assert m[0]["n_ctx"] == 512 and m[0]["n_vocab"] == 49152 and m[0]["chat"] is True


def test_health_ready(server):
    assert server.get("/health").json() == {"status": "ok"}
    assert server.get("/ready").json() == {"ready": True}


def test_metrics(server):
    wait_idle(server)
    before = server.metrics()
    r = server.post("/v1/completions", json={"prompt": "Hello there", "max_tokens": 5,
                                             "temperature": 0})
    assert r.status_code == 200
    m = wait_idle(server)
    assert m["rocmforge_requests_started_total"] == before["rocmforge_requests_started_total"] + 1
    assert m["rocmforge_requests_finished_total"] == before["rocmforge_requests_finished_total"] + 1
    assert m["rocmforge_tokens_generated_total"] >= before["rocmforge_tokens_generated_total"] + 5
    ttft = "rocmforge_time_to_first_token_seconds"
    assert m[f"{ttft}_count"] == before[f"{ttft}_count"] + 1
    assert m[f'{ttft}_bucket{{le="+Inf"}}'] == m[f"{ttft}_count"]
    tpot = "rocmforge_time_per_output_token_seconds"
    assert m[f"{tpot}_count"] >= before[f"{tpot}_count"] + 4
    buckets = [v for k, v in m.items() if k.startswith(f"{tpot}_bucket")]
    assert buckets == sorted(buckets)
    assert_blocks_free(m)
    for name in ("rocmforge_requests_failed_total", "rocmforge_requests_cancelled_total",
                 "rocmforge_queue_length", "rocmforge_active_sequences"):
        assert name in m
    text = server.get("/metrics").text
    assert re.search(r"^# TYPE rocmforge_time_to_first_token_seconds histogram$", text, re.M)


def test_request_log_lines(server):
    n = len(server.log().splitlines())
    server.get("/health")
    time.sleep(0.05)
    new = server.log().splitlines()[n:]
    assert len(new) == 1 and re.search(r' GET "/health" 200 ', new[0])
