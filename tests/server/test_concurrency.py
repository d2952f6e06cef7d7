"""Many clients at once: 64 simultaneous greedy streams get exactly the tokens each
gets alone; then 200 more requests, a third of which disconnect mid-stream; the
server stays up and every KV block held by a sequence is free again."""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import assert_blocks_free, wait_idle

N_CLIENTS = 64
MAX_TOKENS = 8


def request_body(i, stream):
    """Even i: chat (the chat template's system prompt is a shared prefix); odd i:
    completions. Tokens come back through logprobs, to compare them exactly."""
    if i % 2 == 0:
        body = {"messages": [{"role": "user", "content": f"Say something about the number {i}."}],
                "logprobs": True}
    else:
        body = {"prompt": f"Item {i} on the list is", "logprobs": 0}
    body.update(max_tokens=MAX_TOKENS, temperature=0, stream=stream)
    return body


def path_of(i):
    return "/v1/chat/completions" if i % 2 == 0 else "/v1/completions"


def tokens_of(i, chunks):
    """The token texts of a response (or of its stream's chunks) and the finish reason."""
    toks, finish = [], None
    for c in chunks:
        if not c["choices"]:
            continue
        ch = c["choices"][0]
        lp = ch.get("logprobs")
        if lp:
            toks += [t["token"] for t in lp["content"]] if i % 2 == 0 else lp["tokens"]
        finish = ch["finish_reason"] or finish
    return toks, finish


def stream_tokens(url, i, disconnect_after=None):
    with requests.post(url + path_of(i), json=request_body(i, True), stream=True,
                       timeout=300) as r:
        assert r.status_code == 200, r.text
        chunks = []
        for line in r.iter_lines():
            if not line.startswith(b"data: "):
                continue
            if line == b"data: [DONE]":
                break
            chunks.append(json.loads(line[6:]))
            if disconnect_after is not None and len(chunks) >= disconnect_after:
                return None  # leaving the with-block closes the connection
    return tokens_of(i, chunks)


@pytest.fixture(scope="module")
def alone(server):
    """Each prompt's tokens when it runs alone."""
    out = {}
    for i in range(N_CLIENTS):
        r = server.post(path_of(i), json=request_body(i, False))
        assert r.status_code == 200, r.text
        out[i] = tokens_of(i, [r.json()])
        assert len(out[i][0]) == r.json()["usage"]["completion_tokens"] > 0
    return out


def test_64_streams_no_cross_talk(server, alone):
    with ThreadPoolExecutor(N_CLIENTS) as pool:
        got = list(pool.map(lambda i: stream_tokens(server.url, i), range(N_CLIENTS)))
    for i in range(N_CLIENTS):
        assert got[i] == alone[i], i
    assert_blocks_free(wait_idle(server))


def test_churn_with_disconnects(server, alone):
    before = wait_idle(server)

    def one(k):
        i = k % N_CLIENTS
        if k % 3 == 0:
            body = request_body(i, True)
            body["max_tokens"] = 64
            with requests.post(server.url + path_of(i), json=body, stream=True, timeout=300) as r:
                seen = 0
                for line in r.iter_lines():
                    if line.startswith(b"data: "):
                        seen += 1
                        if seen == 3:
                            break
            return None
        return stream_tokens(server.url, i)

    with ThreadPoolExecutor(48) as pool:
        results = list(pool.map(one, range(200)))
    for k, res in enumerate(results):
        if k % 3:
            assert res == alone[k % N_CLIENTS], k
    m = wait_idle(server)
    n_dropped = sum(1 for k in range(200) if k % 3 == 0)
    dropped = m["rocmforge_client_disconnects_total"] - before["rocmforge_client_disconnects_total"]
    cancelled = (m["rocmforge_requests_cancelled_total"]
                 - before["rocmforge_requests_cancelled_total"])
    assert dropped == n_dropped
    assert cancelled == n_dropped
    assert_blocks_free(m)
    # still serving, still exact
    assert stream_tokens(server.url, 5) == alone[5]
    assert server.get("/health").json() == {"status": "ok"}
