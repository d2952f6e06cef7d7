"""Every error the server answers, with its status and OpenAI's error body."""
import json
import socket
import time

import pytest

from conftest import Server, check_clean_exit, wait_idle
from sse import events

KEY = "s3cret-key"
CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "Hi"}]


def error_of(r, status, param=None, code=None):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert set(body) == {"error"}
    e = body["error"]
    assert set(e) == {"message", "type", "param", "code"}
    assert isinstance(e["message"], str) and e["message"]
    assert e["param"] == param
    if code is not None:
        assert e["code"] == code
    return e


@pytest.fixture(scope="module")
def strict():
    """One sequence, one waiting request, a key, a small body limit, a template
    name that does not exist, JSON logs."""
    s = Server("--parallel", 1, "--queue-size", 1, "--ctx-size", 256, "--api-key", KEY,
               "--max-body", 4096, "--chat-template", "nosuch", "--log-format", "json",
               "--timeout", 5)
    yield s
    check_clean_exit(s)


AUTH = {"Authorization": f"Bearer {KEY}"}


def test_invalid_json(server):
    e = error_of(server.post(CHAT, data="{\"messages\": [", headers={"Content-Type": "application/json"}), 400)
    assert e["type"] == "invalid_request_error" and "JSON" in e["message"]
    error_of(server.post(CHAT, data="[1, 2]"), 400)
    error_of(server.post(CHAT, data=""), 400)


@pytest.mark.parametrize("field,value,param", [
    ("temperature", "hot", "temperature"),
    ("temperature", 3, "temperature"),
    ("max_tokens", "ten", "max_tokens"),
    ("max_tokens", 0, "max_tokens"),
    ("max_tokens", 2.5, "max_tokens"),
    ("max_completion_tokens", -4, "max_completion_tokens"),
    ("top_p", 1.5, "top_p"),
    ("top_k", -1, "top_k"),
    ("min_p", "x", "min_p"),
    ("seed", 1.5, "seed"),
    ("stop", 5, "stop"),
    ("stop", ["ok", 3], "stop"),
    ("stop", [""], "stop"),
    ("stream", "yes", "stream"),
    ("n", 2, "n"),
    ("presence_penalty", 9, "presence_penalty"),
    ("frequency_penalty", [], "frequency_penalty"),
    ("repeat_penalty", 0, "repeat_penalty"),
    ("logprobs", 1, "logprobs"),
    ("top_logprobs", 3, "top_logprobs"),  # without logprobs
    ("top_logprobs", 50, "top_logprobs"),
    ("model", 7, "model"),
    ("stream_options", "all", "stream_options"),
])
def test_chat_bad_field(server, field, value, param):
    body = {"messages": MSG, field: value}
    if field == "top_logprobs" and value == 50:
        body["logprobs"] = True
    e = error_of(server.post(CHAT, json=body), 400, param)
    assert f"'{param}'" in e["message"]


@pytest.mark.parametrize("messages,param", [
    (None, "messages"),
    ("hello", "messages"),
    ([], "messages"),
    (["hi"], "messages[0].role"),
    ([{"content": "hi"}], "messages[0].role"),
    ([{"role": "user", "content": 5}], "messages[0].content"),
    ([{"role": "user", "content": [{"type": "image_url"}]}], "messages[0].content"),
])
def test_chat_bad_messages(server, messages, param):
    body = {} if messages is None else {"messages": messages}
    error_of(server.post(CHAT, json=body), 400, param)


@pytest.mark.parametrize("body,param", [
    ({}, "prompt"),
    ({"prompt": 5}, "prompt"),
    ({"prompt": ["a", "b"]}, "prompt"),
    ({"prompt": [1, 2, 99999999]}, "prompt"),
    ({"prompt": "hi", "logprobs": True}, "logprobs"),
    ({"prompt": "hi", "logprobs": 21}, "logprobs"),
    ({"prompt": "hi", "echo": True}, "echo"),
    ({"prompt": "hi", "best_of": 3}, "best_of"),
])
def test_completion_bad_fields(server, body, param):
    error_of(server.post("/v1/completions", json=body), 400, param)


def test_unknown_fields_ignored(server):
    r = server.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 2, "temperature": 0,
                                             "user": "me", "frobnicate": {"x": 1}})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 2


def test_prompt_too_long(server):
    prompt = "hello " * 600  # > 512 tokens
    e = error_of(server.post("/v1/completions", json={"prompt": prompt}), 400, "prompt",
                 "context_length_exceeded")
    n = int(e["message"].split("the prompt is ")[1].split(" tokens")[0])
    assert n > 512 and "512" in e["message"]
    e = error_of(server.post(CHAT, json={"messages": [{"role": "user", "content": prompt}]}),
                 400, "messages", "context_length_exceeded")
    assert "512" in e["message"]


def test_not_found_and_method(server):
    error_of(server.get("/v1/nothing"), 404, None, "not_found")
    error_of(server.get("/status/abc"), 404)
    error_of(server.get("/status/999999"), 404, None, "request_not_found")
    error_of(server.post("/cancel/999999"), 404, None, "request_not_found")
    error_of(server.get(CHAT), 405, None, "method_not_allowed")
    error_of(server.post("/v1/models"), 405)
    error_of(server.post("/health"), 405)


def test_auth(strict):
    e = error_of(strict.post("/v1/completions", json={"prompt": "Hi"}), 401, None, "invalid_api_key")
    assert e["type"] == "authentication_error"
    for bad in ("Bearer wrong", "Bearer " + KEY + "x", "Bearer " + KEY[:-1], "Basic " + KEY, KEY):
        r = strict.post("/v1/completions", json={"prompt": "Hi"}, headers={"Authorization": bad})
        error_of(r, 401, None, "invalid_api_key")
    error_of(strict.get("/v1/models"), 401)
    error_of(strict.get("/metrics"), 401)
    assert strict.get("/health").status_code == 200  # probes need no key
    assert strict.get("/v1/models", headers=AUTH).status_code == 200
    r = strict.post("/v1/completions", headers=AUTH,
                    json={"prompt": "Hi", "max_tokens": 2, "temperature": 0})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 2


def test_body_too_large(strict):
    body = json.dumps({"prompt": "x" * 5000})
    e = error_of(strict.post("/v1/completions", data=body, headers=AUTH), 413, None,
                 "request_too_large")
    assert "4096" in e["message"]
    # chunked upload, no Content-Length
    r = strict.post("/v1/completions", data=iter([body[:3000].encode(), body[3000:].encode()]),
                    headers=AUTH)
    error_of(r, 413)


def test_unknown_chat_template(strict):
    e = error_of(strict.post(CHAT, json={"messages": MSG}, headers=AUTH), 500, None,
                 "chat_template_unavailable")
    assert "'nosuch'" in e["message"] and "--chat-template" in e["message"]
    assert "warning: chat endpoints are off" in strict.log()


def test_queue_full(strict):
    """One running, one waiting: the third gets 503 with Retry-After."""
    body = {"prompt": "Once upon a time", "max_tokens": 200, "temperature": 0, "stream": True}
    running = strict.post("/v1/completions", json=body, headers=AUTH, stream=True)
    lines = running.iter_lines()
    assert next(line for line in lines if line.startswith(b"data: "))  # it is decoding
    waiting = strict.post("/v1/completions", json=body, headers=AUTH, stream=True)
    assert waiting.status_code == 200
    r = strict.post("/v1/completions", json={"prompt": "Hi"}, headers=AUTH)
    e = error_of(r, 503, None, "queue_full")
    assert int(r.headers["Retry-After"]) >= 1
    # a client that leaves while queued is dropped from the queue at once
    waiting.close()
    deadline = time.time() + 10
    while strict.metrics(AUTH)["rocmforge_queue_length"] != 0:
        assert time.time() < deadline
        time.sleep(0.02)
    assert strict.metrics(AUTH)["rocmforge_active_sequences"] == 1
    running.close()


def test_json_log_lines(strict):
    wait_idle(strict, AUTH)
    n_before = len(strict.log().splitlines())
    strict.post("/v1/completions", headers=AUTH, json={"prompt": "Hi", "max_tokens": 1})
    strict.get("/v1/nothing", headers=AUTH)
    # A request's line is written when it has ended, which for the POST can be after the
    # client has its response: wait for both, in whichever order they came.
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(x) for x in strict.log().splitlines()[n_before:] if x.startswith("{")]
        # wait_idle's last poll may end (and log) after n_before was taken
        lines = [x for x in lines if x["path"] in ("/v1/completions", "/v1/nothing")]
        if len(lines) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    lines.sort(key=lambda x: x["method"] != "POST")
    assert [(x["method"], x["path"], x["status"]) for x in lines] == [
        ("POST", "/v1/completions", 200), ("GET", "/v1/nothing", 404)]
    assert lines[0]["completion_tokens"] == 1 and lines[0]["prompt_tokens"] > 0


def test_garbage_requests(server):
    """Malformed requests get 400 (or nothing) and do not take the server down."""
    for data in (b"FOO BAR\r\n\r\n", b"GET /health HTTP/1.1\r\nno colon\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(data)
            assert s.recv(4096).startswith(b"HTTP/1.1 400 ")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"\x00\xffGARBAGE / HTTP/9.9\r\n\r\n")
    assert server.get("/health").json() == {"status": "ok"}


def test_error_in_stream_request_is_plain(server):
    """Validation happens before streaming starts: errors are JSON, not SSE."""
    r = server.post("/v1/completions", json={"prompt": "Hi", "stream": True, "top_p": 5})
    error_of(r, 400, "top_p")
    r = server.post("/generate/stream", json={"prompt": "Hi", "n_predict": 2, "temperature": 0})
    assert r.status_code == 200 and events(r)[-1]["tokens_generated"] == 2
