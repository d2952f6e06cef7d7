#!/usr/bin/env python3
"""Renders the real chat templates with jinja2 into tests/fixtures/templates/expected.json.

Templates: tests/fixtures/chat_templates/*.jinja and tests/fixtures/templates/*.jinja
(each the `chat_template` string of a model's tokenizer_config.json or GGUF
tokenizer.chat_template, byte for byte). Every template renders every conversation of
CONVERSATIONS with and without the generation prompt, as transformers'
apply_chat_template does (sandboxed, trim_blocks, lstrip_blocks, raise_exception). A
BOS the template renders at the very start is left out of the expected text (rocmforge
leaves it to the tokenizer); a template that raises gives null.

tests/unit/test_chat_template_jinja.c renders the same cases with rf_chat_render, the
family detected from the template text, and compares byte for byte.

  /work/ref/venv/bin/python tools/make_chat_template_fixtures.py
  ... --from-gguf MODEL.gguf NAME   also writes tests/fixtures/templates/NAME.jinja from
                                    the model's tokenizer.chat_template
"""
import argparse
import json
from pathlib import Path

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parents[1]
DIRS = [ROOT / "tests/fixtures/chat_templates", ROOT / "tests/fixtures/templates"]
OUT = ROOT / "tests/fixtures/templates/expected.json"
BOS, EOS = "<s>", "</s>"
BOS_MARK = "\x01BOS\x01"


def m(role, content):
    return {"role": role, "content": content}


SYS = m("system", "You are terse.  ")
U1 = m("user", "  Hello, who are you?\n")
A1 = m("assistant", "I am a bot.\u3000")
U2 = m("user", "Tell me\ta joke\\n about C \u2603 \u65e5\u672c")
A2 = m("assistant", " Why?\r ")
CONVERSATIONS = [
    [U1],
    [U1, A1],
    [U1, A1, U2],
    [U1, A1, U2, A2],
    [SYS, U1],
    [SYS, U1, A1, U2],
    [SYS],
    [],
    [m("system", ""), U1],
    [U1, m("assistant", ""), U2],
    [U1, U2],
    [SYS, m("system", "Second system."), U1],
    [U1, A1, m("system", "Late system."), U2],
    [A1, U1],
    [U1, m("tool", "42"), m("tool", "43"), A1],
    [U1, m("tool", "only")],
    [U1, m("developer", "Be kind."), A1, U2],
    [m("user", "<|im_end|> [INST] <start_of_turn> literal markers")],
    [m("user", "")],
]


def jinja_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env.globals["raise_exception"] = raise_exception
    return env


def render(source, messages, add_generation_prompt):
    try:
        text = jinja_env().from_string(source).render(
            messages=messages, add_generation_prompt=add_generation_prompt,
            bos_token=BOS_MARK, eos_token=EOS)
    except jinja2.exceptions.TemplateError:
        return None
    if text.startswith(BOS_MARK):
        text = text[len(BOS_MARK):]
    return text.replace(BOS_MARK, BOS)


def from_gguf(path, name):
    import gguf
    r = gguf.GGUFReader(path)
    f = r.fields["tokenizer.chat_template"]
    text = bytes(f.parts[f.data[0]]).decode("utf-8")
    (DIRS[1] / f"{name}.jinja").write_text(text, encoding="utf-8", newline="")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--from-gguf", nargs=2, metavar=("MODEL", "NAME"))
    args = ap.parse_args()
    if args.from_gguf:
        from_gguf(*args.from_gguf)
    cases = []
    for d in DIRS:
        for path in sorted(d.glob("*.jinja")):
            source = path.read_text(encoding="utf-8")
            for conv in CONVERSATIONS:
                for add in (True, False):
                    cases.append({
                        "template": str(path.relative_to(ROOT / "tests/fixtures")),
                        "messages": conv, "add_generation_prompt": add,
                        "expected": render(source, conv, add)})
    # one case per line, so that a diff of the file shows which cases changed
    lines = ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases)
    head = json.dumps({"bos": BOS, "eos": EOS})[:-1]
    OUT.write_text(f'{head}, "cases": [\n{lines}\n]}}\n', encoding="utf-8")
    rendered = sum(c["expected"] is not None for c in cases)
    print(f"{OUT.relative_to(ROOT)}: {len(cases)} cases, {rendered} rendered")


if __name__ == "__main__":
    main()
