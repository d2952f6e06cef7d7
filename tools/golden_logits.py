"""Greedy continuations and teacher-forced log-probabilities from llama-cpp-python.

Writes, for a model and a fixed list of prompts:
  <name>_greedy.txt   one prompt per line: hex(prompt utf-8) \t prompt ids \t 64 greedy ids
                      \t the 8 teacher-forced positions (indices into prompt+continuation)
  <name>_logprobs.f16 little-endian float16 log-softmax rows, prompt-major then position,
                      n_vocab values each
  <name>_long.txt     (write_long) one line of LONG_TOKENS token ids, evaluated as a batch
                      of all but the last (in chunks of 512) and then the last alone; the
                      rows of <name>_long.top are the last two positions' log-probabilities
  <name>_logprobs.top (write_top, for large vocabularies) per row: int32 ids[K] of the K
                      most likely tokens (descending), float32 log-probabilities[K], and
                      float32 log of the remaining mass, all little-endian
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


def greedy(llm, ids, n_gen=N_GEN):
    llm.reset()
    llm.eval(ids)
    out = []
    for _ in range(n_gen):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(tok)
        llm.eval([tok])
    return out


def top_row(logits, k):
    """ids, log-probabilities of the k most likely tokens, and the log of the rest's mass."""
    lp = log_softmax(logits)
    ids = np.argsort(-lp, kind="stable")[:k]
    rest = np.delete(lp, ids)
    m = rest.max()
    lrest = m + np.log(np.exp(rest - m).sum())
    return (ids.astype("<i4").tobytes() + lp[ids].astype("<f4").tobytes()
            + np.array([lrest], dtype="<f4").tobytes())


def write_top(model_path, out_dir, name, prompts, k, n_gen=N_GEN, threads=2):
    rows = []
    lines, n_vocab = run(model_path, prompts, threads, lambda lg: rows.append(top_row(lg, k)),
                         n_gen=n_gen)
    write_lines(out_dir, name, lines, f"n_vocab {n_vocab} n_gen {n_gen} n_pos {N_POS} top {k}")
    with open(os.path.join(out_dir, f"{name}_logprobs.top"), "wb") as f:
        f.write(b"".join(rows))


LONG_TOKENS = 700
LONG_TEXT = ("The history of the city goes back many centuries. " * 10
             + "In the north, rivers and forests; in the south, farms and hills. ") * 8


def write_long(model_path, out_dir, name, k, threads=2):
    """Past a 512-token sliding window: the logits of a long batch's last token and of
    one decoded token after it."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=model_path, n_ctx=1024, n_batch=512, n_ubatch=512,
                          n_threads=threads, logits_all=True, verbose=False)
    ids = llm.tokenize(LONG_TEXT.encode(), add_bos=True, special=True)[:LONG_TOKENS]
    assert len(ids) == LONG_TOKENS
    llm.eval(ids[:-1])
    llm.eval(ids[-1:])
    rows = [top_row(np.array(llm.scores[p][:llm.n_vocab()], dtype=np.float32), k)
            for p in (LONG_TOKENS - 2, LONG_TOKENS - 1)]
    with open(os.path.join(out_dir, f"{name}_long.txt"), "w") as f:
        f.write(f"# n_vocab {llm.n_vocab()} top {k} batch 512: ids; rows of positions "
                f"{LONG_TOKENS - 2} (end of the batch) and {LONG_TOKENS - 1} (decoded)\n")
        f.write(" ".join(map(str, ids)) + "\n")
    with open(os.path.join(out_dir, f"{name}_long.top"), "wb") as f:
        f.write(b"".join(rows))


def write_lines(out_dir, name, lines, header):
    with open(os.path.join(out_dir, f"{name}_greedy.txt"), "w") as f:
        f.write(f"# {header}\n")
        f.write("\n".join(lines) + "\n")


def write(model_path, out_dir, name, threads=2):
    rows = []
    lines, n_vocab = run(model_path, PROMPTS, threads, rows.append, full=True)
    write_lines(out_dir, name, lines, f"n_vocab {n_vocab} n_gen {N_GEN} n_pos {N_POS}")
    np.stack(rows).astype("<f2").tofile(os.path.join(out_dir, f"{name}_logprobs.f16"))


def run(model_path, prompts, threads, emit, full=False, n_gen=N_GEN):
    """Greedy continuations; emit(row) for each teacher-forced position (full: the f16
    log-softmax row, else the raw logits)."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=model_path, n_ctx=512, n_batch=512, n_threads=threads,
                          logits_all=True, verbose=False)
    n_vocab = llm.n_vocab()
    lines = []
    for text in prompts:
        ids = llm.tokenize(text.encode(), add_bos=True, special=True)
        cont = greedy(llm, ids, n_gen)
        seq = ids + cont
        llm.reset()
        llm.eval(seq)
        pos = teacher_positions(len(ids), len(seq))
        while len(pos) < N_POS:  # only for very short sequences
            pos.append(pos[-1])
        for p in pos:
            row = np.array(llm.scores[p][:n_vocab], dtype=np.float32)
            emit(log_softmax(row).astype(np.float16) if full else row)
        lines.append("\t".join([text.encode().hex(), " ".join(map(str, ids)),
                                " ".join(map(str, cont)), " ".join(map(str, pos))]))
    return lines, n_vocab
