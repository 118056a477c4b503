"""The REINFORCE user-vector retrieval policy of rag_vector (spec: shared VARS.md; DESIGN section 10).

Per user it keeps a long-term vector ``z_long`` and a session vector ``z_short`` in a ``k``-dim item
space. Candidate cards (after dense retrieval) are scored ``s = s0 + V z_eff`` with
``z_eff = beta_L z_long + beta_S z_short`` and ``V`` the cards' item vectors ``v = P (e - mu)``; the
policy ``pi = softmax(s / tau)`` chooses J cards (sampled without replacement when exploring,
deterministic top-J otherwise). The reward of the user's next turn updates both vectors::

    A = g * (r - b)
    grad = (A / tau) * (mean_{i in chosen} V_i - sum_i pi_i V_i)
    z_long += eta_L * grad;  z_short = (1 - lambda) z_short + eta_S * grad;  b = (1 - alpha) b + alpha r

Base scores ``s0`` enter on the log scale (``log max(s0, floor)``, the reranker's log-probability
as VARS specifies; the rerankers here return [0, 1] scores) in the default preset.

Extensions beyond VARS (the ``conditional`` preset; off in ``default`` and ``paper``): ``context="task"``
adds a vector per (user, task kind) to ``z_long`` (``z_eff = beta_L (z_long + z_ctx[kind]) + ...``) and
sends the long-term updates of a turn to its kind's vector, so the policy can learn which cards go
with which kind of task; ``credit="restated"`` adds, when the user's next message restates a
preference, a step of size ``eta_R`` toward the candidate card most similar to that message (cosine >= ``restate_sim``): ``grad_R = (V_target - sum_i pi_i V_i) / tau``,
the gradient of ``log pi(target)``. The reaction-based REINFORCE reward barely depends on which cards
were chosen in dense profiles (measured: ``benchmarks/ablation_rag_vector.py --diagnose``); a
restatement names the card that was missing.

Presets: ``paper`` reproduces the published code's settings (J = 5, deterministic top-J, item vectors
= the first k embedding dimensions, reranking skipped when there are at most J candidates, no reward
for a session's last turn, zero gradient with at most J candidates); ``default`` fixes the published
defects: a fitted PCA item space (a random orthonormal basis completes it while there are few cards;
refitted each time the memory doubles, carrying the user vectors over through embedding space),
always reranking, learning while every candidate fits (at most J candidates are all shown: the shown set
has probability 1, so the reaction gradient is exactly 0 and the published code never learned there;
here a restatement of a preference steps the vector toward the restated card, as ``credit="restated"``
does, and no card is hidden to manufacture a choice), the session-end signal rewards the last turn, and
every user starts at 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

import numpy as np
import torch


@dataclass(frozen=True)
class UserVectorConfig:
    """Hyper-parameters (VARS names); see the module docstring for the presets."""

    k: int = 256
    beta_L: float = 2.0
    beta_S: float = 5.0
    tau: float = 1.0
    eta_L: float = 0.01
    eta_S: float = 0.05
    alpha: float = 0.05
    lam: float = 0.1
    K: int = 64
    J: int = 3
    global_cap: int = 10
    explore: bool = True
    fit_pca: bool = True
    rerank_always: bool = True
    reward_last_turn: bool = True
    always_choose: bool = True  # learn from restatements while every candidate is shown (False: the paper's zero)
    gate_requires_sq1: bool = False
    min_pca_cards: int = 8
    s0_log: bool = True
    s0_floor: float = 1e-4
    context: str = "none"
    credit: str = "reaction"
    eta_R: float = 0.05
    restate_sim: float = 0.3

    def __post_init__(self) -> None:
        for name in ("k", "K", "J", "global_cap"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("tau",):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.context not in ("none", "task"):
            raise ValueError(f"context must be 'none' or 'task', got {self.context!r}")
        if self.credit not in ("reaction", "restated"):
            raise ValueError(f"credit must be 'reaction' or 'restated', got {self.credit!r}")
        if not 0.0 < self.s0_floor < 1.0:
            raise ValueError(f"s0_floor must be in (0, 1), got {self.s0_floor!r}")
        for name in ("alpha", "lam"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "conditional": {"context": "task", "credit": "restated"},
    "paper": {"J": 5, "explore": False, "fit_pca": False, "rerank_always": False, "reward_last_turn": False,
              "always_choose": False, "gate_requires_sq1": True, "s0_log": False},
}


def make_config(preset: str = "default", **overrides: Any) -> UserVectorConfig:
    """A config from a preset plus overrides (unknown names are rejected)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown rag_vector preset {preset!r}; known: {sorted(PRESETS)}")
    known = {f.name for f in fields(UserVectorConfig)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise ValueError(f"unknown rag_vector parameter(s) {bad}; known: {sorted(known)}")
    return replace(UserVectorConfig(), **{**PRESETS[preset], **overrides})


def base_logits(s0: np.ndarray, config: UserVectorConfig) -> np.ndarray:
    """The policy's base scores: ``log(max(s0, floor))`` (``s0_log``) or ``s0`` as it is.

    VARS scores candidates with the reranker's log-probability. The rerankers here return scores in
    [0, 1] (the lexical one normalised to its best candidate, a cross-encoder's sigmoid), and
    ``softmax(s0 / tau)`` over raw [0, 1] scores is nearly uniform over dozens of candidates: exploring
    then samples cards almost at random (see ``benchmarks/ablation_rag_vector.py --diagnose`` for the
    precision of the chosen cards). On the log scale ``pi`` is proportional to
    ``s0 ** (1 / tau)`` times the vector's factor, so exploration stays near the reranker's choice.
    """
    s0 = np.asarray(s0, dtype=np.float64)
    return np.log(np.maximum(s0, config.s0_floor)) if config.s0_log else s0


def gate(r: float, sq: float, sq1: float, *, paper: bool = False) -> float:
    """How much retrieval is to blame or credit for reward ``r`` (VARS heuristic).

    Args:
        r: the reward.
        sq: max cosine of the chosen cards to the query they were retrieved for.
        sq1: max cosine of the chosen cards to the user's next message.
        paper: also require ``sq1 < 0.2`` for the "retrieval missed" case, as the published code does.
    """
    if r < -0.5 and sq < 0.2 and (sq1 < 0.2 or not paper):
        return 0.9
    if r < -0.5 and sq > 0.5:
        return 0.2
    if r > 0.5:
        return 0.6 if sq > 0.4 else 0.3
    return 0.5


def reinforce_grad(V: torch.Tensor, pi: torch.Tensor, chosen: list[int], advantage: float, tau: float) -> torch.Tensor:
    """Gradient wrt ``z_eff`` of ``advantage * mean_{i in chosen} log pi_i`` with ``pi = softmax((s0 + V z)/tau)``."""
    # numpy for the gather, mean and arithmetic (each torch call on these small tensors costs more than
    # the math; the results are the same bits); torch for the product, whose BLAS rounding numpy's differs from
    g = (advantage / tau) * (V.numpy()[chosen].mean(axis=0) - (pi @ V).numpy())
    return torch.from_numpy(g)


@dataclass
class Pending:
    """What the update needs from the turn that retrieved cards."""

    V: torch.Tensor  # candidate item vectors [n, k]
    pi: torch.Tensor  # policy probabilities [n]
    chosen: list[int]
    chosen_emb: np.ndarray  # embeddings of the chosen cards [J, d]
    sq: float  # max cosine of the chosen cards to the query
    cand_emb: np.ndarray | None = None  # embeddings of all candidates [n, d]
    context: str | None = None  # the task-kind key of the turn (context="task")


def vector_changed_choice(s0: np.ndarray, s: np.ndarray, J: int) -> bool:
    """Whether the top-J cards under the scores ``s`` differ from every top-J under the base scores
    ``s0``: some card in it ranks strictly below the J-th base score. Cards tied with the J-th base
    score are all admissible, so the vector breaking a tie among them is no change."""
    if J <= 0 or J >= len(s0):
        return False
    top_s = np.argsort(-s, kind="stable")[:J]
    threshold = np.partition(s0, len(s0) - J)[len(s0) - J]  # the J-th largest base score
    return bool((s0[top_s] < threshold).any())


class UserState:
    """One user's vectors, reward baseline, item space and pending record."""

    def __init__(self, k: int, d: int, seed: int):
        self.k, self.d = k, d
        self.z_long = torch.zeros(k, dtype=torch.float64)
        self.z_short = torch.zeros(k, dtype=torch.float64)
        self.z_ctx: dict[str, torch.Tensor] = {}
        self.b = 0.0
        self.rng = np.random.default_rng(seed)
        g = np.random.default_rng(seed + 1)
        q, _ = np.linalg.qr(g.standard_normal((d, k)))  # random orthonormal basis (columns)
        self.P = torch.from_numpy(np.ascontiguousarray(q.T))  # [k, d]
        self._Pt_of: torch.Tensor | None = None  # the P that _Pt is the transpose of
        self._Pt: np.ndarray | None = None
        self.mu = torch.zeros(d, dtype=torch.float64)
        self.fitted_n = 0
        self.pending: Pending | None = None
        self.updates = 0
        self.items = np.zeros((0, k))  # item vectors of the user's retrievable cards, by index row

    def item_vectors(self, E: np.ndarray, *, first_dims: bool) -> torch.Tensor:
        e = np.asarray(E, dtype=np.float64)
        if first_dims:  # the published code: the first k embedding dimensions, never projected
            out = np.zeros((len(e), self.k))
            out[:, : min(self.k, self.d)] = e[:, : self.k]
            return torch.from_numpy(out)
        return torch.from_numpy((e - self._mu_np) @ self._Pt_np)

    @property
    def _mu_np(self) -> np.ndarray:
        return self.mu.numpy()

    @property
    def _Pt_np(self) -> np.ndarray:
        """``P`` transposed into a contiguous array, kept until ``P`` is replaced (a refit or a load)."""
        if self._Pt is None or self._Pt_of is not self.P:
            self._Pt, self._Pt_of = np.ascontiguousarray(self.P.numpy().T), self.P
        return self._Pt

    def refit(self, E_all: np.ndarray) -> None:
        """PCA of the user's card embeddings, completed by random orthonormal directions; the user
        vectors are carried over: w = P_old^T z (embedding space), z_new = P_new w."""
        E = torch.from_numpy(np.asarray(E_all, dtype=np.float64))
        mu = E.mean(dim=0)
        X = E - mu
        n_comp = min(self.k, max(0, len(E) - 1), self.d)
        _, _, Vh = torch.linalg.svd(X, full_matrices=False)
        comps = Vh[:n_comp]
        if n_comp < self.k:  # complete with random directions orthogonal to the PCA ones
            g = torch.from_numpy(self.rng.standard_normal((self.d, self.k - n_comp)))
            g = g - comps.T @ (comps @ g)
            q, _ = torch.linalg.qr(g)
            comps = torch.cat([comps, q.T[: self.k - n_comp]], dim=0)
        P_new = comps
        for name in ("z_long", "z_short"):
            w = self.P.T @ getattr(self, name)
            setattr(self, name, P_new @ w)
        self.z_ctx = {key: P_new @ (self.P.T @ z) for key, z in self.z_ctx.items()}
        self.P, self.mu, self.fitted_n = P_new.contiguous(), mu, len(E)

    def to_dict(self) -> dict[str, Any]:
        """The state with its vectors and matrices as numpy arrays (copies): runners checkpoint it after
        every session, and a [k, d] basis is slow to turn into lists and to pickle as lists."""
        return {"z_long": self.z_long.numpy().copy(), "z_short": self.z_short.numpy().copy(), "b": self.b,
                "z_ctx": {key: z.numpy().copy() for key, z in self.z_ctx.items()},
                "P": self.P.numpy().copy(), "mu": self.mu.numpy().copy(), "fitted_n": self.fitted_n,
                "updates": self.updates, "rng": self.rng.bit_generator.state, "items": self.items.copy()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], k: int, dim: int) -> "UserState":
        s = cls(k, dim, 0)
        s.z_long = torch.tensor(d["z_long"], dtype=torch.float64)
        s.z_short = torch.tensor(d["z_short"], dtype=torch.float64)
        s.z_ctx = {key: torch.tensor(z, dtype=torch.float64) for key, z in d.get("z_ctx", {}).items()}
        s.b = float(d["b"])
        s.P = torch.tensor(d["P"], dtype=torch.float64)
        s.mu = torch.tensor(d["mu"], dtype=torch.float64)
        s.fitted_n = int(d["fitted_n"])
        s.updates = int(d.get("updates", 0))
        s.rng.bit_generator.state = d["rng"]
        s.items = np.array(d.get("items", []), dtype=np.float64).reshape(-1, k)
        return s


class UserVectorPolicy:
    """Per-user REINFORCE retrieval policy (see module docstring).

    Args:
        config: a :class:`UserVectorConfig` (see :func:`make_config`).
        dim: embedding dimension.
        seed: base seed; each user's generator derives from (seed, user id).
    """

    def __init__(self, config: UserVectorConfig, dim: int, seed: int = 0):
        self.config = config
        self.dim = dim
        self.k = config.k if config.fit_pca is False else min(config.k, dim)
        self.seed = seed
        self.users: dict[str, UserState] = {}
        self.stats = {"turns": 0, "changed": 0, "updates": 0}

    def state(self, user_id: str) -> UserState:
        st = self.users.get(user_id)
        if st is None:
            h = int.from_bytes(user_id.encode()[:16].ljust(16, b"\0"), "little") % (2**31)
            st = self.users[user_id] = UserState(self.k, self.dim, (self.seed * 1_000_003 + h) % (2**32))
        return st

    def maybe_refit(self, user_id: str, E_all: np.ndarray) -> bool:
        """Refit the user's item space when the memory has doubled since the last fit, and keep the
        item vectors of all ``E_all`` rows (the user's retrievable cards, in index order) cached."""
        c = self.config
        st = self.state(user_id)
        n = len(E_all)
        refit = bool(c.fit_pca and n >= c.min_pca_cards and n >= 2 * max(st.fitted_n, c.min_pca_cards // 2))
        if refit:
            st.refit(E_all)
            st.items = st.item_vectors(E_all, first_dims=False).numpy()
        elif len(st.items) < n:
            st.items = np.concatenate([st.items, st.item_vectors(E_all[len(st.items):], first_dims=not c.fit_pca).numpy()])
        return refit

    def start_session(self, user_id: str) -> None:
        st = self.state(user_id)
        st.z_short = torch.zeros_like(st.z_short)
        st.pending = None

    def choose(self, user_id: str, cand_emb: np.ndarray, s0: np.ndarray, query_emb: np.ndarray,
               explore: bool | None = None, rows: np.ndarray | None = None,
               context: str | None = None) -> tuple[list[int], dict[str, Any]]:
        """Choose cards among the candidates; records the pending record for the next update.

        Args:
            rows: the candidates' rows in the user's cached item vectors (see :meth:`maybe_refit`);
                without them the item vectors are computed from ``cand_emb``.
            context: the turn's task-kind key (used with ``context="task"``).

        Returns the chosen candidate indices (best first) and diagnostics (``changed``: whether the
        top-J under ``s`` is not a top-J under ``s0``; see :func:`vector_changed_choice`).
        """
        c = self.config
        st = self.state(user_id)
        n = len(cand_emb)
        if n == 0:
            st.pending = None
            return [], {"changed": False, "n": 0}
        rows = None if rows is None else np.asarray(rows)
        if rows is not None and len(st.items) and int(rows.max()) < len(st.items):
            V = torch.from_numpy(st.items[rows])
        else:
            V = st.item_vectors(cand_emb, first_dims=not c.fit_pca)
        ctx = context if c.context == "task" else None
        # (numpy for the elementwise steps, torch for the product and the softmax: see reinforce_grad)
        z_long = st.z_long.numpy() + st.z_ctx[ctx].numpy() if ctx in st.z_ctx else st.z_long.numpy()
        z_eff = c.beta_L * z_long + c.beta_S * st.z_short.numpy()
        s0_np = base_logits(s0, c)
        s_np = s0_np + (V @ torch.from_numpy(z_eff)).numpy()
        pi = torch.softmax(torch.from_numpy(s_np / c.tau), dim=0)
        explore = c.explore if explore is None else explore
        J = min(c.J, n)  # at most J candidates: all are shown (see update for what is learnt then)
        if explore:  # J draws without replacement from pi (Gumbel top-k: the same distribution)
            keys = np.log(np.maximum(pi.numpy(), 1e-300)) + st.rng.gumbel(size=n)
            chosen = (-keys).argsort(kind="stable")[:J].tolist()
            chosen.sort(key=lambda i: -float(s_np[i]))
        else:
            chosen = (-s_np).argsort(kind="stable")[:J].tolist()
        changed = vector_changed_choice(s0_np, s_np, J)
        self.stats["turns"] += 1
        self.stats["changed"] += int(changed)
        q = np.asarray(query_emb, dtype=np.float64)
        sq = float((np.asarray(cand_emb)[chosen].astype(np.float64) @ q).max()) if chosen else 0.0
        keep_cands = c.credit == "restated" or (c.always_choose and J >= n)
        st.pending = Pending(V=V, pi=pi, chosen=chosen, chosen_emb=np.asarray(cand_emb)[chosen], sq=sq,
                             cand_emb=np.asarray(cand_emb) if keep_cands else None, context=ctx)
        return chosen, {"changed": changed, "n": n, "J": J}

    def wants_restatement(self, user_id: str) -> bool:
        """Whether :meth:`update` uses the ``restated`` flag for the pending turn (restatement credit is
        on, or every candidate was shown), so a caller can skip detecting restatements otherwise."""
        p = self.state(user_id).pending
        return p is not None and p.cand_emb is not None

    def _step(self, st: UserState, grad: torch.Tensor, eta: float, context: str | None) -> None:
        if context is None:
            st.z_long = st.z_long + eta * grad
        else:  # a task kind's evidence stays with that kind
            st.z_ctx[context] = st.z_ctx.get(context, torch.zeros_like(st.z_long)) + eta * grad

    def update(self, user_id: str, reward: float, next_emb: np.ndarray | None, g: float | None = None,
               restated: bool = False) -> float | None:
        """Apply the REINFORCE update for the pending turn with ``reward`` (``next_emb``: embedding of the
        user's next message, for the gate; ``restated``: that message restates a preference, for
        ``credit="restated"``). Returns the advantage used, or None when skipped."""
        c = self.config
        st = self.state(user_id)
        p = st.pending
        st.pending = None
        if p is None or not p.chosen:
            return None
        all_shown = len(p.chosen) >= len(p.pi)
        credited = False
        if restated and next_emb is not None and p.cand_emb is not None:
            sims = p.cand_emb @ np.asarray(next_emb, dtype=p.cand_emb.dtype)
            t = int(np.argmax(sims))
            if float(sims[t]) >= c.restate_sim:
                self._step(st, reinforce_grad(p.V, p.pi, [t], 1.0, c.tau), c.eta_R, p.context)
                credited = True
        sq1 = float((p.chosen_emb @ np.asarray(next_emb, dtype=np.float64)).max()) if next_emb is not None else 0.0
        g = gate(reward, p.sq, sq1, paper=c.gate_requires_sq1) if g is None else g
        A = g * (reward - st.b)
        st.b = (1 - c.alpha) * st.b + c.alpha * reward
        if all_shown:  # the shown set had probability 1: the reaction gradient is exactly zero
            if credited:
                st.updates += 1
                self.stats["updates"] += 1
            return A if credited else None
        if abs(A) < 1e-6:
            return None
        grad = reinforce_grad(p.V, p.pi, p.chosen, A, c.tau)
        self._step(st, grad, c.eta_L, p.context)
        st.z_short = (1 - c.lam) * st.z_short + c.eta_S * grad
        st.updates += 1
        self.stats["updates"] += 1
        return A

    def change_rate(self) -> float:
        """Fraction of retrieval turns in which the user vector changed the chosen top-J set."""
        return self.stats["changed"] / self.stats["turns"] if self.stats["turns"] else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "dim": self.dim, "seed": self.seed, "stats": dict(self.stats),
                "users": {u: s.to_dict() for u, s in self.users.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.stats = dict(state["stats"])
        self.users = {u: UserState.from_dict(d, self.k, self.dim) for u, d in state["users"].items()}


