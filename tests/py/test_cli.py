"""Black-box tests of the rocmforge binary ($RF_BIN) and examples/simple ($RF_SIMPLE)
with the default model in $RF_MODELS."""
import json
import math
import os
import re
import subprocess
from pathlib import Path

import pytest

BIN = os.environ.get("RF_BIN", "rocmforge")
SIMPLE = os.environ.get("RF_SIMPLE", "simple")
MODELS = Path(os.environ.get("RF_MODELS", ""))
MODEL = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"
FIXTURES = Path(os.environ.get("RF_FIXTURES", Path(__file__).parents[1] / "fixtures"))
SUBCOMMANDS = ["run", "tokenize", "info", "bench", "serve", "chat", "models", "perplexity"]


def rf(*args, env=None, timeout=300):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([BIN, *map(str, args)], capture_output=True, timeout=timeout, env=e)
    return r.returncode, r.stdout.decode("utf-8"), r.stderr.decode("utf-8")


def generate(*args):
    code, out, err = rf("run", "-m", MODEL, "-t", 2, *args)
    assert code == 0, err
    return out, err


def n_generated(err):
    return int(re.search(r"^generated: (\d+) tokens", err, re.M).group(1))


@pytest.fixture(scope="module", autouse=True)
def model_present():
    assert MODEL.is_file(), f"model not found: {MODEL} (run scripts/setup.sh)"


# ---- help and command-line errors ----

@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_help(sub):
    code, out, err = rf(sub, "--help")
    assert code == 0 and err == ""
    assert out.startswith(f"usage: rocmforge {sub}")


def test_top_level_help():
    code, out, _ = rf("--help")
    assert code == 0
    listed = re.findall(r"^  (\S+)", out, re.M)
    assert listed == SUBCOMMANDS
    code, out, err = rf()
    assert code == 2 and out == "" and "usage: rocmforge" in err


@pytest.mark.parametrize("args,needle", [
    (["run", "-p", "hi", "--bogus"], "'--bogus'"),
    (["run", "-p", "hi", "-Z"], "'-Z'"),
    (["run", "-p", "hi", "-n", "abc"], "'abc' for -n"),
    (["run", "-p", "hi", "--temp", "x"], "'x' for --temp"),
    (["run", "-p", "hi", "--top-k", "-1"], "--top-k"),
    (["run", "-p"], "'-p' needs a value"),
    (["run"], "no prompt"),
    (["run", "-p", "a", "-f", "b"], "not both"),
    (["tokenize"], "-p TEXT"),
    (["info"], "one FILE"),
    (["bench", "-r", "0"], "'0' for -r"),
    (["bench", "-b", "0"], "'0' for -b"),
    (["bench", "-b", "x"], "'x' for -b"),
    (["bench", "-b", "1,,8"], "'1,,8' for -b"),
    (["bench", "--batch", "4097"], "'4097' for -b"),
    (["bench", "-b", "8", "-n", "1"], "-b needs -n of at least 2"),
    (["chatter"], "unknown subcommand 'chatter'"),
    (["serve", "--port", "x"], "'x' for --port"),
])
def test_bad_command_line(args, needle):
    code, out, err = rf(*args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and needle in err, err


def test_missing_model(tmp_path):
    missing = tmp_path / "nope.gguf"
    code, out, err = rf("run", "-m", missing, "-p", "hi")
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert str(missing) in err and "make models" in err and "scripts/setup.sh" in err
    # The default model is looked up in $ROCMFORGE_MODELS.
    code, _, err = rf("run", "-p", "hi", env={"ROCMFORGE_MODELS": str(tmp_path)})
    assert code == 1 and err.count("\n") == 1
    assert str(tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf") in err and "make models" in err


def test_default_model_from_env():
    code, out, err = rf("tokenize", "-p", "Hello", env={"ROCMFORGE_MODELS": str(MODELS)})
    assert code == 0, err
    assert json.loads(out) == [19556]


# ---- tokenize ----

def _ids(field):
    return [int(x) for x in re.split(r"[,\s]+", field.strip()) if x]


def test_tokenize_matches_fixture(tmp_path):
    path = FIXTURES / "smollm2_tokenize.txt"
    assert path.is_file(), f"missing fixture {path}"
    # hex(input) \t ids \t ids with parse_special \t ...
    rows = [line.split("\t")[:3] for line in path.read_text().split("\n")
            if line and not line.startswith("#")]
    assert len(rows) >= 16
    # A spread of rows plus some where special-token text matters keeps the test short.
    picked = rows[::len(rows) // 16] + [r for r in rows if r[1] != r[2]][:6]
    assert any(r[1] != r[2] for r in picked)
    for hexed, plain, special in picked:
        text = tmp_path / "in.txt"
        text.write_bytes(bytes.fromhex(hexed))
        code, out, err = rf("tokenize", "-m", MODEL, "-f", text)
        assert code == 0, err
        assert out.count("\n") == 1
        assert json.loads(out) == _ids(plain), hexed
        code, out, err = rf("tokenize", "-m", MODEL, "-f", text, "--parse-special")
        assert code == 0, err
        assert json.loads(out) == _ids(special), hexed


def test_tokenize_special():
    code, out, _ = rf("tokenize", "-m", MODEL, "-p", "<|im_start|>user", "--parse-special")
    assert code == 0 and json.loads(out) == [1, 4093]
    code, out, _ = rf("tokenize", "-m", MODEL, "-p", "<|im_start|>user")
    assert code == 0 and 1 not in json.loads(out)


# ---- info ----

def test_info():
    code, out, err = rf("info", MODEL)
    assert code == 0, err
    assert re.search(r"^architecture:\s+llama$", out, re.M)
    # Type histogram: count per type.
    assert re.search(r"^\s+F32\s+61\s", out, re.M)
    assert re.search(r"^\s+Q4_1\s+210\s", out, re.M)
    assert re.search(r"^\s+Q8_0\s+1\s", out, re.M)


def test_info_bad_file(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + bytes(60))
    code, out, err = rf("info", bad)
    assert code == 1 and out == "" and err.count("\n") == 1 and "magic" in err


# ---- run ----

PROMPT = "The capital of France is"


def test_greedy_is_deterministic():
    out1, err1 = generate("-p", PROMPT, "-n", 16, "--temp", 0)
    out2, err2 = generate("-p", PROMPT, "-n", 16, "--temp", 0)
    assert out1 == out2 and len(out1) > 0
    assert n_generated(err1) == 16
    hash1 = re.search(r"^logits hash: ([0-9a-f]{16})$", err1, re.M).group(1)
    hash2 = re.search(r"^logits hash: ([0-9a-f]{16})$", err2, re.M).group(1)
    assert hash1 == hash2
    assert re.search(r"^prompt: 5 tokens, [\d.]+ s, [\d.]+ t/s$", err1, re.M)
    # The greedy continuation tokenizes to llama.cpp's (tests/fixtures/smollm2_greedy.txt).
    code, ids, _ = rf("tokenize", "-m", MODEL, "-p", out1)
    assert code == 0
    assert json.loads(ids)[:4] == [7042, 30, 198, 198]


def test_seed():
    args = ("-p", "Once upon a time", "-n", 12, "--temp", 1.0, "--top-k", 0, "--top-p", 1,
            "--min-p", 0)
    a, err = generate(*args, "--seed", 42)
    b, _ = generate(*args, "--seed", 42)
    c, _ = generate(*args, "--seed", 7)
    assert a == b
    assert a != c
    assert re.search(r"^seed: 42$", err, re.M)


def test_echo_and_chat_template():
    out, err = generate("-p", "Hi!", "--chat", "--echo", "-n", 0)
    assert n_generated(err) == 0
    assert out == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
                   "Hugging Face<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
                   "<|im_start|>assistant\n")
    out, _ = generate("-p", "Hi!", "--system", "Be brief.", "--chat-template", "zephyr",
                      "--echo", "-n", 0)
    assert out == "<|system|>\nBe brief.<|im_end|>\n<|user|>\nHi!<|im_end|>\n<|assistant|>\n"


def test_end_of_generation():
    args = ("--chat", "-p", "What is 2+2? Answer with just the number.", "--temp", 0)
    out, err = generate(*args, "-n", 40)
    stopped = n_generated(err)
    assert 0 < stopped < 40 and "4" in out
    _, err = generate(*args, "-n", stopped + 3, "--ignore-eos")
    assert n_generated(err) == stopped + 3


def test_until_context_full():
    _, err = generate("-p", PROMPT, "-c", 12, "-n", -1, "--temp", 0)
    assert n_generated(err) == 12 - 5 + 1  # the last token needs no decode
    assert "context is full" in err


def test_prompt_longer_than_context():
    code, out, err = rf("run", "-m", MODEL, "-c", 8, "-p", "one two three four five six seven "
                        "eight nine ten eleven twelve")
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert re.search(r"the prompt is \d+ tokens, longer than the context of 8 tokens", err)


def test_prompt_file(tmp_path):
    p = tmp_path / "prompt.txt"
    p.write_text(PROMPT)
    a, _ = generate("-f", p, "-n", 6, "--temp", 0)
    b, _ = generate("-p", PROMPT, "-n", 6, "--temp", 0)
    assert a == b


# ---- bench ----

def test_bench():
    code, out, err = rf("bench", "-m", MODEL, "-p", 32, "-n", 8, "-r", 1, "-t", 2)
    assert code == 0, err
    rows = [line for line in out.splitlines() if line.startswith("|")]
    assert rows[0].split("|")[1:-1] == [" model ", " size ", " backend ", " threads ", " test ",
                                        " t/s ", " B/token ", " GB/s ", " of copy "]
    cells = {r.split("|")[5].strip(): [c.strip() for c in r.split("|")[1:-1]] for r in rows[2:]}
    assert set(cells) == {"pp32", "tg8"}
    for test in ("pp32", "tg8"):
        mean, sd = cells[test][5].split(" ± ")
        assert float(mean) > 0 and float(sd) == 0  # one repetition
        assert cells[test][3] == "2"
        assert cells[test][0].startswith("llama ")
        assert cells[test][2] == "CPU"  # RF_N_GPU_LAYERS unset: tests run on the CPU
        assert cells[test][8] == ""  # share of the copy bandwidth: GPU runs only
    assert float(cells["tg8"][7]) > 0


def test_bench_gpu_layers_without_gpu():
    """Layers asked for on a machine (or build) without a usable GPU: a notice, then the
    CPU."""
    code, out, err = rf("bench", "-m", MODEL, "-p", 8, "-n", 2, "-r", 1, "-t", 2, "-ngl", 4)
    assert code == 0, err
    assert "running on the CPU" in err
    assert "| CPU |" in out


def test_bench_batch():
    """-b: N sequences at once through the scheduler, one row per N; the rates agree with
    the times and token counts printed beside them."""
    code, out, err = rf("bench", "-m", MODEL, "-b", "1,3", "-p", 8, "-n", 4, "-r", 1, "-t", 2)
    assert code == 0, err
    assert out.startswith("device: CPU, 2 threads\n")
    rows = [line for line in out.splitlines() if line.startswith("|")]
    assert [c.strip() for c in rows[0].split("|")[1:-1]] == [
        "model", "backend", "N", "PP", "TG", "T_PP s", "S_PP t/s", "T_TG s", "S_TG t/s",
        "total t/s"]
    cells = [[c.strip() for c in r.split("|")[1:-1]] for r in rows[2:]]
    assert [c[2] for c in cells] == ["1", "3"]
    for c in cells:
        n = int(c[2])
        assert c[0].startswith("llama SmolLM2") and c[1] == "CPU" and c[3:5] == ["8", "4"]
        t_pp, t_tg = float(c[5]), float(c[7])
        (s_pp, sd_pp), (s_tg, sd_tg), (total, sd_total) = (
            tuple(float(x) for x in c[i].split(" ± ")) for i in (6, 8, 9))
        for v in (t_pp, t_tg, s_pp, s_tg, total):
            assert math.isfinite(v) and v > 0, c
        assert sd_pp == sd_tg == sd_total == 0  # one repetition
        assert s_pp == pytest.approx(n * 8 / t_pp, rel=0.05)
        assert total == pytest.approx(n * 4 / (t_pp + t_tg), rel=0.05)
        # Generated while every sequence runs: the last one's 3 after its first at least,
        # every sequence's 3 at most.
        assert 3 * 0.95 <= s_tg * t_tg <= n * 3 * 1.05


# ---- examples/simple ----

def test_simple_matches_run():
    prompt = "Once upon a time"
    r = subprocess.run([SIMPLE, str(MODEL), prompt, "16"], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    out, _ = generate("-p", prompt, "-n", 16, "--temp", 0)
    assert r.stdout.decode("utf-8") == out and len(out) > 0
    r = subprocess.run([SIMPLE, str(MODEL)], capture_output=True, timeout=60)
    assert r.returncode == 2 and b"usage" in r.stderr
