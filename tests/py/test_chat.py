"""`rocmforge chat` driven through a pseudo-terminal with the default model: the KV
cache carries the conversation (checked by the KV lengths that --verbose prints,
against token counts of the template's rendering), Ctrl-C stops an answer, /reset
empties the cache, /exit, EOF and Ctrl-C at the prompt quit with 0; a model without a
chat template is refused at the start, and messages may come from a pipe."""
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("RF_SOURCE") or Path(__file__).resolve().parents[2])
sys.path.insert(0, str(ROOT / "tools"))

import make_test_model as mtm  # noqa: E402

BIN = os.environ.get("RF_BIN", "rocmforge")
MODELS = Path(os.environ.get("RF_MODELS", ""))
MODEL = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"

KV = re.compile(rb"\[kv (\d+)/(\d+): reused (\d+), prompt \+(\d+), answer \+(\d+)\]")
PROMPT = b"\n> "  # the tty turns "\n" into "\r\n"; the prompt starts a line


@pytest.fixture(scope="module", autouse=True)
def model_present():
    assert MODEL.is_file(), f"model not found: {MODEL} (run scripts/setup.sh)"


class Chat:
    """The chat on the slave side of a pty, as its controlling terminal (so that
    writing \\x03 to the master sends SIGINT, as a keyboard's Ctrl-C does)."""

    def __init__(self, *args):
        argv = [BIN, "chat", "-m", str(MODEL), "-t", "2", "--temp", "0", "-v", *map(str, args)]
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execv(BIN, argv)
            finally:
                os._exit(127)
        self.buf = b"\n"  # so that the first prompt matches PROMPT too
        self.pos = 0
        self.status = None

    def _read(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out; output so far:\n{self.buf.decode(errors='replace')}")
        ready, _, _ = select.select([self.fd], [], [], left)
        if ready:
            try:
                data = os.read(self.fd, 4096)
            except OSError:  # EIO: the child closed the pty
                data = b""
            if not data:
                raise AssertionError(f"chat ended; output:\n{self.buf.decode(errors='replace')}")
            self.buf += data

    def expect(self, pattern, timeout=120):
        """Waits for pattern (bytes or compiled regex) after the last match."""
        rx = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf, self.pos)
            if m:
                self.pos = m.end()
                return m
            self._read(deadline)

    def send(self, text):
        os.write(self.fd, text.encode() if isinstance(text, str) else text)

    def say(self, text):
        """One message; returns (kv, n_ctx, reused, prompt, answer) of its KV line."""
        self.expect(PROMPT)
        self.send(text + "\n")
        return tuple(int(x) for x in self.expect(KV).groups())

    def wait(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                return os.waitstatus_to_exitcode(status)
            try:
                self._read(min(deadline, time.monotonic() + 0.2))
            except AssertionError:
                pass
        raise AssertionError("chat did not exit")

    def close(self):
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
        os.close(self.fd)


@pytest.fixture
def chat():
    opened = []

    def start(*args):
        c = Chat(*args)
        opened.append(c)
        return c

    yield start
    for c in opened:
        c.close()


def n_tokens(text, bos):
    """Token count of text, special-token text parsed, as `rocmforge tokenize` has it."""
    args = [BIN, "tokenize", "-m", str(MODEL), "--parse-special", "-p", text]
    r = subprocess.run(args + ([] if bos else ["--no-bos"]), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return len(re.findall(rb"\d+", r.stdout))


def render(tmp_path, messages, assistant=True):
    path = tmp_path / "conv.txt"
    path.write_text("".join(f"{role}\t{text}\n" for role, text in messages))
    args = [BIN, "chat-template", "-m", str(MODEL), "--messages", str(path)]
    r = subprocess.run(args + ([] if assistant else ["--no-generation-prompt"]),
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def test_two_turns_share_the_cache(chat, tmp_path):
    q1, q2 = "Name three colors.", "Now name three animals."
    c = chat("-n", 12, "-c", 512)
    kv1, n_ctx, reused1, p1, a1 = c.say(q1)
    assert n_ctx == 512 and reused1 == 0
    # The first prompt is the template's rendering of the message, tokens as tokenize.
    assert p1 == n_tokens(render(tmp_path, [("user", q1)]), bos=True)
    assert 0 < a1 <= 12 and kv1 == p1 + a1
    kv2, _, reused2, p2, a2 = c.say(q2)
    # The second turn keeps the first in the cache and adds only its own tokens: the
    # rendering past the first answer (whatever its text, here "X").
    assert reused2 == kv1
    first = render(tmp_path, [("user", q1)]) + "X"
    both = render(tmp_path, [("user", q1), ("assistant", "X"), ("user", q2)])
    assert both.startswith(first)
    assert p2 == n_tokens(both[len(first):], bos=False) and p2 > 5
    assert 0 < a2 <= 12 and kv2 == kv1 + p2 + a2
    c.expect(PROMPT)
    c.send("/exit\n")
    assert c.wait() == 0


def test_ctrl_c_stops_an_answer_and_reset_empties_the_cache(chat):
    c = chat("-c", 1024, "-n", 64)
    c.expect(PROMPT)
    c.send("Write a long story about a dragon who learns to bake bread.\n")
    c.expect(re.compile(rb"\[prompt: \d+ new tokens\]\r\n"))
    c.expect(re.compile(rb"\w+ \w+ \w+"))  # a few words of the answer
    c.send(b"\x03")
    c.expect(b"[interrupted]")
    kv, _, _, p, a = (int(x) for x in c.expect(KV).groups())
    assert 3 <= a < 64 and kv == p + a
    # The chat goes on from the interrupted answer.
    kv2, _, reused, _, _ = c.say("Thanks.")
    assert reused == kv and kv2 > kv
    c.expect(PROMPT)
    c.send("/reset\n")
    c.expect(b"[new conversation]")
    assert c.expect(re.compile(rb"\[kv (\d+)/1024\]")).group(1) == b"0"
    kv3, _, reused3, p3, _ = c.say("Hi.")
    assert reused3 == 0 and p3 > 0 and kv3 < kv2
    c.expect(PROMPT)
    c.send(b"\x03")  # at the prompt: quits
    assert c.wait() == 0


def test_eof_quits(chat):
    c = chat()
    c.expect(PROMPT)
    c.send(b"\x04")
    assert c.wait() == 0


def test_context_overflow_is_reported(chat):
    # 48 tokens: the first prompt (37 with the default system message) fits, its
    # answer fills the rest; then nothing more fits until /reset.
    c = chat("-c", 48)
    kv, n_ctx, _, p, a = c.say("Tell me about the sea.")
    assert n_ctx == 48 and kv == 48 and p + a == 48
    assert b"the context is full (48 tokens)" in c.buf
    kv2, _, reused, p2, a2 = c.say("More.")
    assert b"does not fit the context" in c.buf[c.buf.rfind(b"More."):]
    assert (kv2, reused, p2, a2) == (48, 0, 0, 0)
    c.expect(PROMPT)
    c.send("/reset\n")
    c.expect(b"[kv 0/48]")
    kv3, _, _, p3, _ = c.say("Hi.")
    assert p3 > 0 and kv3 >= p3
    c.expect(PROMPT)
    c.send("/exit\n")
    assert c.wait() == 0


def test_bad_command_line():
    r = subprocess.run([BIN, "chat", "--temp", "x"], capture_output=True, timeout=60)
    assert r.returncode == 2 and b"'x' for --temp" in r.stderr
    r = subprocess.run([BIN, "chat", "extra"], capture_output=True, timeout=60)
    assert r.returncode == 2 and b"unexpected argument 'extra'" in r.stderr


def test_template_required_and_piped_input(tmp_path):
    path = mtm.write_model("llama2-f16", tmp_path)  # no tokenizer.chat_template
    args = [BIN, "chat", "-m", str(path), "-t", "2", "--temp", "0", "-v", "-n", "4"]
    r = subprocess.run(args, input=b"hi\n", capture_output=True, timeout=60)
    assert r.returncode == 1 and r.stdout == b""
    assert b"has no tokenizer.chat_template" in r.stderr.splitlines()[-1]
    assert b"[seed" not in r.stderr  # refused before anything else
    # Forced template, messages from a pipe (no prompt, no echo), a last line without '\n'.
    r = subprocess.run(args + ["--chat-template", "chatml"], input=b"hi\nmore",
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    kvs = [tuple(map(int, m)) for m in KV.findall(r.stderr)]
    assert len(kvs) == 2 and kvs[1][2] == kvs[0][0] and kvs[1][0] == sum(kvs[0][3:]) + sum(kvs[1][3:])
    assert b"> " not in r.stdout


def test_ctrl_c_during_a_long_prompt(chat, tmp_path):
    # ~600 tokens in continuation lines (a terminal line holds at most 4095 bytes):
    # seconds of prompt processing, stopped after its first chunk by Ctrl-C.
    c = chat("-n", 8, "-c", 1024)
    c.expect(PROMPT)
    lines = [f"Line {i}: the quick brown fox jumps over the lazy dog again and again." for i in range(40)]
    c.send("\\\n".join(lines) + "\n")
    n_new = int(c.expect(re.compile(rb"\[prompt: (\d+) new tokens\]")).group(1))
    assert n_new > 500
    c.send(b"\x03")
    c.expect(b"[interrupted]")
    kv1, _, reused1, p1, a1 = (int(x) for x in c.expect(KV).groups())
    assert reused1 == 0 and a1 == 0 and 0 < p1 == kv1 < 500
    # The cut prompt is not part of the conversation: the next turn's rendering is
    # [user "Hi."], whose tokens match the cache up to the user turn's start; the
    # cache keeps those and continues from there.
    kv2, _, reused2, p2, a2 = c.say("Hi.")
    differs = int(re.search(rb"\[the cache differs from the conversation from token (\d+) on\]",
                            c.buf).group(1))
    assert 0 < differs == reused2 < kv1
    assert reused2 + p2 == n_tokens(render(tmp_path, [("user", "Hi.")]), bos=True)
    assert kv2 == reused2 + p2 + a2
    c.expect(PROMPT)
    c.send("/exit\n")
    assert c.wait() == 0
