"""Greedy continuations and teacher-forced log-probabilities from llama-cpp-python.

Writes, for a model and a fixed list of prompts:
  <name>_greedy.txt   one prompt per line: hex(prompt utf-8) \t prompt ids \t 64 greedy ids
                      \t the 8 teacher-forced positions (indices into prompt+continuation)
  <name>_logprobs.f16 little-endian float16 log-softmax rows, prompt-major then position,
                      n_vocab values each
Prompt text is tokenized with special-token parsing (as `rocmforge run` does) and BOS as the
model asks. Continuations ignore end-of-generation tokens so every one has 64 tokens.
"""
import os

import numpy as np

N_GEN = 64
N_POS = 8

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Water boils at 100 degrees Celsius at sea level because",
    "Here is a list of the planets in our solar system:\n1.",
    "<|im_start|>user\nWhat is the tallest mountain in the world?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    "Write a haiku about autumn leaves.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nExplain what a hash table is in two sentences.<|im_end|>\n"
    "<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog. The quick brown fox",
    "In 1969, Neil Armstrong became the first person to",
    "Photosynthesis is the process by which plants",
    "SELECT name, age FROM users WHERE",
    "Le chat est assis sur le tapis. Il fait beau aujourd'hui, et",
    "1, 2, 3, 5, 8, 13, 21,",
    "To make a cup of tea, first",
    "<|im_start|>user\nTranslate 'good morning' into Spanish and German.<|im_end|>\n"
    "<|im_start|>assistant\n",
    "The most important thing about machine learning is",
    "#include <stdio.h>\n\nint main(void)\n{\n",
    "Dear Sir or Madam,\n\nI am writing to",
    "<|im_start|>user\nWhat are three benefits of regular exercise?<|im_end|>\n"
    "<|im_start|>assistant\n",
]


def log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    m = x.max()
    return x - m - np.log(np.exp(x - m).sum())


def teacher_positions(n_prompt, n_total):
    """Eight positions: the last prompt token, then spread over the continuation."""
    span = np.linspace(n_prompt - 1, n_total - 2, N_POS)
    return sorted(set(int(round(p)) for p in span))


def greedy(llm, ids):
    llm.reset()
    llm.eval(ids)
    out = []
    for _ in range(N_GEN):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(tok)
        llm.eval([tok])
    return out


def write(model_path, out_dir, name, threads=2):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=model_path, n_ctx=512, n_batch=512, n_threads=threads,
                          logits_all=True, verbose=False)
    n_vocab = llm.n_vocab()
    lines, rows = [], []
    for text in PROMPTS:
        ids = llm.tokenize(text.encode(), add_bos=True, special=True)
        cont = greedy(llm, ids)
        seq = ids + cont
        llm.reset()
        llm.eval(seq)
        pos = teacher_positions(len(ids), len(seq))
        while len(pos) < N_POS:  # only for very short sequences
            pos.append(pos[-1])
        for p in pos:
            rows.append(log_softmax(llm.scores[p][:n_vocab]).astype(np.float16))
        lines.append("\t".join([text.encode().hex(), " ".join(map(str, ids)),
                                " ".join(map(str, cont)), " ".join(map(str, pos))]))
    with open(os.path.join(out_dir, f"{name}_greedy.txt"), "w") as f:
        f.write(f"# n_vocab {n_vocab} n_gen {N_GEN} n_pos {N_POS}\n")
        f.write("\n".join(lines) + "\n")
    np.stack(rows).astype("<f2").tofile(os.path.join(out_dir, f"{name}_logprobs.f16"))
