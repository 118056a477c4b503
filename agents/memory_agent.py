"""Base of the methods that remember preference cards (all_memory, rag, rag_vector)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from agents.llm_agent import LLMAgent
from agents.memory import CardStore, Embedder, Extractor, make_embedder, make_extractor
from personalization_env.llm import ChatBackend
from personalization_env.types import Message


class MemoryAgent(LLMAgent):
    """Extracts cards from every user message and keeps them per user.

    Args:
        model: chat backend or spec for replies.
        seed: sampling seed.
        extractor: ``"rule"`` (default) or ``"llm[:<backend>]"`` or an :class:`Extractor`.
        embedder: ``"hashing[:dim]"`` (default), ``"st:<model>"``, ``"server:<model>@<url>"`` or an :class:`Embedder`.
        **kwargs: see :class:`~agents.llm_agent.LLMAgent`.
    """

    def __init__(self, model: str | ChatBackend = "scripted", seed: int = 0, extractor: str | Extractor = "rule",
                 embedder: str | Embedder = "hashing", **kwargs: Any):
        super().__init__(model=model, seed=seed, **kwargs)
        if isinstance(extractor, str) and extractor.startswith("llm") and ":" not in extractor:
            extractor = f"llm:{model}" if isinstance(model, str) else extractor
        self.extractor = make_extractor(extractor)
        self.embedder = make_embedder(embedder)
        self.stores: dict[str, CardStore] = {}
        self.embeddings: dict[str, np.ndarray] = {}
        self._opening: dict[str, str] = {}

    def store(self, user_id: str) -> CardStore:
        return self.stores.setdefault(user_id, CardStore())

    def card_embeddings(self, user_id: str) -> np.ndarray:
        return self.embeddings.get(user_id, np.zeros((0, self.embedder.dim), dtype=np.float32))

    def ingest(self, observations: list[Mapping[str, Any]]) -> None:
        """Extract cards from the users' messages (one batched extractor call)."""
        msgs = [str(o["message"]) for o in observations]
        sessions = [int(o.get("session", 0)) for o in observations]
        turns = [int(o.get("turn", 0)) for o in observations]
        for o, cards in zip(observations, self.extractor.extract_batch(msgs, sessions, turns)):
            uid = str(o["user_id"])
            if int(o.get("turn", 0)) == 0:
                self._opening[uid] = str(o["message"])
            new = []
            store = self.store(uid)
            for c in cards:
                i, is_new = store.add(c)
                if is_new:
                    new.append(i)
            if new:
                self.on_new_cards(uid, new)

    def on_new_cards(self, user_id: str, indices: list[int]) -> None:
        """Embed newly added cards (subclasses also index them)."""
        store = self.store(user_id)
        emb = self.embedder.encode([store.cards[i].note for i in indices])
        self.embeddings[user_id] = np.concatenate([self.card_embeddings(user_id), emb])

    def _act_batch(self, observations: list[Mapping[str, Any]]) -> list[str]:
        self.ingest(observations)
        return super()._act_batch(observations)

    def opening(self, user_id: str) -> str:
        """The first message of the user's current session (the task)."""
        return self._opening.get(user_id, "")

    # ---- persistence ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"cards": {u: s.to_list() for u, s in self.stores.items()},
                "conversations": {u: [m.to_dict() for m in c] for u, c in self._conv.items()},
                "openings": dict(self._opening)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.stores, self.embeddings = {}, {}
        self._reset_indexes()
        for uid, cards in state["cards"].items():
            self.stores[uid] = CardStore.from_list(cards)
            if len(self.stores[uid]):
                self.on_new_cards(uid, list(range(len(self.stores[uid]))))
        self._conv = {u: [Message(**m) for m in c] for u, c in state.get("conversations", {}).items()}
        self._opening = dict(state.get("openings", {}))

    def _reset_indexes(self) -> None:
        """Drop derived per-user structures before a load (subclasses with indexes override)."""


class AllMemoryAgent(MemoryAgent):
    """all_memory: every extracted card goes into the prompt."""

    name = "all_memory"

    def memory_prompt(self, user_id: str, obs: Mapping[str, Any]) -> str:
        store = self.store(user_id)
        if not len(store):
            return ""
        return "What you know about this user's preferences:\n" + "\n".join(f"- {c.note}" for c in store)
