"""Why does (or doesn't) rag_vector beat rag? Variants run side by side on the same users and tasks.

Each variant changes one thing of the default rag_vector; user effort over the later sessions is
compared with rag by a paired test over users::

    python -m benchmarks.ablation_rag_vector --users 60 --sessions 12 --workers 2
    python -m benchmarks.ablation_rag_vector --diagnose --users 30 --sessions 10

``--diagnose`` measures what the retrieval itself does, per retrieval turn: the share of chosen cards
whose preference can apply to the session's task (a card is mapped to the user's preference by the
scripted model's recogniser, so this uses the same reading as the agent model), how many applicable
conditional cards there were, and, for rag_vector, how the user's next reaction depends on how many
applicable cards were chosen (the signal REINFORCE learns from). ``oracle_retrieval`` picks applicable
candidates first: the upper bound of any re-ranking of the same J cards.
"""

from __future__ import annotations

import argparse
import json
from functools import cache
from typing import Any

import numpy as np

from agents import make_agent
from agents.rag import RAGAgent
from agents.rag_vector import RAGVectorAgent
from benchmarks.progress import Progress
from benchmarks.run import RunConfig, run
from benchmarks.stats import compare_methods, per_user_means


class RandomPick(RAGAgent):
    """Lower bound: J cards drawn at random from the dense candidates (the reranker ignored)."""

    def select(self, user_id: str, obs: Any, ids: list[int], emb: Any, s0: Any, q: Any) -> list[int]:
        rng = np.random.default_rng([len(ids), int(obs.get("session", 0)), int(obs.get("turn", 0))])
        return [int(i) for i in rng.permutation(len(ids))[: self.J]]


class Greedy(RAGVectorAgent):
    """No exploration: deterministic top-J under the learned scores."""

    def __init__(self, **kw: Any):
        super().__init__(policy={"explore": False}, **kw)


class EnvReward(RAGVectorAgent):
    """Learns from the env's feedback reward (the simulator's true label) instead of the keyword heuristic."""

    def __init__(self, **kw: Any):
        super().__init__(reward="env", **kw)


class Paper(RAGVectorAgent):
    """The published settings."""

    def __init__(self, **kw: Any):
        super().__init__(preset="paper", **kw)


class FrozenVector(RAGVectorAgent):
    """Exploration as default, but the vector never learns (isolates the cost of exploring)."""

    def __init__(self, **kw: Any):
        super().__init__(policy={"eta_L": 0.0, "eta_S": 0.0}, **kw)


class StrongLR(RAGVectorAgent):
    """Ten times the learning rates."""

    def __init__(self, **kw: Any):
        super().__init__(policy={"eta_L": 0.1, "eta_S": 0.5}, **kw)


class Conditional(RAGVectorAgent):
    """The conditional preset: a vector per task kind, credit to the restated card."""

    def __init__(self, **kw: Any):
        super().__init__(preset="conditional", **kw)


class ContextOnly(RAGVectorAgent):
    """A vector per task kind, learning from the reaction only."""

    def __init__(self, **kw: Any):
        super().__init__(policy={"context": "task"}, **kw)


class CreditOnly(RAGVectorAgent):
    """One vector per user, plus credit to the restated card."""

    def __init__(self, **kw: Any):
        super().__init__(policy={"credit": "restated"}, **kw)


class OracleRetrieval(RAGAgent):
    """Upper bound of re-ranking: top-J among the candidates, cards applicable to the task first."""

    privileged = True  # reads the users' true preferences

    def __init__(self, profiles: Any = (), **kw: Any):
        super().__init__(**kw)
        self.profiles = {p.user_id: p for p in profiles}

    def select(self, user_id: str, obs: Any, ids: list[int], emb: Any, s0: Any, q: Any) -> list[int]:
        app = _applicable(self, self.profiles[user_id], ids, self.opening(user_id) or str(obs["message"]))
        order = sorted(range(len(ids)), key=lambda i: (not app[i], -float(s0[i])))
        return order[: self.J]


@cache
def _recognizer() -> Any:
    """The scripted model's recogniser (built once): how the agent model reads a card."""
    from personalization_env.llm.scripted import ScriptedBackend

    return ScriptedBackend().recognizer


def _applicable(agent: RAGAgent, profile: Any, ids: list[int], opening: str) -> list[bool]:
    """Whether each card's preference (the user's preference of the type the card reads as) can apply
    to the task of the session; cards that read as no preference of the user count as not applicable."""
    from personalization_env.tasks import lookup_task

    task = lookup_task(opening)
    prefs = {p.type.id: p for p in profile.preferences}
    out = []
    for i in ids:
        r = _recognizer().recognize(agent.store(profile.user_id).cards[i].note)
        p = prefs.get(r.type_id) if r is not None else None
        kinds = p.condition.task_kinds if p is not None else None
        out.append(p is not None and task is not None and (not kinds or task.kind in kinds))
    return out


def diagnose(methods: list[str], profiles: str, n_users: int, sessions: int) -> None:
    """Retrieval precision and the reward signal (see module docstring); prints one JSON line per method."""
    from personalization_env.env import MultiSessionCollabEnv

    for spec in methods:
        env = MultiSessionCollabEnv(profiles=profiles, n_users=n_users)
        agent = make_agent(spec, seed=0, **({"profiles": env.profiles} if "OracleRetrieval" in spec else {}))
        bar = Progress(len(env.profiles) * sessions, f"diagnose {spec.split(':')[-1]}", "session")
        chosen = applicable_chosen = available = turns = 0
        by_k: dict[int, list[float]] = {}
        effort: list[float] = []
        for ui, p in enumerate(env.profiles):
            for s in range(sessions):
                bar.update()
                obs, _ = env.reset(seed=0 if ui == 0 and s == 0 else None, options={"user_id": p.user_id})
                opening = str(obs["message"])
                while True:
                    reply = agent.act(obs)
                    last = agent.last.get(p.user_id) if isinstance(agent, RAGAgent) else None
                    k = None
                    if last and last["chosen"]:
                        store = agent.store(p.user_id)
                        cond = [i for i, c in enumerate(store.cards) if not c.is_global]
                        app_all = dict(zip(cond, _applicable(agent, p, cond, opening)))
                        k = sum(app_all.get(i, False) for i in last["chosen"])
                        chosen += len(last["chosen"])
                        applicable_chosen += k
                        available += sum(app_all.values())
                        turns += 1
                    obs, reward, term, trunc, info = env.step(reply)
                    agent.observe(obs, reward, term, trunc, info)
                    if k is not None:
                        by_k.setdefault(k, []).append(float(info["reward_terms"]["feedback"]))
                    if term or trunc:
                        if s >= sessions // 2:
                            effort.append(info["metrics"]["user_effort"])
                        break
        bar.close()
        print(json.dumps({
            "method": spec.split(":")[-1], "effort_later_sessions": round(sum(effort) / len(effort), 3),
            "precision": round(applicable_chosen / chosen, 3) if chosen else None,
            "applicable_conditional_cards_per_turn": round(available / turns, 2) if turns else None,
            "reward_by_applicable_chosen": {k: {"turns": len(v), "mean_reward": round(sum(v) / len(v), 3),
                                                "positive": round(sum(x > 0 for x in v) / len(v), 3)}
                                            for k, v in sorted(by_k.items())}}))


VARIANTS = {f"benchmarks.ablation_rag_vector:{c.__name__}": c.__doc__.strip().splitlines()[0]
            for c in (Greedy, EnvReward, Paper, FrozenVector, StrongLR, Conditional, ContextOnly, CreditOnly,
                      OracleRetrieval, RandomPick)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profiles", default="complex")
    p.add_argument("--users", type=int, default=60)
    p.add_argument("--sessions", type=int, default=12)
    p.add_argument("--from-session", type=int, default=6)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="runs/ablation_rag_vector")
    p.add_argument("--diagnose", action="store_true", help="retrieval precision and reward signal instead")
    args = p.parse_args()
    if args.diagnose:
        diagnose(["rag", "rag_vector", "benchmarks.ablation_rag_vector:Conditional",
                  "benchmarks.ablation_rag_vector:OracleRetrieval",
                  "benchmarks.ablation_rag_vector:RandomPick"], args.profiles, args.users, args.sessions)
        return
    methods = ["rag", "rag_vector", *VARIANTS]
    rows = run(RunConfig(methods=methods, profiles=args.profiles, n_users=args.users, sessions=args.sessions,
                         out=args.out, workers=args.workers, overwrite=True))
    for m in methods:
        effort = per_user_means(rows, m, "user_effort", args.from_session)
        mean = sum(effort.values()) / len(effort)
        res = compare_methods(rows, m, "rag", "user_effort", args.from_session) if m != "rag" else None
        stats = [r["agent_stats"] for r in rows if r["method"] == m and r.get("agent_stats")]
        turns = sum(s["turns"] for s in stats)
        changed = sum(s["changed"] for s in stats)
        print(json.dumps({"method": m.split(":")[-1], "what": VARIANTS.get(m, ""), "effort": round(mean, 3),
                          "vs_rag": None if res is None else {k: round(res[k], 4) for k in ("mean_diff", "ci95", "p")},
                          "change_rate": round(changed / turns, 4) if turns else None}))


if __name__ == "__main__":
    main()
