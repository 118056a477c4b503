"""Env steps per second on the embedded world (rule user simulator + scripted agent model).

Measures the whole loop a benchmark pays per step: the agent's prompt building and scripted reply,
and the env step (checkers, feedback, bookkeeping). Each configuration runs ``--repeat`` times after a
warm-up; the median and best are reported (a shared machine makes single runs vary by +-20 %).
For the README's one-core figure::

    taskset -c 0 python -m benchmarks.throughput
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from agents import make_agent
from personalization_env.env import MultiSessionCollabEnv


def measure(profiles: str = "msc", steps: int = 5000, n_users: int = 20, seed: int = 0,
            method: str = "vanilla") -> dict[str, float]:
    """Run ``steps`` env steps; returns steps/s for env + agent and for the env alone (CPU time)."""
    env = MultiSessionCollabEnv(profiles=profiles, n_users=n_users)
    kw = {"profiles": env.profiles} if method == "oracle" else {}
    agent = make_agent(method, seed=seed, **kw)
    users = [p.user_id for p in env.profiles]
    done, n, sessions = True, 0, 0
    t_env = t_agent = 0.0
    obs = None
    clock = time.process_time
    while n < steps:
        if done:
            t0 = clock()
            obs, _ = env.reset(seed=seed if sessions == 0 else None, options={"user_id": users[sessions % len(users)]})
            t_env += clock() - t0
            sessions += 1
        t0 = clock()
        reply = agent.act(obs)
        t1 = clock()
        obs, r, te, tr, info = env.step(reply)
        t2 = clock()
        agent.observe(obs, r, te, tr, info)
        t_agent += (t1 - t0) + (clock() - t2)
        t_env += t2 - t1
        done = te or tr
        n += 1
    return {"profiles": profiles, "method": method, "steps": n, "sessions": sessions,
            "steps_per_s": n / (t_env + t_agent), "env_only_steps_per_s": n / t_env,
            "agent_ms_per_step": 1000 * t_agent / n, "env_ms_per_step": 1000 * t_env / n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--profiles", default="msc,complex")
    p.add_argument("--method", default="vanilla")
    args = p.parse_args()
    for prof in args.profiles.split(","):
        measure(prof, steps=1000, method=args.method)  # warm caches (catalogue, recogniser, scorers)
        runs = [measure(prof, steps=args.steps, method=args.method) for _ in range(args.repeat)]
        out = {"profiles": prof, "method": args.method, "steps": args.steps, "repeat": args.repeat}
        for key in ("steps_per_s", "env_only_steps_per_s", "agent_ms_per_step", "env_ms_per_step"):
            vals = [r[key] for r in runs]
            out[key + "_median"] = round(statistics.median(vals), 3)
        out["steps_per_s_best"] = round(max(r["steps_per_s"] for r in runs), 1)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
