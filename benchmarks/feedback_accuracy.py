"""Accuracy of the feedback classifiers against the rule simulator's true labels.

Runs vanilla and oracle agents on the embedded world, collects every user turn after the opening
with its true label, and reports each classifier's accuracy (overall and per true label); then the
same on hand-written messages the simulator did not write (``--heldout``)::

    python -m benchmarks.feedback_accuracy --users 40 --sessions 5
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict

from pathlib import Path

from agents import make_agent
from agents.base import strip_oracle
from personalization_env.env import MultiSessionCollabEnv
from personalization_env.feedback import make_classifier


#: hand-written messages with their labels, not written by the simulator
HELDOUT = Path(__file__).resolve().parents[1] / "tests" / "feedback" / "data" / "heldout_messages.jsonl"


def collect(profiles: str, users: int, sessions: int, seed: int = 0) -> list[tuple[str, str]]:
    """(message, true label) of every user reply turn."""
    out = []
    for method in ("vanilla", "oracle"):
        env = MultiSessionCollabEnv(profiles=profiles, n_users=users, oracle_info=True)
        kw = {"profiles": env.profiles} if method == "oracle" else {}
        agent = make_agent(method, seed=seed, **kw)
        env.reset(seed=seed)
        for p in env.profiles:
            for _ in range(sessions):
                obs, _ = env.reset(options={"user_id": p.user_id})
                while True:
                    obs, r, te, tr, info = env.step(agent.act(obs))
                    out.append((obs["message"], info["oracle"]["label"]))
                    agent.observe(obs, r, te, tr, strip_oracle(info))
                    if te or tr:
                        break
    return out


def evaluate(turns: list[tuple[str, str]], classifier: str) -> dict[str, object]:
    clf = make_classifier(classifier)
    per: dict[str, Counter] = defaultdict(Counter)
    for msg, true in turns:
        per[true][clf.classify(msg) == true] += 1
    correct = sum(c[True] for c in per.values())
    return {"classifier": classifier, "turns": len(turns), "accuracy": round(correct / len(turns), 4),
            "per_label": {k: {"n": sum(c.values()), "accuracy": round(c[True] / sum(c.values()), 4)}
                          for k, c in sorted(per.items())}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profiles", default="msc,complex")
    p.add_argument("--users", type=int, default=40)
    p.add_argument("--sessions", type=int, default=5)
    p.add_argument("--classifier", default="keyword", help="feedback classifier spec (make_classifier), e.g. keyword, learned")
    p.add_argument("--heldout", default=str(HELDOUT),
                   help="also score a JSONL of messages the simulator did not write ({'message', 'label'} per line; "
                        "default: %(default)s when it exists; '' to skip)")
    args = p.parse_args()
    for prof in args.profiles.split(","):
        turns = collect(prof, args.users, args.sessions)
        print(json.dumps({"profiles": prof, **evaluate(turns, args.classifier)}))
    if args.heldout and Path(args.heldout).exists():
        rows = [json.loads(x) for x in Path(args.heldout).read_text(encoding="utf-8").splitlines() if x.strip()]
        print(json.dumps({"messages": args.heldout, **evaluate([(r["message"], r["label"]) for r in rows], args.classifier)}))


if __name__ == "__main__":
    main()
