"""OpenAI endpoints through the official `openai` client: greedy outputs equal to
`rocmforge run`, streaming equal to non-streaming, stop strings, seeds, logprobs."""
import json
import math
import subprocess

import openai
import pytest

from conftest import BIN, MODEL, run_cli
from sse import chat_text, completion_text, events, finish_reason

N = 24


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=120)


def chat(client, content, **kw):
    kw.setdefault("temperature", 0)
    kw.setdefault("max_tokens", N)
    return client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": content}], **kw)


def complete(client, prompt, **kw):
    kw.setdefault("temperature", 0)
    kw.setdefault("max_tokens", N)
    return client.completions.create(model="smollm2", prompt=prompt, **kw)


@pytest.mark.parametrize("question", ["What is 2+2?", "Name three colors."])
def test_chat_greedy_equals_run(client, question):
    r = chat(client, question)
    expected = run_cli("--chat", "-p", question, "-n", N, "--temp", 0)
    c = r.choices[0]
    assert c.message.role == "assistant"
    assert c.message.content == expected
    assert r.usage.completion_tokens <= N
    assert c.finish_reason == ("length" if r.usage.completion_tokens == N else "stop")
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion"


def test_completion_greedy_equals_run(client):
    prompt = "Once upon a time"
    r = complete(client, prompt)
    assert r.choices[0].text == run_cli("-p", prompt, "-n", N, "--temp", 0)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == N
    assert r.object == "text_completion"


def test_chat_stream_equals_non_stream(client, server):
    q = "Give me a short fact about the sea."
    full = chat(client, q).choices[0]
    r = server.post("/v1/chat/completions", stream=True, json={
        "model": "x", "messages": [{"role": "user", "content": q}], "temperature": 0,
        "max_tokens": N, "stream": True, "stream_options": {"include_usage": True}})
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/event-stream"
    evts = events(r)
    assert evts[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(e["object"] == "chat.completion.chunk" for e in evts)
    assert len({e["id"] for e in evts}) == 1
    usage = evts[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] <= N
    assert chat_text(evts) == full.message.content
    assert finish_reason(evts[:-1]) == full.finish_reason


def test_completion_stream_with_client(client):
    prompt = "The capital of France is"
    full = complete(client, prompt).choices[0].text
    chunks = list(complete(client, prompt, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == full
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


def test_max_completion_tokens(client):
    r = chat(client, "Count from one to twenty.", max_tokens=None, max_completion_tokens=5)
    assert r.usage.completion_tokens == 5 and r.choices[0].finish_reason == "length"


# ---- stop strings ----

@pytest.fixture(scope="module")
def story(client):
    return complete(client, "Once upon a time", max_tokens=32).choices[0].text


def test_stop_word(client, story):
    stop = story[story.index(" ", 12):][:5]  # begins at a word, may end inside the next
    cut = story.index(stop)
    r = complete(client, "Once upon a time", max_tokens=32, stop=[stop, "\u2603never"])
    assert r.choices[0].text == story[:cut]
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens < 32


@pytest.mark.parametrize("offset", [3, 9, 17])
def test_stop_streamed_never_emitted(client, server, story, offset):
    """A stop string spanning tokens: held back while it may match, never sent."""
    stop = story[offset:offset + 4]
    cut = story.index(stop)
    r = server.post("/v1/completions", stream=True, json={
        "prompt": "Once upon a time", "max_tokens": 32, "temperature": 0, "stream": True,
        "stop": stop})
    evts = events(r)
    assert completion_text(evts) == story[:cut]
    assert finish_reason(evts) == "stop"


def test_stop_absent(client, story):
    r = complete(client, "Once upon a time", max_tokens=32, stop=["@@@", "###"])
    assert r.choices[0].text == story and r.choices[0].finish_reason == "length"


# ---- seeds ----

def test_seed_reproduces(client):
    kw = dict(temperature=1.0, max_tokens=16)
    a = complete(client, "My favourite animal is", seed=1234, **kw).choices[0].text
    b = complete(client, "My favourite animal is", seed=1234, **kw).choices[0].text
    assert a == b
    others = {complete(client, "My favourite animal is", seed=s, **kw).choices[0].text
              for s in (1, 2, 3)}
    assert len(others | {a}) > 1


# ---- logprobs ----

def test_chat_logprobs_greedy(client):
    r = chat(client, "What is the color of the sky?", logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(t.token for t in content) == r.choices[0].message.content
    for t in content:
        assert t.logprob <= 0 and bytes(t.bytes).decode("utf-8") == t.token
        tops = [x.logprob for x in t.top_logprobs]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True)
        # greedy: the chosen token is the most likely one
        assert t.top_logprobs[0].token == t.token
        assert math.isclose(t.top_logprobs[0].logprob, t.logprob, abs_tol=1e-6)
        assert sum(math.exp(x) for x in tops) <= 1 + 1e-4


def test_chat_logprobs_sampled(client):
    r = chat(client, "Tell me a word.", temperature=1.0, seed=7, logprobs=True, top_logprobs=5)
    for t in r.choices[0].logprobs.content:
        assert t.logprob <= t.top_logprobs[0].logprob + 1e-6
        if t.token in [x.token for x in t.top_logprobs]:
            match = [x.logprob for x in t.top_logprobs if x.token == t.token]
            assert any(math.isclose(m, t.logprob, abs_tol=1e-6) for m in match)


def test_no_logprobs_by_default(client):
    assert chat(client, "Hi").choices[0].logprobs is None
    assert complete(client, "Hi").choices[0].logprobs is None


def test_completion_logprobs(client):
    r = complete(client, "The sun rises in the", logprobs=2, max_tokens=12)
    c = r.choices[0]
    lp = c.logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.text_offset) == 12
    assert "".join(lp.tokens) == c.text
    offsets = [0]
    for tok in lp.tokens[:-1]:
        offsets.append(offsets[-1] + len(tok.encode("utf-8")))
    assert lp.text_offset == offsets
    for tok, val, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert 1 <= len(top) <= 2 and math.isclose(max(top.values()), val, abs_tol=1e-6)
        assert top[tok] == val


def test_models(client, server):
    models = client.models.list().data
    assert [m.id for m in models] == ["SmolLM2-135M-Instruct.Q4_1"]
    assert models[0].object == "model"


def test_prompt_as_token_ids(client, server):
    """Token ids give what their text gives (SmolLM2 adds no BOS)."""
    r = subprocess.run([BIN, "tokenize", "-m", str(MODEL), "-p", "Once upon a time"],
                       capture_output=True, timeout=60)
    ids = json.loads(r.stdout)
    by_ids = server.post("/v1/completions", json={"prompt": ids, "max_tokens": 8,
                                                  "temperature": 0}).json()
    by_text = complete(client, "Once upon a time", max_tokens=8)
    assert by_ids["usage"]["prompt_tokens"] == len(ids) == by_text.usage.prompt_tokens
    assert by_ids["choices"][0]["text"] == by_text.choices[0].text
