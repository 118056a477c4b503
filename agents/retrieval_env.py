"""MultiSessionCollabRetrieval-v0: rag's retrieval decision as a numeric Gymnasium env (for SB3 and friends).

The text env (``MultiSessionCollab-v0``) takes a reply as its action. This env keeps the same world
(the rule user, the scripted agent model, the same tasks) and the same agent (rag: the rule extractor,
the hashing embedder, a FAISS index per user, the lexical reranker), and hands only one decision to
the learner: which of the candidate memory cards go into the agent's prompt this turn. Everything
else (extraction, the global tier, dense retrieval, the reply) is rag's.

It lives in ``agents/`` because it needs the memory stack (imports flow agents -> personalization_env).
Register it with :func:`register_retrieval_env` (idempotent) or through ``personalization_env``'s
``register_envs()`` once that names it.

:class:`RetrievalRAGAgent` is rag that also describes its decision as the observation of this env;
the env drives a subclass of it, and :class:`agents.ppo_retrieval.PPORetrievalAgent` runs a trained
policy inside the ordinary text agent with the very same features.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.rag import RAGAgent, guess_task_type
from personalization_env.feedback import LABELS, KeywordClassifier

ENV_ID = "MultiSessionCollabRetrieval-v0"
ENTRY_POINT = "agents.retrieval_env:RetrievalEnv"

#: the guessed task kinds of a query (:func:`agents.rag.guess_task_type`), in one-hot order
KINDS: tuple[str, ...] = ("coding", "multiple-choice", "logic", "math", "general")

#: query features, in order (each in [0, 1])
QUERY_FEATURES: tuple[str, ...] = (
    "turn",               # user turn / max_turns
    "session",            # min(session, 50) / 50
    "candidates",         # candidates / K
    "global_cards",       # global cards in the prompt / global_cap
    "stated_now",         # cards stated or restated in the latest message, min(n, 5) / 5
    *(f"kind={k}" for k in KINDS),       # the query's guessed task kind, one-hot
    *(f"label={lab}" for lab in LABELS),  # the keyword classifier's label of the latest message, one-hot
)

#: card features, in order (in [-1, 1]; padded slots are all 0 with mask 0)
CARD_FEATURES: tuple[str, ...] = (
    "rerank",             # reranker score / the largest |score| among the candidates (rag's s0)
    "dense",              # cosine of the card to the query
    "dense_kind",         # cosine to the task-kind query ("user preferences for math tasks ..."; 0 without it)
    "age",                # sessions since the card was last stated, min(age, 20) / 20
    "stated_session",     # stated or restated in this session
    "stated_now",         # stated or restated in the latest message
    "confirmations",      # times the user stated it, min(n, 10) / 10
    "confidence",         # the extractor's confidence
    "uses",               # times it went into a prompt before, log1p(n) / log1p(100), at most 1
    "used_last_turn",     # it was in the prompt of the previous turn of this session
    "global",             # the card applies always (only candidates when tiers=False)
    "kind_match",         # its condition names the query's guessed task kind
    "kind_other",         # its condition names task kinds, none of them the guessed one
    "cond_mistake",       # its condition is about mistakes / corrections
    "cond_steps",         # its condition is about multi-step work
)

_CONDITION_KINDS = {
    "coding": re.compile(r"\bcod(e|es|ing)\b|\bprogram", re.I),
    "multiple-choice": re.compile(r"multiple[- ]choice", re.I),
    "logic": re.compile(r"\blogic", re.I),
    "math": re.compile(r"\bmath", re.I),
    "writing": re.compile(r"\bwriting\b|\bessays?\b", re.I),
}
_MISTAKE = re.compile(r"\bmistake|\berror|\bwrong\b|\bcorrect", re.I)
_STEPS = re.compile(r"multi-?step|\bsteps?\b", re.I)
_KEYWORD = KeywordClassifier()  # stateless


@lru_cache(maxsize=1 << 14)
def _condition_features(condition: str, kind: str) -> tuple[float, float, float, float]:
    """(kind_match, kind_other, cond_mistake, cond_steps) of a card condition for a query of ``kind``."""
    named = {k for k, pat in _CONDITION_KINDS.items() if pat.search(condition)}
    match = float(kind in named)
    return match, float(bool(named) and not match), float(bool(_MISTAKE.search(condition))), \
        float(bool(_STEPS.search(condition)))


def retrieval_observation_space(K: int) -> spaces.Dict:
    """The observation space for ``K`` candidate slots (see :class:`RetrievalEnv`)."""
    return spaces.Dict({
        "query": spaces.Box(0.0, 1.0, (len(QUERY_FEATURES),), np.float32),
        "cards": spaces.Box(-1.0, 1.0, (K * len(CARD_FEATURES),), np.float32),  # [K, F] slot-major, flat for SB3
        "mask": spaces.MultiBinary(K),
    })


def chosen_slots(action: Any, mask: np.ndarray, J: int) -> list[int]:
    """The slots an action puts into the prompt: its set bits among the real candidates, at most ``J``,
    the best by reranker first (slots are in reranker order, so these are the first ``J`` set bits)."""
    a = np.asarray(action).reshape(-1)
    if a.shape[0] != mask.shape[0]:
        raise ValueError(f"action must have {mask.shape[0]} entries (one per candidate slot), got shape "
                         f"{np.asarray(action).shape}")
    return [int(i) for i in np.flatnonzero((a > 0) & (mask > 0))[:J]]


@dataclass
class RetrievalView:
    """One turn's retrieval decision as numbers.

    Attributes:
        obs: the observation (``query``, ``cards``, ``mask``).
        ids: card indices (into the user's store) of the slots, in slot order (reranker order).
        positions: for each slot, the card's position in rag's candidate list (what ``select`` returns).
    """

    obs: dict[str, np.ndarray]
    ids: list[int]
    positions: list[int]


class RetrievalRAGAgent(RAGAgent):
    """rag that also describes each retrieval decision as the numeric observation of :class:`RetrievalEnv`.

    It chooses as rag does (top-J by reranker score); subclasses decide otherwise in :meth:`select`,
    and may call :meth:`view` there to get the observation. It also counts how often each card went
    into a prompt (a feature), kept in :meth:`state_dict`.

    Args:
        max_turns: the world's turns per session (scales the turn feature).
        **kwargs: see :class:`~agents.rag.RAGAgent`.
    """

    name = "rag_features"

    def __init__(self, max_turns: int = 10, **kwargs: Any):
        super().__init__(**kwargs)
        if not isinstance(max_turns, (int, np.integer)) or max_turns < 1:
            raise ValueError(f"max_turns must be a positive int, got {max_turns!r}")
        self.max_turns = int(max_turns)
        self.uses: dict[str, dict[int, int]] = {}
        self._prompted: dict[str, tuple[int, int, tuple[int, ...]]] = {}  # user -> (session, turn, chosen ids)
        self._kind_q: dict[str, np.ndarray] = {}

    @property
    def observation_space(self) -> spaces.Dict:
        return retrieval_observation_space(self.K)

    def retrieval_inputs(self, user_id: str, obs: Mapping[str, Any]) -> tuple[list[int], np.ndarray, np.ndarray,
                                                                               np.ndarray]:
        """What :meth:`select` will be given this turn (candidate ids, their embeddings, base scores,
        query embedding), computed as :meth:`~agents.rag.RAGAgent.memory_prompt` does."""
        if not len(self.store(user_id)):
            return [], np.zeros((0, self.embedder.dim), dtype=np.float32), np.zeros(0), \
                np.zeros(self.embedder.dim, dtype=np.float32)
        store = self.store(user_id)
        query = self.query_text(user_id, obs)
        ids, emb, q = self.candidates(user_id, query)
        s0 = self.base_scores(query, [store.cards[i] for i in ids], emb, q)
        return ids, emb, s0, q

    def view(self, user_id: str, obs: Mapping[str, Any], ids: Sequence[int], emb: np.ndarray, s0: np.ndarray,
             q: np.ndarray) -> RetrievalView:
        """The observation of this turn's decision over the candidates ``ids`` (see :class:`RetrievalEnv`)."""
        K = self.K
        store = self.store(user_id)
        session, turn = int(obs.get("session", 0)), int(obs.get("turn", 0))
        query = self.query_text(user_id, obs)
        kind = guess_task_type(query)
        s0 = np.asarray(s0, dtype=np.float64)
        order = [int(i) for i in np.argsort(-s0, kind="stable")[:K]]  # rag's order (its select takes the first J)
        cards = np.zeros((K, len(CARD_FEATURES)), dtype=np.float32)
        mask = np.zeros(K, dtype=np.int8)
        if order:
            dense = np.asarray(emb, dtype=np.float64) @ np.asarray(q, dtype=np.float64)
            dense_kind = np.zeros(len(ids))
            if self.query_transform:
                tq = self.transformed_query(query)
                if tq not in self._kind_q:
                    self._kind_q[tq] = self.embedder.encode_one(tq)
                dense_kind = np.asarray(emb, dtype=np.float64) @ self._kind_q[tq].astype(np.float64)
            scale = float(np.max(np.abs(s0))) or 1.0
            uses = self.uses.get(user_id, {})
            p_session, p_turn, p_ids = self._prompted.get(user_id, (-1, -1, ()))
            last = set(p_ids) if (p_session, p_turn) == (session, turn - 1) else set()
            for slot, pos in enumerate(order):
                cid = ids[pos]
                c = store.cards[cid]
                match, other, mistake, steps = _condition_features(c.condition, kind)
                cards[slot] = (
                    s0[pos] / scale, dense[pos], dense_kind[pos], min(max(session - c.session, 0), 20) / 20,
                    float(c.session == session), float(c.session == session and c.turn == turn),
                    min(c.confirmations, 10) / 10, c.confidence,
                    min(np.log1p(uses.get(cid, 0)) / np.log1p(100), 1.0), float(cid in last), float(c.is_global),
                    match, other, mistake, steps,
                )
                mask[slot] = 1
        n_globals = len(store.global_cards(self.global_cap)) if self.tiers else 0
        stated = sum(1 for c in store.cards if c.session == session and c.turn == turn)
        label = _KEYWORD.classify(str(obs.get("message", "")))
        qf = np.zeros(len(QUERY_FEATURES), dtype=np.float32)
        qf[:5] = (min(turn / self.max_turns, 1.0), min(session, 50) / 50, len(order) / K,
                  n_globals / max(self.global_cap, 1), min(stated, 5) / 5)
        qf[5 + KINDS.index(kind)] = 1.0
        qf[5 + len(KINDS) + LABELS.index(label)] = 1.0
        np.clip(cards, -1.0, 1.0, out=cards)
        return RetrievalView({"query": qf, "cards": cards.reshape(-1), "mask": mask}, [ids[p] for p in order], order)

    def memory_prompt(self, user_id: str, obs: Mapping[str, Any]) -> str:
        self.last.pop(user_id, None)
        prompt = super().memory_prompt(user_id, obs)
        chosen = tuple(self.last.get(user_id, {}).get("chosen", ()))
        counts = self.uses.setdefault(user_id, {})
        for cid in chosen:
            counts[cid] = counts.get(cid, 0) + 1
        self._prompted[user_id] = (int(obs.get("session", 0)), int(obs.get("turn", 0)), chosen)
        return prompt

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(),
                "uses": {u: {str(k): v for k, v in c.items()} for u, c in self.uses.items()},
                "prompted": {u: [s, t, list(ids)] for u, (s, t, ids) in self._prompted.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.uses = {u: {int(k): int(v) for k, v in c.items()} for u, c in state.get("uses", {}).items()}
        self._prompted = {u: (int(s), int(t), tuple(int(i) for i in ids))
                          for u, (s, t, ids) in state.get("prompted", {}).items()}


class _DecidedRAGAgent(RetrievalRAGAgent):
    """The env's agent: the observation is computed before the action (:meth:`prepare`), the reply after,
    with the cards the action chose."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._prepared: tuple[str, int, int] | None = None
        self._view: RetrievalView | None = None
        self._decision: list[int] | None = None

    def prepare(self, obs: Mapping[str, Any]) -> RetrievalView:
        """Read the user's message into memory and describe this turn's decision."""
        uid = str(obs["user_id"])
        self.ingest([obs])
        self._prepared = (uid, int(obs.get("session", 0)), int(obs.get("turn", 0)))
        self._view = self.view(uid, obs, *self.retrieval_inputs(uid, obs))
        return self._view

    def ingest(self, observations: list[Mapping[str, Any]]) -> None:
        rest = [o for o in observations
                if (str(o["user_id"]), int(o.get("session", 0)), int(o.get("turn", 0))) != self._prepared]
        if rest:
            super().ingest(rest)

    def reply(self, obs: Mapping[str, Any], slots: list[int]) -> str:
        """The reply to the prepared turn with the cards of ``slots`` in the prompt."""
        assert self._view is not None
        self._decision = slots
        try:
            return self.act(obs)
        finally:
            self._decision = None

    def select(self, user_id: str, obs: Mapping[str, Any], ids: list[int], emb: np.ndarray, s0: np.ndarray,
               q: np.ndarray) -> list[int]:
        view = self._view
        if self._decision is None or view is None:
            raise RuntimeError("the retrieval env's agent chooses only through RetrievalEnv.step()")
        if [ids[p] for p in view.positions] != view.ids:  # the memory cannot change between prepare and reply
            raise RuntimeError("the candidates changed between the observation and the reply")
        return [view.positions[s] for s in self._decision]


class RetrievalEnv(gym.Env[dict, np.ndarray]):
    """Which memory cards go into the prompt: rag's retrieval decision, one agent turn per step.

    **Description.** Underneath is ``MultiSessionCollab-v0`` (a simulated user with persistent
    preferences; by default the 200 ``complex`` profiles of 43 preferences each, where the retrieval
    decision matters) and rag (:class:`agents.rag.RAGAgent`: rule extractor, hashing embedder, a
    FAISS index per user, lexical reranker, the task-kind query transformation). Each turn rag reads
    the user's message into memory, puts the global cards (at most ``global_cap``) into the prompt
    and retrieves up to ``K`` conditional candidates by dense score; the action chooses which of
    those candidates join them; rag's model replies with that prompt and the user reacts. With the
    action "the first ``J`` slots" the env reproduces rag exactly (same replies, same rewards).

    **Observation.** ``Dict``: ``query`` (``Box(0, 1, (17,))``, :data:`QUERY_FEATURES`: turn,
    session, number of candidates, global cards, cards stated in the latest message, the guessed
    task kind one-hot, the keyword classifier's label of the latest message one-hot), ``cards``
    (``Box(-1, 1, (K * 15,))``, a ``[K, 15]`` array flattened slot by slot, since SB3's extractors
    expect 1-D vectors: :data:`CARD_FEATURES` per candidate: reranker score, dense cosine to the
    query and to the task-kind query, age in sessions, stated this session / in the latest message,
    confirmations, extractor confidence, prompt uses, in the previous turn's prompt, global, whether
    its condition names the guessed task kind or only others, mistakes, multi-step) and ``mask``
    (``MultiBinary(K)``: 1 for a real candidate). Slots are sorted by rag's reranker score (stable),
    so slot ``i`` is rag's ``i``-th choice; padded slots are zero. Only what a deployed assistant
    knows goes in: no profile, no checker verdict, no oracle label.

    **Action.** ``MultiBinary(K)``: the cards to put into the prompt. Set bits on padded slots are
    ignored; of the rest at most ``J`` are taken, the best by reranker first (the prompt budget is
    rag's). All zeros: no conditional card. rag's choice is ``[1] * J + [0] * (K - J)``.

    **Rewards.** The text env's reward for the reply, unchanged: the value of the feedback label of
    the user's reaction (restate -1.0, correction -0.8, confusion -0.6, praise +0.8, progress +0.1,
    neutral 0), plus ``success_reward`` x task success on the session's last step;
    ``info["reward_terms"]`` has both terms. The label comes from ``feedback``: by default
    ``"oracle"``, the simulator's own true label (exact, but privileged); ``"keyword"`` labels it as
    a deployed system could.

    **Episode end.** One episode is one session: ``terminated`` when the user ends it, ``truncated``
    after ``max_turns`` user messages. The users and rag's memory of each persist across episodes.
    ``reset(seed=s)`` starts a fresh lifetime (every user back at session 0, memory empty) with user
    ``s mod n_users``; ``reset()`` starts the next session of the next user (``rotate_users=True``,
    so a learner that only calls ``reset()`` sees every user in turn, each user's sessions in order)
    or of the same user (``rotate_users=False``, the text env's behaviour);
    ``reset(options={"user_id": ...})`` or ``{"user_index": ...}`` picks the user.

    **Info.** The text env's ``info`` (``user_id``, ``session``, ``turn``, ``reward_terms``,
    ``metrics`` on the last step, ``oracle`` only with ``oracle_info=True``), plus ``candidates``
    (the real slots of the returned observation; 0 after the last step) and, after a step, ``chosen``
    (the notes of the chosen cards, in prompt order) and ``reply`` (the agent's reply).

    **Arguments.** ``K`` (64: candidate slots, rag's dense top-K), ``J`` (3: prompt budget, rag's),
    ``rotate_users`` (True), ``agent_model`` (``"scripted"`` or a chat backend spec / object),
    ``agent_seed`` (0: the agent's sampling seed, as ``msc run --seed 0``), ``agent_kwargs`` (other
    :class:`~agents.rag.RAGAgent` arguments: ``embedder``, ``reranker``, ``extractor``,
    ``global_cap``, ``query_transform``, ``tiers``), and the text env's arguments (``profiles``,
    default ``"complex"``; ``n_users``, ``datasets``, ``max_turns``, ``feedback``,
    ``success_reward``, ``user_simulator``, ``oracle_info``, ...). ``render_mode="ansi"`` renders
    the session transcript.

    **Version history.** v0: first release.

    >>> from agents.retrieval_env import RetrievalEnv
    >>> env = RetrievalEnv(n_users=2)
    >>> obs, info = env.reset(seed=0)
    >>> obs["cards"].reshape(64, -1).shape, int(obs["mask"].sum())
    ((64, 15), 0)
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, K: int = 64, J: int = 3, rotate_users: bool = True, agent_model: Any = "scripted",
                 agent_seed: int = 0, agent_kwargs: Mapping[str, Any] | None = None, render_mode: str | None = None,
                 **world_kwargs: Any):
        from personalization_env.env import MultiSessionCollabEnv

        for name, v in (("K", K), ("J", J)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        agent_kwargs = dict(agent_kwargs or {})
        clash = sorted(set(agent_kwargs) & {"K", "J", "model", "seed"})
        if clash:
            raise ValueError(f"agent_kwargs may not set {clash}: they are the env's own arguments "
                             "(K, J, agent_model, agent_seed)")
        world_kwargs.setdefault("profiles", "complex")
        self.world = MultiSessionCollabEnv(**world_kwargs)
        self.K, self.J = int(K), int(J)
        self.rotate_users = bool(rotate_users)
        self.agent_model, self.agent_seed, self.agent_kwargs = agent_model, int(agent_seed), agent_kwargs
        self.render_mode = render_mode
        self.observation_space = retrieval_observation_space(self.K)
        self.action_space = spaces.MultiBinary(self.K)
        self.agent = self._new_agent()
        self._obs: Mapping[str, Any] | None = None
        self._view: RetrievalView | None = None
        self._done = True
        self._started = False

    def _new_agent(self) -> _DecidedRAGAgent:
        return _DecidedRAGAgent(K=self.K, J=self.J, model=self.agent_model, seed=self.agent_seed,
                                max_turns=self.world.max_turns, **self.agent_kwargs)

    @property
    def candidate_ids(self) -> list[int]:
        """The card indices (into ``env.agent.store(user_id)``) of the current observation's real slots,
        in slot order (for analysis; a policy sees only the observation)."""
        return list(self._view.ids) if self._view is not None else []

    @property
    def profiles(self) -> list[Any]:
        """The users' profiles (oracle knowledge: a policy must not read them)."""
        return self.world.profiles

    # ---- gym API -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        options = dict(options or {})
        if seed is not None:
            self.agent = self._new_agent()  # a fresh lifetime: nothing remembered
        elif self.rotate_users and self._obs is not None and not options:
            ids = [p.user_id for p in self.world.profiles]
            options = {"user_index": (ids.index(str(self._obs["user_id"])) + 1) % len(ids)}
        if self._obs is not None and not self._done:
            self.agent.end_session(str(self._obs["user_id"]), {})  # an abandoned session: forget its transcript
        obs, info = self.world.reset(seed=seed, options=options or None)
        self._started = True
        self._done = False
        out = self._observe(obs)
        return out, self._info(info)

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        if not self._started:
            raise RuntimeError("step() called before reset(); call env.reset() first")
        if self._done:
            raise RuntimeError("step() called after the session ended; call env.reset() to start the next session")
        view, obs = self._view, self._obs
        assert view is not None and obs is not None
        slots = chosen_slots(action, view.obs["mask"], self.J)
        reply = self.agent.reply(obs, slots)
        nxt, reward, terminated, truncated, info = self.world.step(reply)
        self.agent.observe(nxt, reward, terminated, truncated, info)
        store = self.agent.store(str(obs["user_id"]))
        chosen = [store.cards[view.ids[s]].note for s in slots]
        self._done = bool(terminated or truncated)
        out = self._observe(nxt) if not self._done else self._terminal_obs()
        info = self._info(info)
        info["chosen"] = chosen
        info["reply"] = reply
        return out, float(reward), bool(terminated), bool(truncated), info

    def render(self) -> str | None:
        """The session transcript (``ansi``)."""
        return self.world.transcript_text() if self.render_mode == "ansi" else None

    # ---- helpers -------------------------------------------------------------------------------
    def _observe(self, obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        self._obs = obs
        self._view = self.agent.prepare(obs)
        return {k: v.copy() for k, v in self._view.obs.items()}

    def _terminal_obs(self) -> dict[str, np.ndarray]:
        """After the session's last step there is no next decision: an all-padding observation."""
        self._view = None
        space = self.observation_space
        return {k: np.zeros(s.shape, dtype=s.dtype) for k, s in space.spaces.items()}

    def _info(self, info: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(info)
        out["candidates"] = int(self._view.obs["mask"].sum()) if self._view is not None else 0
        return out


def register_retrieval_env() -> None:
    """Register ``MultiSessionCollabRetrieval-v0`` with Gymnasium (idempotent; a string entry point)."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point=ENTRY_POINT, order_enforce=True)
