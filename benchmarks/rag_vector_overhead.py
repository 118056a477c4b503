"""rag_vector's per-turn overhead without model time, at 43 and 10,000 cards per user.

Per turn: embed the query, dense top-K over the user's cards (FAISS), rerank, score with the user
vector, choose, and the REINFORCE update on the next message. The chat backend is a constant stub,
so no model time is counted. rag (same retrieval, no vector) runs side by side for the vector's own
share::

    taskset -c 0 python -m benchmarks.rag_vector_overhead
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from agents import make_agent
from agents.memory import Card
from personalization_env.llm import ChatBackend, ChatResponse

ACTIONS = ["use bullet points", "keep it under {n} words", "show step {n} explicitly", "add a TL;DR line",
           "state the option letter first", "use LaTeX for equation {n}", "comment line {n} of the code",
           "end with a suggestion about topic {n}", "give an example about {n}", "bold the key term {n}"]
CONDS = ["for math problems", "for logic puzzles", "for coding questions", "for multiple-choice questions",
         "when giving an answer", "after I point out a mistake"]


class StubBackend(ChatBackend):
    """Answers instantly (the overhead measured excludes model time)."""

    def _generate(self, requests):
        return [ChatResponse("Here is the answer: 42.") for _ in requests]


def fill(agent, uid: str, n: int, rng: np.random.Generator) -> None:
    store = agent.store(uid)
    for i in range(n):
        a = ACTIONS[int(rng.integers(len(ACTIONS)))].format(n=i)
        store.add(Card(CONDS[int(rng.integers(len(CONDS)))], f"{a} (variant {i})"))
    agent.on_new_cards(uid, list(range(len(store))))


def measure(method: str, n_cards: int, turns: int = 300, seed: int = 0) -> dict[str, float]:
    agent = make_agent(method, model=StubBackend(), seed=seed)
    uid = "bench-user"
    fill(agent, uid, n_cards, np.random.default_rng(seed))
    queries = ["What is the area of a 19 m by 19 m garden minus a 5 m patio?",
               "Could you use bullet points for math problems, please?", "Thanks, that helps!",
               "Hmm, I don't think that's right. Can you double-check?"]
    times = []
    for t in range(turns):
        obs = {"user_id": uid, "message": queries[t % len(queries)], "session": t // 5, "turn": t % 5}
        t0 = time.perf_counter()
        agent.memory_prompt(uid, obs)
        agent._observe({**obs, "message": queries[(t + 1) % len(queries)]}, 0.0, False, False, {})
        times.append(time.perf_counter() - t0)
    return {"method": method, "cards": n_cards, "ms_per_turn_median": round(1000 * statistics.median(times), 3),
            "ms_per_turn_p90": round(1000 * sorted(times)[int(0.9 * len(times))], 3)}


def main() -> None:
    import torch

    torch.set_num_threads(1)  # one core, as measured; tiny matrices gain nothing from threads
    import faiss

    faiss.omp_set_num_threads(1)  # OpenMP threads fighting over one pinned core made timings erratic
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cards", default="43,10000")
    p.add_argument("--turns", type=int, default=300)
    args = p.parse_args()
    for n in (int(x) for x in args.cards.split(",")):
        for method in ("rag", "rag_vector"):
            print(json.dumps(measure(method, n, args.turns)))


if __name__ == "__main__":
    main()
