"""Rerankers: score (query, document) pairs for the final top-J choice.

- :class:`LexicalReranker` (default): IDF-weighted overlap of stemmed content words, normalised by
  document length (BM25-flavoured), in [0, 1]. No weights.
- :class:`CrossEncoderReranker`: a sentence-transformers CrossEncoder (local path or name;
  ``pip install multisessioncollab[hf]``), loaded on first use.
- :class:`ServerReranker`: a served reranker through vLLM's ``/score`` endpoint.
"""

from __future__ import annotations

import abc
import math
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from agents.memory.embedders import terms
from personalization_env.naming import did_you_mean


class Reranker(abc.ABC):
    """Scores documents against a query (higher is more relevant)."""

    name = "reranker"

    @abc.abstractmethod
    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """One score per document."""


@lru_cache(maxsize=1 << 16)
def _document(text: str) -> tuple[int, frozenset[str], dict[str, int]]:
    """A document's length in terms, its distinct terms and their counts (cached: the same card notes are
    reranked turn after turn)."""
    ts = terms(text)
    return len(ts), frozenset(ts), {w: ts.count(w) for w in set(ts)}


class LexicalReranker(Reranker):
    """IDF-weighted term overlap (see module docstring). IDF is computed over the documents scored."""

    name = "lexical"

    def __init__(self, k1: float = 1.2, b: float = 0.5):
        self.k1, self.b = k1, b

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        docs = [_document(d) for d in documents]
        if not docs:
            return np.zeros(0, dtype=np.float32)
        q = set(terms(query))
        n = len(docs)
        avg = sum(length for length, _, _ in docs) / n or 1.0
        shared = [distinct & q for _, distinct, _ in docs]  # only query terms matter
        df: dict[str, int] = {}
        for ws in shared:
            for w in ws:
                df[w] = df.get(w, 0) + 1
        idf = {w: math.log(1 + (n - c + 0.5) / (c + 0.5)) for w, c in df.items()}
        k1, b = self.k1, self.b
        k1_1 = k1 + 1
        scores = []
        for (length, _, tfs), ws in zip(docs, shared):
            s = 0.0
            length_norm = k1 * (1 - b + b * length / avg)
            for w in ws:
                tf = tfs[w]
                s += idf[w] * tf * k1_1 / (tf + length_norm)
            scores.append(s)
        out = np.array(scores, dtype=np.float32)
        top = float(out.max()) if n else 0.0
        return out / top if top > 0 else out


class CrossEncoderReranker(Reranker):
    """A sentence-transformers CrossEncoder, loaded lazily."""

    name = "cross"

    def __init__(self, model: str, device: str = "cpu", max_length: int = 256):
        self.model_name, self.device, self.max_length = model, device, max_length
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            try:
                from sentence_transformers import CrossEncoder
            except ImportError as e:
                raise ImportError("the cross-encoder reranker needs: pip install 'multisessioncollab[hf]'") from e
            self._model = CrossEncoder(self.model_name, device=self.device, max_length=self.max_length)
        return self._model

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        if not documents:
            return np.zeros(0, dtype=np.float32)
        out = self._load().predict([(query, d) for d in documents], show_progress_bar=False)
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}


class ServerReranker(Reranker):
    """A served reranker (vLLM's ``/score`` endpoint): ``server:<model>@<base_url>``."""

    name = "server"

    def __init__(self, spec: str):
        from personalization_env.llm.endpoints import ServerEndpoints

        self.endpoints = ServerEndpoints(spec)

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        if not documents:
            return np.zeros(0, dtype=np.float32)
        return self.endpoints.score(query, list(documents))


def make_reranker(spec: str | Reranker | None) -> Reranker | None:
    """``"lexical"``, ``"cross:<model>"``, ``"server:<model>@<base_url>"``, or ``None``/``"none"``."""
    if spec is None or isinstance(spec, Reranker):
        return spec
    name, _, rest = str(spec).partition(":")
    if name == "none":
        return None
    if name == "lexical":
        return LexicalReranker()
    if name == "cross":
        if not rest:
            raise ValueError("the 'cross' reranker needs a model: 'cross:<path or name>'")
        return CrossEncoderReranker(rest)
    if name == "server":
        return ServerReranker(rest)
    extra = did_you_mean(name, ["lexical", "cross", "server", "none"])
    raise ValueError(f"unknown reranker {spec!r}{extra} use 'lexical', 'cross:<model>', 'server:<model>@<url>' or 'none'")


