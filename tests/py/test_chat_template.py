"""Chat templates: `rocmforge chat-template` against jinja2 rendering the real templates.

The SmolLM2 template is read from the model's GGUF (detected family, with its default
system prompt); the canonical template of every family is a fixture in
tests/fixtures/chat_templates/ (forced by name). jinja2 renders them as transformers'
apply_chat_template does (trim_blocks, lstrip_blocks). rocmforge leaves out a BOS the
template renders at the very start (the tokenizer adds BOS when the model asks), so the
reference drops it too. bos_token and eos_token are the model's token texts.
"""
import os
import subprocess
from pathlib import Path

import gguf
import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

BIN = os.environ.get("RF_BIN", "rocmforge")
MODEL = Path(os.environ.get("RF_MODELS", "")) / "SmolLM2-135M-Instruct.Q4_1.gguf"
FIXTURES = Path(os.environ.get("RF_FIXTURES", Path(__file__).parents[1] / "fixtures"))
FAMILIES = ["chatml", "llama2", "llama3", "mistral", "gemma", "phi3", "zephyr"]
BOS_MARK = "\x01BOS\x01"

SYSTEM = {"role": "system", "content": "You are terse.  "}
TURNS = [
    {"role": "user", "content": "  Hello, who are you?\n"},
    {"role": "assistant", "content": "I am a bot.\u3000"},
    {"role": "user", "content": "Tell me\ta joke\\n about C"},
    {"role": "assistant", "content": " Why?\r "},
]
# 1-4 messages, with and without a system message.
CONVERSATIONS = [TURNS[:k] for k in range(1, 5)] + [[SYSTEM] + TURNS[:k] for k in range(0, 4)]


def _field_str(reader, key, index=0):
    f = reader.fields[key]
    return bytes(f.parts[f.data[index]]).decode("utf-8")


@pytest.fixture(scope="module")
def model_info():
    assert MODEL.is_file(), f"model not found: {MODEL} (run scripts/setup.sh)"
    r = gguf.GGUFReader(str(MODEL))
    tokens = r.fields["tokenizer.ggml.tokens"]

    def token_text(key):
        tid = int(r.fields[key].parts[r.fields[key].data[0]][0])
        return bytes(tokens.parts[tokens.data[tid]]).decode("utf-8")

    return {
        "template": _field_str(r, "tokenizer.chat_template"),
        "bos": token_text("tokenizer.ggml.bos_token_id"),
        "eos": token_text("tokenizer.ggml.eos_token_id"),
    }


def _jinja_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env.globals["raise_exception"] = raise_exception
    return env


def reference(source, messages, add_generation_prompt, bos, eos):
    """jinja2's rendering, less a BOS at the very start; None when the template refuses."""
    try:
        text = _jinja_env().from_string(source).render(
            messages=messages, add_generation_prompt=add_generation_prompt,
            bos_token=BOS_MARK, eos_token=eos)
    except jinja2.exceptions.TemplateError:
        return None
    if text.startswith(BOS_MARK):
        text = text[len(BOS_MARK):]
    return text.replace(BOS_MARK, bos)


def escape(s):
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def ours(tmp_path, conversations, add_generation_prompt, name=None):
    """Renders every conversation with one run of the CLI."""
    path = tmp_path / "messages.txt"
    path.write_text("\n".join("".join(f"{m['role']}\t{escape(m['content'])}\n" for m in conv)
                              for conv in conversations), encoding="utf-8")
    cmd = [BIN, "chat-template", "-m", str(MODEL), "--messages", str(path)]
    if name:
        cmd += ["--chat-template", name]
    if not add_generation_prompt:
        cmd.append("--no-generation-prompt")
    r = subprocess.run(cmd, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode("utf-8").split("\0")
    assert len(out) == len(conversations)
    return out


def compare(tmp_path, source, model_info, name=None):
    """Compares every conversation the template renders; returns how many it did."""
    compared = 0
    for add in (True, False):
        refs = [reference(source, conv, add, model_info["bos"], model_info["eos"])
                for conv in CONVERSATIONS]
        convs = [c for c, ref in zip(CONVERSATIONS, refs) if ref is not None]
        refs = [ref for ref in refs if ref is not None]
        for conv, got, ref in zip(convs, ours(tmp_path, convs, add, name), refs):
            assert got == ref, (name, conv, add)
            compared += 1
    return compared


def test_smollm2_template_from_gguf(tmp_path, model_info):
    src = model_info["template"]
    assert "<|im_start|>" in src
    assert compare(tmp_path, src, model_info) == 2 * len(CONVERSATIONS)
    # The default system prompt is there exactly when the first message is not system.
    with_default, without = ours(tmp_path, [TURNS[:1], [SYSTEM] + TURNS[:1]], True)
    assert "named SmolLM" in with_default and "named SmolLM" not in without


@pytest.mark.parametrize("fixture,family", [(f, f) for f in FAMILIES] + [("gemma3", "gemma")])
def test_family_fixture(tmp_path, model_info, fixture, family):
    src = (FIXTURES / "chat_templates" / f"{fixture}.jinja").read_text(encoding="utf-8")
    compared = compare(tmp_path, src, model_info, family)
    # Gemma 1 and Mistral refuse system messages (4 conversations, 2 prompt settings).
    refused = 8 if fixture in ("gemma", "mistral") else 0
    assert compared == 2 * len(CONVERSATIONS) - refused


def test_unknown_name(tmp_path):
    path = tmp_path / "m.txt"
    path.write_text("user\thi\n")
    r = subprocess.run([BIN, "chat-template", "-m", str(MODEL), "--messages", str(path),
                        "--chat-template", "vicuna"], capture_output=True, timeout=60)
    assert r.returncode == 1
    err = r.stderr.decode()
    assert err.count("\n") == 1 and "'vicuna'" in err
    assert "chatml, llama2, llama3, mistral, gemma, phi3, zephyr" in err


def test_bad_messages_file(tmp_path):
    path = tmp_path / "m.txt"
    path.write_text("no tab here\n")
    r = subprocess.run([BIN, "chat-template", "-m", str(MODEL), "--messages", str(path)],
                       capture_output=True, timeout=60)
    assert r.returncode == 1
    assert "line 1" in r.stderr.decode()
