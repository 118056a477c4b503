"""Embedders: text -> unit-norm vectors.

- :class:`HashingEmbedder` (default): word unigrams and bigrams (light stemming) hashed into ``dim``
  buckets with signs, TF weights, L2-normalised. No weights, deterministic, fast; a lexical stand-in
  for a sentence encoder.
- :class:`SentenceTransformerEmbedder`: any sentence-transformers model (a local path or hub name;
  ``pip install multisessioncollab[hf]``), loaded on first use.
- :class:`ServerEmbedder`: a served embedding model through the OpenAI ``/v1/embeddings`` endpoint
  (vLLM, OpenAI), ``server:<model>@<base_url>``.
"""

from __future__ import annotations

import abc
import hashlib
import re
from functools import lru_cache
from typing import Any, Iterable, Sequence

import numpy as np

from personalization_env.naming import did_you_mean

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP = frozenset("a an the and or of to in on for is are be it this that i you me my your with as at by".split())


@lru_cache(maxsize=1 << 16)  # the same words come back in every message
def _stem(w: str) -> str:
    for suf in ("ings", "ing", "ies", "es", "ed", "ly", "s"):
        if len(w) > len(suf) + 3 and w.endswith(suf):
            return w[: -len(suf)]
    return w


@lru_cache(maxsize=1 << 15)
def _line_terms(line: str) -> tuple[str, ...]:
    return tuple(_stem(w) for w in _WORD.findall(line.lower()) if w not in _STOP)


@lru_cache(maxsize=1 << 13)  # (card notes come back every turn; queries do not)
def terms(text: str) -> tuple[str, ...]:
    """Stemmed words of ``text`` without stop words (the hashing embedder's and the lexical reranker's
    tokens).

    Computed line by line, each line cached: retrieval queries repeat the session's opening message
    on every turn. No token spans a line break, and lower-casing does not look across one either.
    """
    if "\n" not in text:
        return _line_terms(text)
    return tuple(t for line in text.split("\n") for t in _line_terms(line))


class Embedder(abc.ABC):
    """Maps texts to an ``(n, dim)`` float32 array of unit-norm rows."""

    name = "embedder"
    dim: int

    @abc.abstractmethod
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``."""

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


@lru_cache(maxsize=1 << 16)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    return h % dim, (1.0 if (h >> 63) & 1 else -1.0)


@lru_cache(maxsize=1 << 14)
def _line_counts(line: str, dim: int, bigrams: bool) -> tuple[tuple[str, ...], dict[int, float]]:
    """The words of one line and the signed bucket counts of its words and the bigrams within it
    (cached: retrieval queries repeat the session's opening message; the dict is shared, read only)."""
    words = _line_terms(line)
    counts: dict[int, float] = {}
    for f in (*words, *(f"{a}_{b}" for a, b in zip(words, words[1:]))) if bigrams else words:
        i, s = _bucket(f, dim)
        counts[i] = counts.get(i, 0.0) + s
    return words, counts


def _add_lines(counts: dict[int, float], last: str | None, lines: Iterable[str], dim: int,
               bigrams: bool) -> str | None:
    """Add the bucket counts of ``lines`` to ``counts`` (signed counts, whole numbers: exact in float32);
    ``last`` is the word before them (bigrams run across line breaks). Returns the last word."""
    for line in lines:
        words, line_counts = _line_counts(line, dim, bigrams)
        if not words:
            continue
        for i, s in line_counts.items():
            counts[i] = counts.get(i, 0.0) + s
        if bigrams and last is not None:
            i, s = _bucket(f"{last}_{words[0]}", dim)
            counts[i] = counts.get(i, 0.0) + s
        last = words[-1]
    return last


@lru_cache(maxsize=4096)
def _head_counts(head: str, dim: int, bigrams: bool) -> tuple[dict[int, float], str | None]:
    """The bucket counts of all lines of a text but its last, and their last word (cached: a retrieval
    query is the session's opening message above the user's latest line; the dict is shared, read only)."""
    counts: dict[int, float] = {}
    return counts, _add_lines(counts, None, head.split("\n"), dim, bigrams)


class HashingEmbedder(Embedder):
    """Signed feature hashing of stemmed unigrams and bigrams (see module docstring).

    Args:
        dim: output dimension.
        bigrams: also hash adjacent word pairs.
    """

    name = "hashing"

    def __init__(self, dim: int = 384, bigrams: bool = True):
        if dim < 8:
            raise ValueError(f"dim must be >= 8, got {dim!r}")
        self.dim = dim
        self.bigrams = bigrams

    def _one(self, text: str) -> np.ndarray:
        head, newline, tail = text.rpartition("\n")
        if newline:
            head_counts, last = _head_counts(head, self.dim, self.bigrams)
            counts = dict(head_counts)
        else:
            counts, last = {}, None
        _add_lines(counts, last, (tail,), self.dim, self.bigrams)
        v = np.zeros(self.dim, dtype=np.float32)
        v[list(counts)] = list(counts.values())
        n = float(np.linalg.norm(v))
        if n > 0:
            v /= n
        return v

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._one(t) for t in texts])

    def encode_one(self, text: str) -> np.ndarray:
        return self._one(text)  # (a new array, as encode's row would be)


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model, loaded lazily.

    Args:
        model: local path or model name.
        device: torch device (default CPU).
        batch_size: encoding batch size.
    """

    name = "st"

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 64):
        self.model_name = model
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._dim: int | None = None

    def _load(self) -> Any:
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as e:
                raise ImportError("the sentence-transformers embedder needs: pip install 'multisessioncollab[hf]'") from e
            self._model = SentenceTransformer(self.model_name, device=self.device)
            get_dim = getattr(self._model, "get_embedding_dimension", None) or \
                self._model.get_sentence_embedding_dimension  # renamed in sentence-transformers 6
            self._dim = int(get_dim())
        return self._model

    @property
    def dim(self) -> int:  # type: ignore[override]
        self._load()
        assert self._dim is not None
        return self._dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}


class ServerEmbedder(Embedder):
    """A served embedding model (vLLM ``--runner pooling``, OpenAI): ``server:<model>@<base_url>``."""

    name = "server"

    def __init__(self, spec: str):
        from personalization_env.llm.endpoints import ServerEndpoints

        self.endpoints = ServerEndpoints(spec)
        self._dim: int | None = None

    @property
    def dim(self) -> int:  # type: ignore[override]
        if self._dim is None:
            self._dim = int(self.endpoints.embed(["dimension probe"]).shape[1])
        return self._dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.endpoints.embed(list(texts))
        self._dim = int(out.shape[1])
        return out


def make_embedder(spec: str | Embedder) -> Embedder:
    """``"hashing"`` / ``"hashing:<dim>"``, ``"st:<model path or name>"`` or ``"server:<model>@<base_url>"``."""
    if isinstance(spec, Embedder):
        return spec
    name, _, rest = str(spec).partition(":")
    if name == "hashing":
        return HashingEmbedder(int(rest)) if rest else HashingEmbedder()
    if name == "st":
        if not rest:
            raise ValueError("the 'st' embedder needs a model: 'st:<path or name>'")
        return SentenceTransformerEmbedder(rest)
    if name == "server":
        return ServerEmbedder(rest)
    extra = did_you_mean(name, ["hashing", "st", "server"])
    raise ValueError(f"unknown embedder {spec!r}{extra} use 'hashing[:dim]', 'st:<model>' or 'server:<model>@<url>'")
