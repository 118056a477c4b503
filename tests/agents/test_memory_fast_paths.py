"""The cached and line-by-line fast paths of the memory stack give exactly the results of the plain
computations they replace."""

from __future__ import annotations

import math
import random

import numpy as np

from agents import rag
from agents.memory import embedders as E
from agents.memory.rerankers import LexicalReranker

_PIECES = ["\n", "\n\n", "  \n", " ", "\t", "A. ", "b) ", "(C) ", "D.", "(d)", "E. ", "options", "choice", "```",
           "def f(x):", "return", "Python", "function", "puzzle", "who", "which person", "seated", "order", "7",
           "how many", "What is", "Σ", "ΣΑΣ", "İ", "K", "don't", "it's", "stepping", "bullets", "the", "e.g.", "x"]


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 14))) for _ in range(n)]


def _guess_by_regex(text: str) -> str:
    for name, pat in rag._KIND_HINTS:
        if pat.search(text):
            return name
    return "general"


def test_guess_task_type_matches_the_regex_scan():
    for t in _texts(4000, 0):
        assert rag.guess_task_type(t) == _guess_by_regex(t), repr(t)


def test_terms_by_line_match_the_whole_text():
    for t in _texts(3000, 1):
        whole = tuple(E._stem(w) for w in E._WORD.findall(t.lower()) if w not in E._STOP)
        assert E.terms(t) == whole, repr(t)


def _embed_by_scatter(text: str, dim: int) -> np.ndarray:
    words = [E._stem(w) for w in E._WORD.findall(text.lower()) if w not in E._STOP]
    v = np.zeros(dim, dtype=np.float32)
    for f in words + [f"{a}_{b}" for a, b in zip(words, words[1:])]:
        i, s = E._bucket(f, dim)
        v[i] += s
    n = float(np.linalg.norm(v))
    if n > 0:
        v /= n
    return v


def test_hashing_embedder_matches_the_scatter_loop():
    emb = E.HashingEmbedder(dim=64)  # small: many collisions in a bucket
    for t in _texts(2000, 2):
        assert np.array_equal(emb.encode_one(t), _embed_by_scatter(t, 64)), repr(t)


def _lexical_by_loops(query: str, documents: list[str], k1: float = 1.2, b: float = 0.5) -> np.ndarray:
    docs = [E.terms(d) for d in documents]
    q = set(E.terms(query))
    n = len(docs)
    avg = sum(len(d) for d in docs) / n or 1.0
    df: dict[str, int] = {}
    for d in docs:
        for w in frozenset(d) & q:
            df[w] = df.get(w, 0) + 1
    out = np.zeros(n, dtype=np.float32)
    for i, d in enumerate(docs):
        s = 0.0
        for w in frozenset(d) & q:
            tf = d.count(w)
            idf = math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
            s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avg))
        out[i] = s
    top = float(out.max())
    return out / top if top > 0 else out


def test_lexical_reranker_matches_the_loops():
    rng = random.Random(3)
    texts = _texts(600, 3)
    reranker = LexicalReranker()
    for _ in range(300):
        docs = rng.sample(texts, rng.randint(1, 20))
        query = rng.choice(texts)
        assert np.array_equal(reranker.score(query, docs), _lexical_by_loops(query, docs))
