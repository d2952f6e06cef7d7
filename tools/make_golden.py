"""Golden fixtures from llama-cpp-python (the reference implementation).

Usage (with the reference venv that has llama_cpp installed):
    python tools/make_golden.py --what tokenize|greedy [--models DIR] [--model PATH ...] [--out DIR]

--what selects the fixture kind; each kind is one function registered in WHAT below, so
more kinds can be added without touching the others.

tokenize: for each model, tests/fixtures/<name>_tokenize.txt with one case per line:
    <hex of the input bytes> \t <ids, parse_special=false> \t <ids, parse_special=true>
    \t <hex of the concatenated pieces of the first ids, special tokens not rendered>
Ids are space-separated and include BOS/EOS as the model's add_bos/add_eos decide. Header
lines start with '#'. The corpus is generated deterministically (fixed seed).

greedy: tests/fixtures/smollm2_greedy.txt and smollm2_logprobs.f16: for 20 prompts, the
greedy 64-token continuation and the log-probabilities at 8 teacher-forced positions
(see tools/golden_logits.py). For Gemma 3 (262144 tokens: full rows would be 84 MB),
gemma3_greedy.txt and gemma3_logprobs.top: GEMMA_GEN-token continuations, the same
positions, each row as the top GEMMA_TOP log-probabilities (golden_logits.write_top),
and gemma3_long.txt / .top: two positions past the 512-token sliding window. Without --model both are made
from the models found in --models.
"""
import argparse
import glob
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODELS = os.path.expanduser(os.environ.get("ROCMFORGE_MODELS", "~/.cache/rocmforge/models"))

# model files the tokenize fixtures are made for: fixture name -> glob in the models dir
TOKENIZE_MODELS = {
    "smollm2": "SmolLM2-135M-Instruct*.gguf",
    "gemma3": "gemma-3-270m*.gguf",
}

# The same vocab with another tokenizer.ggml.pre, to check each pre-tokenizer family
# against llama.cpp on a real vocab (every VARIANT_STRIDE-th corpus case).
TOKENIZE_VARIANTS = {
    "smollm2": ["llama-bpe", "qwen2", "gpt-2", "default"],
}
VARIANT_STRIDE = 3

SEED = 20240607

# ---------------------------------------------------------------------------------------
# corpus
# ---------------------------------------------------------------------------------------

WORDS = (
    "the of and to in is was that for it with as on be at by this had not are but from or have an "
    "they which one you were all her she there would their we him been has when who will more no "
    "if out so said what up its about into than them can only other new some could time these two "
    "may then do first any my now such like our over man me even most made after also did many "
    "before must through back years where much your way well down should because each just those "
    "people how too little state good very make world still own see men work long get here between "
    "both life being under never day same another know while last might us great old year off come "
    "since against go came right used take three tokenizer inference quantization transformer GPU "
    "kernel matrix vector attention softmax embedding llama gemma rocm HIP CUDA Python"
).split()

FIXED = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", " \n", "\n ", " \t \n ",
    "a", "A", "Hello", " Hello", "Hello ", " Hello ", "Hello world", "Hello  world", "Hello   world",
    "Hello, world!", "hello\nworld", "hello\n\nworld", "hello\r\nworld", "hello\tworld",
    "I'm", "you're", "it's", "we've", "they'll", "he'd", "can't", "DON'T", "It'S", "I'M", "'s", "''s",
    "'", "''", "'''", "x'", "'x", "rock'n'roll", "O'Neil's", "it\u2019s", "don\u2019t",
    "0", "1", "12", "123", "1234", "12345", "123456", "1234567", "3.14159", "-42", "+7", "1e10",
    "1,000,000", "2024-06-07", "12:34:56", "0x1F", "0b1010", "1/2", "50%", "$100", "\u20ac99",
    "\u00bd", "\u00b2", "\u2167", "\u0661\u0662\u0663", "\u0967\u0968\u0969", "\uff11\uff12\uff13",
    "caf\u00e9", "nai\u0308ve", "na\u00efve", "\u00c5ngstr\u00f6m", "ni\u00f1o", "e\u0301",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!", "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645", "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e0a\u0e32\u0e27\u0e42\u0e25\u0e01", "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4", "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c", "\u30ab\u30bf\u30ab\u30ca",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01", "\u6f22\u5b57\u3068\u304b\u306a", "\u4e2d\u6587 English \u6df7\u5408",
    "\U0001f600", "\U0001f44d\U0001f3fd", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "\U0001f3f3\ufe0f\u200d\U0001f308", "\U0001f1fa\U0001f1f8", "1\ufe0f\u20e3", "\u2764\ufe0f",
    "\U0001f9d1\U0001f3ff\u200d\U0001f4bb", "I \u2764\ufe0f \U0001f355!", "\U0001f600\U0001f600\U0001f600",
    "\u00a0", "a\u00a0b", "\u3000", "a\u3000b", "a\u2028b", "a\u0085b", "a\u000bb", "a\u000cb",
    "a\u200bb", "a\u2009b", "\ufeffBOM", "tab\tseparated\tvalues", "    indented", "\tindented",
    "trailing   ", "   leading", "  both  ", "\n\nleading newlines", "trailing newlines\n\n",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nHi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start", "im_start|>", "<|im_start|", "|im_start|>", "<||im_start|>", "<|IM_START|>",
    "<|im_start|><|im_end|>", "<|im_<|im_end|>start|>", " <|im_start|> ", "<|im_start|>  x",
    "x<|endoftext|>y", "<|endoftext|><|endoftext|>", "<|endoftext|", "<<|endoftext|>>", "<|im_end|>\n",
    "<repo_name>", "<file_sep>", "<filename>", "<reponame>x", "<jupyter_code>print(1)",
    "<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
    "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n", "<start_of_turn", "end_of_turn>",
    "<start_of_image>", "<end_of_image>", "<unused0>", "<unused99>", "[multimodal]", "<s>", "</s>",
    "<h1>Title</h1>", "<br>", "</div>", "<table><tr><td>1</td></tr></table>",
    "a" * 300, "supercalifragilisticexpialidocious" * 10, "9" * 200, "ab" * 150, "\u00e9" * 100,
    "\u4e00" * 100, "\U0001f600" * 50, " " * 100, "\n" * 50, "\t" * 40, "-" * 80, "=" * 64, "." * 50,
    "https://example.com/path/to/page?query=1&other=two#frag",
    "user@example.com", "C:\\Windows\\System32", "/usr/local/bin/python3",
    "aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQgZW5jb2RlZCB0ZXh0IQ==",
    # letters, digits and punctuation new in Unicode 15.0/15.1 (Kawi, Nag Mundari, CJK ext. H/I)
    "x\U00011f04\U00011f05 \U00011f50\U00011f51\U00011f52\U00011f53", "\U00031350\U00031351 \U0002ebf0a",
    "\U0001e030\U0001e031 \U0001e4d0\U0001e4f1\U0001e4f2\U0001e4f3\U0001e4f4", "a\U00011b00\U00011b01b\U00011f43",
    "\U0001d2c0\U0001d2c1\U0001d2c2\U0001d2c3 12", " \U0001123f", "'\U00011f04", "\U0001df25x",
]

CODE = [
    "def f(x):\n    return x * 2\n",
    "for i in range(10):\n\tprint(i)\n",
    "class Foo(Bar):\n    def __init__(self):\n        super().__init__()\n        self.x = {'a': 1}\n",
    "import numpy as np\narr = np.zeros((3, 4), dtype=np.float32)\n",
    "#include <stdio.h>\n\nint main(void)\n{\n    printf(\"%d\\n\", 42);\n    return 0;\n}\n",
    "static inline uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }",
    "if (a != b && c <= d || !e) { x += 1; y -= 2; z *= 3; w /= 4; }",
    "struct node *n = malloc(sizeof *n);\nif (!n) goto fail;\n",
    "{\"name\": \"rocmforge\", \"version\": \"0.1.0\", \"tags\": [\"llm\", \"gguf\"], \"ok\": true, \"n\": null}",
    "[{\"id\": 1, \"v\": 3.5e-7}, {\"id\": 2, \"v\": -0.25}]",
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>T</title></head>\n<body></body>\n</html>",
    "<div class=\"a b\" id='x'>&amp; &lt;tag&gt; &#x27;</div>",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
    "fn main() {\n    let v: Vec<i32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "const f = async (a, b) => { await g(a ?? b); return a?.b ?? `t${a}`; };",
    "x = [i**2 for i in range(100) if i % 3 == 0]  # squares\n",
    "    \n    \n\t\t\n",
    "$ ls -la | grep '\\.gguf$' && echo done >> log.txt 2>&1",
    "a := b; c <<= 2; d >>= 3; e ^= f; g |= h; i &= ~j;",
    "\"\"\"Docstring with 'quotes' and \\\"escapes\\\".\"\"\"",
]

INVALID_UTF8 = [
    b"\x80", b"\xbf", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xff", b"\xfe", b"\xc0\x80",
    b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf0\x80\x80\x80",
    b"abc\x80def", b"caf\xc3", b"\xc3(", b"\xe2\x28\xa1", b"\xf8\x88\x80\x80\x80",
    b"Hello \xff\xfe world", b"\xc3\xa9\xc3", b"\x80\x80\x80", b"x\xe2\x82y",
]

ALPHABETS = {
    "latin": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "accents": "\u00e0\u00e1\u00e2\u00e4\u00e7\u00e8\u00e9\u00ea\u00eb\u00ee\u00ef\u00f4\u00f6\u00f9\u00fb\u00fc\u00ff\u00f1\u00c9\u00c0\u0153\u00df\u0142\u017e\u0161\u010d",
    "cyrillic": "\u0430\u0431\u0432\u0433\u0434\u0435\u0436\u0437\u0438\u0439\u043a\u043b\u043c\u043d\u043e\u043f\u0440\u0441\u0442\u0443\u0444\u0445\u0446\u0447\u0448\u0449\u044b\u044c\u044d\u044e\u044f\u0401\u0416",
    "greek": "\u03b1\u03b2\u03b3\u03b4\u03b5\u03b6\u03b7\u03b8\u03b9\u03ba\u03bb\u03bc\u03bd\u03be\u03bf\u03c0\u03c1\u03c3\u03c2\u03c4\u03c5\u03c6\u03c7\u03c8\u03c9\u0391\u03a9\u03ac\u03ad",
    "arabic": "\u0627\u0628\u062a\u062b\u062c\u062d\u062e\u062f\u0630\u0631\u0632\u0633\u0634\u0635\u0636\u0637\u0638\u0639\u063a\u0641\u0642\u0643\u0644\u0645\u0646\u0647\u0648\u064a\u064e\u064f",
    "hindi": "\u0905\u0906\u0907\u0915\u0916\u0917\u0918\u091a\u091b\u091c\u091f\u0921\u0924\u0926\u0928\u092a\u092c\u092e\u092f\u0930\u0932\u0935\u0936\u0938\u0939\u093e\u093f\u0940\u0941\u0947\u094b\u094d\u0902",
    "thai": "\u0e01\u0e02\u0e04\u0e07\u0e08\u0e0a\u0e14\u0e15\u0e17\u0e19\u0e1a\u0e1b\u0e1e\u0e21\u0e22\u0e23\u0e25\u0e27\u0e2a\u0e2b\u0e2d\u0e30\u0e31\u0e32\u0e34\u0e35\u0e38\u0e40\u0e41\u0e48\u0e49",
    "cjk": "\u7684\u4e00\u662f\u4e0d\u4e86\u4eba\u6211\u5728\u6709\u4ed6\u8fd9\u4e2d\u5927\u6765\u4e0a\u56fd\u4e2a\u5230\u8bf4\u4eec\u4e3a\u5b50\u548c\u4f60\u5730\u51fa\u9053\u4e5f\u65f6\u5e74",
    "kana": "\u3042\u3044\u3046\u3048\u304a\u304b\u304d\u304f\u3051\u3053\u3055\u3057\u3059\u305b\u305d\u305f\u3061\u3064\u3066\u3068\u30a2\u30a4\u30a6\u30a8\u30aa\u30ab\u30ad\u30af\u30fc",
    "hangul": "\uac00\ub098\ub2e4\ub77c\ub9c8\ubc14\uc0ac\uc544\uc790\ucc28\uce74\ud0c0\ud30c\ud558\ud55c\uad6d\uc5b4\ub9d0\uae00",
    "emoji": ["\U0001f600", "\U0001f602", "\U0001f60d", "\U0001f44d", "\U0001f44d\U0001f3fb", "\U0001f44d\U0001f3ff",
              "\U0001f525", "\U0001f680", "\u2764\ufe0f", "\U0001f468\u200d\U0001f4bb", "\U0001f469\u200d\U0001f52c",
              "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f1ef\U0001f1f5", "\u2705", "\u2728", "\U0001f914",
              "\U0001f9d1\U0001f3fd\u200d\U0001f680", "\u263a\ufe0f", "#\ufe0f\u20e3", "\U0001f408\u200d\u2b1b"],
    "punct": "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\u00a1\u00bf\u2013\u2014\u2018\u2019\u201c\u201d\u2026\u00ab\u00bb\u3001\u3002\uff01\uff1f",
    "space": [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\u00a0", "\u3000", "\t\t", "    "],
    "digits": "0123456789",
}

SPECIAL_TEXTS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<start_of_turn>", "<end_of_turn>",
                 "<bos>", "<eos>", "<|im_start", "im_end|>", "<|", "|>", "<", ">", "<repo_name>"]


def rand_word(rng, alpha, lo=1, hi=10):
    return "".join(rng.choice(alpha) for _ in range(rng.randint(lo, hi)))


def gen_prose(rng):
    n = rng.randint(3, 25)
    words = [rng.choice(WORDS) for _ in range(n)]
    if rng.random() < 0.5:
        words[0] = words[0].capitalize()
    out = ""
    for i, w in enumerate(words):
        out += w
        if i + 1 < n:
            out += rng.choice([" ", " ", " ", " ", ", ", "; ", ": ", " - ", "  ", "'s "])
    return out + rng.choice([".", "!", "?", "...", "", "\n", " ", ".\n\n"])


def gen_numbers(rng):
    kind = rng.randint(0, 5)
    if kind == 0:
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 60)))
    if kind == 1:
        return f"{rng.randint(-10**9, 10**9):,}"
    if kind == 2:
        return f"{rng.uniform(-1e6, 1e6):.{rng.randint(0, 8)}f}"
    if kind == 3:
        return " ".join(str(rng.randint(0, 10**rng.randint(1, 12))) for _ in range(rng.randint(2, 8)))
    if kind == 4:
        return f"+1 ({rng.randint(100, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
    return f"v{rng.randint(0, 20)}.{rng.randint(0, 99)}.{rng.randint(0, 999)}-rc{rng.randint(1, 9)}"


def gen_punct(rng):
    p = ALPHABETS["punct"]
    return "".join(rng.choice(p + "  a") for _ in range(rng.randint(1, 20)))


def gen_script(rng):
    name = rng.choice(["accents", "cyrillic", "greek", "arabic", "hindi", "thai", "cjk", "kana", "hangul"])
    alpha = ALPHABETS[name]
    sep = "" if name in ("cjk", "kana", "thai") and rng.random() < 0.5 else " "
    words = [rand_word(rng, alpha, 1, 8) for _ in range(rng.randint(1, 8))]
    if rng.random() < 0.3:
        words.insert(rng.randint(0, len(words)), rng.choice(WORDS))
    return sep.join(words) + rng.choice(["", ".", "\u3002", "?", "!", "\n"])


def gen_emoji(rng):
    out = ""
    for _ in range(rng.randint(1, 8)):
        out += rng.choice(ALPHABETS["emoji"])
        if rng.random() < 0.4:
            out += rng.choice([" ", "", "!", " and ", "\n"])
        if rng.random() < 0.3:
            out += rng.choice(WORDS)
    return out


def gen_code(rng):
    s = rng.choice(CODE)
    if rng.random() < 0.3:
        s = s.replace("    ", "\t")
    if rng.random() < 0.3:
        s = s.replace("\n", "\r\n")
    return s


def gen_spaces(rng):
    out = ""
    for _ in range(rng.randint(1, 8)):
        out += rng.choice(ALPHABETS["space"]) * rng.randint(1, 4)
        if rng.random() < 0.6:
            out += rng.choice(WORDS + list("0123456789.,!"))
    return out


def gen_special(rng):
    out = ""
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        if r < 0.5:
            out += rng.choice(SPECIAL_TEXTS)
        elif r < 0.8:
            out += rng.choice(WORDS)
        else:
            out += rng.choice(ALPHABETS["space"])
    return out


def gen_long(rng):
    alpha = rng.choice([ALPHABETS["latin"], ALPHABETS["cyrillic"], ALPHABETS["digits"], ALPHABETS["cjk"], "ab"])
    return rand_word(rng, alpha, 50, 400)


def gen_mix(rng):
    parts = [g(rng) for g in rng.sample(GENERATORS[:-1], rng.randint(2, 4))]
    return rng.choice(["", " ", "\n"]).join(parts)


GENERATORS = [gen_prose, gen_numbers, gen_punct, gen_script, gen_emoji, gen_code, gen_spaces,
              gen_special, gen_long, gen_mix]
COUNTS = [150, 90, 60, 150, 80, 50, 90, 90, 30, 160]


def llama_decodes_badly(b):
    """True when b holds a 4-byte sequence above U+10FFFF: llama.cpp's byte-level BPE
    throws on it (the process aborts), so such inputs stay out of the corpus."""
    i = 0
    while i < len(b):
        c = b[i]
        if 0xF0 <= c <= 0xF7 and i + 3 < len(b) and all(0x80 <= x <= 0xBF for x in b[i + 1:i + 4]):
            cp = ((c & 7) << 18) | ((b[i + 1] & 63) << 12) | ((b[i + 2] & 63) << 6) | (b[i + 3] & 63)
            if cp > 0x10FFFF:
                return True
        i += 1
    return False


def gen_bytes(rng):
    """Random short byte strings with some valid text around."""
    raw = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 12)))
    return rng.choice(WORDS).encode() + raw + rng.choice(["", " x", "\u00e9"]).encode()


def build_corpus():
    rng = random.Random(SEED)
    cases = [s.encode("utf-8") for s in FIXED] + [c.encode("utf-8") for c in CODE] + list(INVALID_UTF8)
    for gen, n in zip(GENERATORS, COUNTS):
        cases += [gen(rng).encode("utf-8") for _ in range(n)]
    for _ in range(60):
        b = gen_bytes(rng)
        if not llama_decodes_badly(b):
            cases.append(b)
    seen, out = set(), []
    for c in cases:
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


# ---------------------------------------------------------------------------------------
# tokenize fixtures
# ---------------------------------------------------------------------------------------

def piece(llama_cpp, vocab, tok, special):
    buf = (llama_cpp.ctypes.c_char * 1024)()
    n = llama_cpp.llama_token_to_piece(vocab, tok, buf, len(buf), 0, special)
    assert 0 <= n <= len(buf), (tok, n)
    return bytes(buf[:n])


def with_pre(src, dst, pre):
    """Copy of the GGUF's metadata (no tensors) with tokenizer.ggml.pre replaced."""
    import gguf

    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, r.fields["general.architecture"].contents())
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        val = pre if k == "tokenizer.ggml.pre" else f.contents()
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_key_value(k, val, f.types[0], sub_type=f.types[-1])
        else:
            w.add_key_value(k, val, f.types[0])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tokenize_fixture(model_path, out_path, pre=None, model_name=None, stride=1):
    import llama_cpp

    m = llama_cpp.Llama(model_path=model_path, vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(m.model)
    corpus = build_corpus()[::stride]
    lines = [
        "# tokenize golden cases from llama-cpp-python %s (tools/make_golden.py --what tokenize)" % llama_cpp.__version__,
        "# model: %s" % (model_name or os.path.basename(model_path)),
    ]
    if pre:
        lines.append("# pre: %s" % pre)
    lines += [
        "# n_vocab: %d  bos: %d  eos: %d  eot: %d" % (llama_cpp.llama_vocab_n_tokens(vocab), llama_cpp.llama_vocab_bos(vocab),
                                                   llama_cpp.llama_vocab_eos(vocab), llama_cpp.llama_vocab_eot(vocab)),
        "# eog: %s" % " ".join(str(i) for i in range(llama_cpp.llama_vocab_n_tokens(vocab)) if llama_cpp.llama_vocab_is_eog(vocab, i)),
        "# hex(input) \\t ids(parse_special=false) \\t ids(parse_special=true) \\t hex(pieces of the first ids)",
    ]
    for text in corpus:
        plain = m.tokenize(text, add_bos=True, special=False)
        special = m.tokenize(text, add_bos=True, special=True)
        detok = b"".join(piece(llama_cpp, vocab, t, False) for t in plain)
        lines.append("%s\t%s\t%s\t%s" % (text.hex(), " ".join(map(str, plain)), " ".join(map(str, special)), detok.hex()))
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("%s: %d cases" % (out_path, len(corpus)))


def find_model(models_dir, pattern):
    hits = sorted(glob.glob(os.path.join(models_dir, pattern)))
    return hits[0] if hits else None


def what_tokenize(args):
    wanted = {}
    if args.model:
        for path in args.model:
            name = next((n for n, pat in TOKENIZE_MODELS.items()
                         if glob.fnmatch.fnmatch(os.path.basename(path), pat)), None)
            if not name:
                sys.exit("no fixture name for %s (known: %s)" % (path, ", ".join(TOKENIZE_MODELS)))
            wanted[name] = path
    else:
        for name, pat in TOKENIZE_MODELS.items():
            path = find_model(args.models, pat)
            if path:
                wanted[name] = path
            else:
                print("skipping %s: no %s in %s" % (name, pat, args.models))
    import tempfile

    for name, path in wanted.items():
        tokenize_fixture(path, os.path.join(args.out, "%s_tokenize.txt" % name))
        for pre in TOKENIZE_VARIANTS.get(name, []):
            with tempfile.TemporaryDirectory() as tmp:
                patched = os.path.join(tmp, "vocab.gguf")
                with_pre(path, patched, pre)
                tokenize_fixture(patched, os.path.join(args.out, "%s-%s_tokenize.txt" % (name, pre)), pre=pre,
                                 model_name=os.path.basename(path), stride=VARIANT_STRIDE)


GREEDY_MODELS = {
    "smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
}

# Gemma 3 prompts: SmolLM2's plain ones and its chat ones in Gemma's turn markup (no
# system role: the system text goes into the user turn).
GEMMA_TOP = 512
GEMMA_GEN = 32  # half of SmolLM2's 64: a Gemma 3 token costs ~3x as much (262144-row head)


def gemma_prompts(prompts):
    out = []
    for p in prompts:
        if "<|im_start|>" not in p:
            out.append(p)
            continue
        turns = [t.split("\n", 1) for t in p.split("<|im_start|>")[1:]]
        text = "\n\n".join(body.replace("<|im_end|>", "").strip() for role, body in turns
                            if role in ("system", "user"))
        out.append("<start_of_turn>user\n%s<end_of_turn>\n<start_of_turn>model\n" % text)
    return out


def what_greedy(args):
    """<name>_greedy.txt with <name>_logprobs.f16 or .top (formats in tools/golden_logits.py)."""
    import golden_logits

    wanted = {}
    for path in args.model or []:
        name = next((n for n, f in GREEDY_MODELS.items() if os.path.basename(path) == f), None)
        if not name:
            sys.exit("no greedy fixture for %s (known: %s)" % (path, ", ".join(GREEDY_MODELS.values())))
        wanted[name] = path
    if not args.model:
        for name, f in GREEDY_MODELS.items():
            path = find_model(args.models, f)
            if not path:
                sys.exit("no %s in %s" % (f, args.models))
            wanted[name] = path
    for name, path in wanted.items():
        if name == "gemma3":
            golden_logits.write_top(path, args.out, name, gemma_prompts(golden_logits.PROMPTS),
                                    GEMMA_TOP, GEMMA_GEN)
            golden_logits.write_long(path, args.out, name, GEMMA_TOP)
        else:
            golden_logits.write(path, args.out, name)


WHAT = {
    "tokenize": what_tokenize,
    "greedy": what_greedy,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--what", required=True, choices=sorted(WHAT))
    ap.add_argument("--models", default=DEFAULT_MODELS, help="models cache directory")
    ap.add_argument("--model", action="append", help="explicit model path (repeatable)")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures"))
    args = ap.parse_args()
    WHAT[args.what](args)


if __name__ == "__main__":
    main()
