"""Why does (or doesn't) rag_vector beat rag? Variants run side by side on the same users and tasks.

Each variant changes one thing of the default rag_vector; user effort over the later sessions is
compared with rag by a paired test over users::

    python -m benchmarks.ablation_rag_vector --users 60 --sessions 12 --workers 2
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from agents.rag_vector import RAGVectorAgent
from benchmarks.run import RunConfig, run
from benchmarks.stats import compare_methods, per_user_means


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


VARIANTS = {f"benchmarks.ablation_rag_vector:{c.__name__}": c.__doc__.strip().splitlines()[0]
            for c in (Greedy, EnvReward, Paper, FrozenVector, StrongLR)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profiles", default="complex")
    p.add_argument("--users", type=int, default=60)
    p.add_argument("--sessions", type=int, default=12)
    p.add_argument("--from-session", type=int, default=6)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="runs/ablation_rag_vector")
    args = p.parse_args()
    methods = ["rag", "rag_vector", *VARIANTS]
    rows = run(RunConfig(methods=methods, profiles=args.profiles, n_users=args.users, sessions=args.sessions,
                         out=args.out, workers=args.workers, progress=False))
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
