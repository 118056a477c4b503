"""rag: global cards straight into the prompt, conditional cards by dense retrieval (top-K) + rerank (top-J)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from agents.memory import Reranker, VectorIndex, make_reranker
from agents.memory.cards import Card
from agents.memory_agent import MemoryAgent

_KIND_HINTS = (
    ("coding", re.compile(r"```|\bdef\b|\bpython\b|\bfunction\b|\breturn\b", re.I)),
    ("multiple-choice", re.compile(r"(?m)^\s*\(?[A-D][.)]\s|\boptions?\b|\bchoices?\b", re.I)),
    ("logic", re.compile(r"\b(puzzle|clues?|who|which person|seated|order)\b", re.I)),
    ("math", re.compile(r"\d|\bhow (many|much)\b|\bwhat is\b", re.I)),
)


@lru_cache(maxsize=256)  # a turn asks about its query twice (dense candidates, then reranking)
def guess_task_type(text: str) -> str:
    """A coarse task type from a message's surface (for the query transformation)."""
    head, newline, tail = text.rpartition("\n")
    hits = _kind_hits(tail)
    if newline:
        hits = tuple(a or b for a, b in zip(_kind_hits_above(head), hits))
    return next((name for (name, _), hit in zip(_KIND_HINTS, hits) if hit), "general")


@lru_cache(maxsize=1 << 14)
def _kind_hits(line: str) -> tuple[bool, ...]:
    """Which of the ``_KIND_HINTS`` patterns match ``line``. A pattern matches a text exactly when it
    matches one of its lines with the line's own line break: the multiple-choice pattern is the only
    one that can run over a line break, through blank space to an option marker that then starts a
    line of its own."""
    return tuple(bool(pat.search(line)) for _, pat in _KIND_HINTS)


@lru_cache(maxsize=4096)
def _kind_hits_above(head: str) -> tuple[bool, ...]:
    """``_kind_hits`` of the lines above a text's last line, each with its line break (cached: a query
    is the session's opening message above the user's latest line)."""
    hits = [_kind_hits(line + "\n") for line in head.split("\n")]
    return tuple(any(h[k] for h in hits) for k in range(len(_KIND_HINTS)))


class RAGAgent(MemoryAgent):
    """Retrieval over the user's cards.

    Args:
        K: dense candidates retrieved.
        J: cards chosen after reranking.
        global_cap: at most this many global (unconditional) cards go straight into the prompt.
        tiers: global-vs-conditional tiers (global cards bypass retrieval); False retrieves over all cards.
        reranker: ``"lexical"`` (default), ``"cross:<model>"`` or ``"none"`` (dense scores).
        query_transform: also query "user preferences for {task type} tasks" (dense score = max of both),
            and rerank against the query plus that line (VARS's proposed future work; on by default:
            on the complex set, 200 users x 15 sessions, it lowers effort in sessions 10-14 from 6.01
            to 5.96 for rag and from 6.17 to 5.98 for rag_vector; ``False`` is the published method).
        rerank_always: rerank even when there are at most J candidates (False: s0 = 1 then, as published).
        **kwargs: see :class:`~agents.memory_agent.MemoryAgent`.
    """

    name = "rag"

    def __init__(self, K: int = 64, J: int = 3, global_cap: int = 10, tiers: bool = True,
                 reranker: str | Reranker | None = "lexical", query_transform: bool = True,
                 rerank_always: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        for name, v in (("K", K), ("J", J)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.K, self.J, self.global_cap, self.tiers = K, J, global_cap, tiers
        self.reranker = make_reranker(reranker)
        self.query_transform = query_transform
        self.rerank_always = rerank_always
        self.indexes: dict[str, VectorIndex] = {}
        self.index_ids: dict[str, list[int]] = {}
        self.last: dict[str, dict[str, Any]] = {}
        self.last_rows: dict[str, np.ndarray] = {}
        self._tq_cache: dict[str, np.ndarray] = {}

    def _reset_indexes(self) -> None:
        self.indexes, self.index_ids = {}, {}

    def retrievable(self, card: Card) -> bool:
        return not (self.tiers and card.is_global)

    def on_new_cards(self, user_id: str, indices: list[int]) -> None:
        super().on_new_cards(user_id, indices)
        store = self.store(user_id)
        keep = [i for i in indices if self.retrievable(store.cards[i])]
        if keep:
            index = self.indexes.setdefault(user_id, VectorIndex(self.embedder.dim))
            index.add(self.embeddings[user_id][keep])
            self.index_ids.setdefault(user_id, []).extend(keep)

    def query_text(self, user_id: str, obs: Mapping[str, Any]) -> str:
        """The retrieval query: the current message, in the context of the session's task."""
        msg = str(obs["message"])
        opening = self.opening(user_id)
        return msg if not opening or opening == msg else f"{opening}\n{msg}"

    def transformed_query(self, query: str) -> str:
        """The query transformation: what a preference for this kind of task would say. Unlike VARS's
        "user preferences for {type} tasks: q_t", q_t is left out: with a lexical embedder its words
        drown the task type (the dense score is the max over this and the plain query anyway)."""
        kind = guess_task_type(query)
        return f"user preferences for {kind} tasks, for {kind} problems and {kind} questions"

    def candidates(self, user_id: str, query: str) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Top-K card indices by dense score, their embeddings, and the query embedding (the index
        rows of the candidates are kept in ``self.last_rows``)."""
        index = self.indexes.get(user_id)
        q = self.embedder.encode_one(query)
        if index is None or not len(index):
            return [], np.zeros((0, self.embedder.dim), dtype=np.float32), q
        if not self.query_transform:
            scores, rows = index.search(q, self.K)
        else:
            tq = self.transformed_query(query)
            q2 = self._tq_cache.get(tq)
            if q2 is None:  # one fixed text per task kind: embedded once
                q2 = self._tq_cache[tq] = self.embedder.encode_one(tq)
            S, R = index.search_many(np.stack([q, q2]), self.K)  # both queries in one pass
            best: dict[int, float] = {}
            for s, r in zip(S.ravel().tolist(), R.ravel().tolist()):
                best[r] = max(best.get(r, -1e9), s)
            rows = np.array(sorted(best, key=lambda r: -best[r])[: self.K])
        index_ids = self.index_ids[user_id]
        ids = [index_ids[r] for r in rows.tolist()]
        self.last_rows[user_id] = np.asarray(rows, dtype=np.int64)
        return ids, self.embeddings[user_id][ids], q

    def base_scores(self, query: str, cards: list[Card], emb: np.ndarray, q: np.ndarray) -> np.ndarray:
        """s0: reranker scores (dense cosine without a reranker; 1 when skipping as published)."""
        if not cards:
            return np.zeros(0)
        if self.reranker is None:
            return emb @ q
        if not self.rerank_always and len(cards) <= self.J:
            return np.ones(len(cards))
        if self.query_transform:
            query = f"{query}\n{self.transformed_query(query)}"
        return self.reranker.score(query, [c.note for c in cards]).astype(np.float64)

    def select(self, user_id: str, obs: Mapping[str, Any], ids: list[int], emb: np.ndarray, s0: np.ndarray,
               q: np.ndarray) -> list[int]:
        """Positions (into ``ids``) of the chosen cards, best first."""
        return (-np.asarray(s0)).argsort(kind="stable")[: self.J].tolist()

    def memory_prompt(self, user_id: str, obs: Mapping[str, Any]) -> str:
        store = self.store(user_id)
        if not len(store):
            return ""
        globals_ = store.global_cards(self.global_cap) if self.tiers else []
        query = self.query_text(user_id, obs)
        ids, emb, q = self.candidates(user_id, query)
        cards = [store.cards[i] for i in ids]
        s0 = self.base_scores(query, cards, emb, q)
        chosen = self.select(user_id, obs, ids, emb, s0, q) if ids else []
        picked = [cards[i] for i in chosen]
        self.last[user_id] = {"candidates": len(ids), "chosen": [ids[i] for i in chosen]}
        notes = [c.note for c in globals_] + [c.note for c in picked]
        if not notes:
            return ""
        return "What you know about this user's preferences:\n" + "\n".join(f"- {n}" for n in notes)
