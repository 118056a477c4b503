"""rag_vector: rag with a per-user vector biasing retrieval, trained online by REINFORCE (policies.user_vector)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from agents.rag import RAGAgent, guess_task_type
from agents.rewards import RewardSource, is_restatement


class RAGVectorAgent(RAGAgent):
    """rag + the VARS user-vector policy.

    Args:
        preset: ``"default"`` (defects fixed), ``"paper"`` (published settings: J = 5, substring keyword
            reward, reranking skipped with at most J candidates, no last-turn reward, first-k item dims,
            no query transformation)
            or ``"conditional"`` (default + a vector per task kind + credit to the restated card; see
            :mod:`policies.user_vector`).
        reward: what the vector learns from: ``"keyword"`` (default), ``"judge"`` (LLM judge on the agent's
            backend) or ``"env"`` (the env's feedback reward).
        keyword_match: ``"word"`` or ``"substring"`` (default: the preset's).
        policy: overrides of :class:`policies.user_vector.UserVectorConfig` fields.
        **kwargs: see :class:`~agents.rag.RAGAgent` (K, J and rerank_always come from the preset).
    """

    name = "rag_vector"

    def __init__(self, preset: str = "default", reward: str = "keyword", keyword_match: str | None = None,
                 policy: Mapping[str, Any] | None = None, **kwargs: Any):
        from policies.user_vector import UserVectorPolicy, make_config  # torch, lazily

        cfg = make_config(preset, **dict(policy or {}))
        kwargs.setdefault("K", cfg.K)
        kwargs["J"] = cfg.J
        kwargs["rerank_always"] = cfg.rerank_always
        kwargs.setdefault("global_cap", cfg.global_cap)
        if preset == "paper":
            kwargs.setdefault("query_transform", False)  # the published code has no query transformation
        super().__init__(**kwargs)
        self.preset = preset
        self.policy = UserVectorPolicy(cfg, self.embedder.dim, seed=self.seed)
        match = keyword_match or ("substring" if preset == "paper" else "word")
        self.reward_source = RewardSource(reward, match=match, model=self.backend)
        self._query_emb: dict[str, np.ndarray] = {}
        self._session_stats: dict[str, dict[str, Any]] = {}

    def on_new_cards(self, user_id: str, indices: list[int]) -> None:
        super().on_new_cards(user_id, indices)
        ids = self.index_ids.get(user_id, [])
        if ids:
            self.policy.maybe_refit(user_id, self.embeddings[user_id][ids])

    def _act_batch(self, observations: list[Mapping[str, Any]]) -> list[str]:
        for o in observations:
            if int(o.get("turn", 0)) == 0:
                uid = str(o["user_id"])
                self.policy.start_session(uid)
                self._session_stats[uid] = {"turns": 0, "changed": 0, "updates": 0, "reward_sum": 0.0}
        return super()._act_batch(observations)

    def select(self, user_id: str, obs: Mapping[str, Any], ids: list[int], emb: np.ndarray, s0: np.ndarray,
               q: np.ndarray) -> list[int]:
        context = None
        if self.policy.config.context == "task":
            context = guess_task_type(self.opening(user_id) or str(obs["message"]))
        chosen, diag = self.policy.choose(user_id, emb, s0, q, rows=self.last_rows.get(user_id), context=context)
        st = self._session_stats.setdefault(user_id, {"turns": 0, "changed": 0, "updates": 0, "reward_sum": 0.0})
        st["turns"] += 1
        st["changed"] += int(diag["changed"])
        self._query_emb[user_id] = q
        return chosen

    def _observe(self, obs: Mapping[str, Any], reward: float, terminated: bool, truncated: bool,
                 info: Mapping[str, Any]) -> None:
        uid = str(obs["user_id"])
        pol = self.policy
        if pol.state(uid).pending is None:
            return
        if (terminated or truncated) and not pol.config.reward_last_turn:
            pol.state(uid).pending = None  # the published code never rewards a session's last turn
            return
        nxt = str(obs["message"])
        next_emb = self.embedder.encode_one(nxt)
        q = self._query_emb.get(uid)
        sim = float(q @ next_emb) if q is not None else 0.0
        conv = self._conv.get(uid, [])
        prev = conv[-1].content if conv and conv[-1].role == "assistant" else ""
        sig = self.reward_source(prev, nxt, sim, reward, info, seed=int(obs.get("turn", 0)))
        if sig.skip:
            pol.state(uid).pending = None
            return
        restated = pol.wants_restatement(uid) and is_restatement(nxt)
        A = pol.update(uid, sig.reward, next_emb, g=sig.gate, restated=restated)
        st = self._session_stats.setdefault(uid, {"turns": 0, "changed": 0, "updates": 0, "reward_sum": 0.0})
        st["updates"] += int(A is not None)
        st["reward_sum"] += sig.reward

    def session_stats(self, user_id: str) -> dict[str, Any]:
        st = dict(self._session_stats.get(user_id, {}))
        st["z_long_norm"] = float(self.policy.state(user_id).z_long.norm())
        return st

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "policy": self.policy.state_dict(),
                "query_emb": {u: v.copy() for u, v in self._query_emb.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.policy.load_state_dict(state["policy"])
        self._query_emb = {u: np.asarray(v, dtype=np.float32) for u, v in state.get("query_emb", {}).items()}
