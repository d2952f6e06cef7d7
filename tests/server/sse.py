"""Server-sent events as the server writes them: `data: JSON` events, `data: [DONE]`."""
import json


def events(response):
    """The JSON events of a streamed response, in order; checks the [DONE] end."""
    out = []
    done = False
    for line in response.iter_lines():
        if not line or line.startswith(b":"):
            continue
        assert line.startswith(b"data: "), line
        payload = line[len(b"data: "):]
        assert not done, "event after [DONE]"
        if payload == b"[DONE]":
            done = True
            continue
        out.append(json.loads(payload))
    assert done, "stream ended without [DONE]"
    return out


def chat_text(evts):
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in evts if e["choices"])


def completion_text(evts):
    return "".join(e["choices"][0]["text"] for e in evts if e["choices"])


def finish_reason(evts):
    reasons = [e["choices"][0]["finish_reason"] for e in evts if e["choices"]]
    assert all(r is None for r in reasons[:-1]), reasons
    return reasons[-1]
