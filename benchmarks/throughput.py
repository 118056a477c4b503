"""Env steps per second on the embedded world (rule user simulator + scripted agent model).

Measures the whole loop a benchmark pays per step: the agent's prompt building and scripted reply, and
the env step (checkers, feedback, bookkeeping). Run on one core for the README's figure::

    taskset -c 0 python -m benchmarks.throughput --steps 5000
"""

from __future__ import annotations

import argparse
import json
import time

from agents import make_agent
from personalization_env.env import MultiSessionCollabEnv


def measure(profiles: str = "msc", steps: int = 5000, n_users: int = 20, seed: int = 0,
            method: str = "vanilla") -> dict[str, float]:
    """Run ``steps`` env steps; returns steps/s for the env alone and for env + agent."""
    env = MultiSessionCollabEnv(profiles=profiles, n_users=n_users)
    kw = {"profiles": env.profiles} if method == "oracle" else {}
    agent = make_agent(method, seed=seed, **kw)
    env.reset(seed=seed)
    users = [p.user_id for p in env.profiles]
    done, n, sessions = True, 0, 0
    t_env = t_agent = 0.0
    obs = None
    while n < steps:
        if done:
            obs, _ = env.reset(options={"user_id": users[sessions % len(users)]})
            sessions += 1
        t0 = time.perf_counter()
        reply = agent.act(obs)
        t1 = time.perf_counter()
        obs, r, te, tr, info = env.step(reply)
        t2 = time.perf_counter()
        agent.observe(obs, r, te, tr, info)
        t_agent += (t1 - t0) + (time.perf_counter() - t2)
        t_env += t2 - t1
        done = te or tr
        n += 1
    return {"profiles": profiles, "method": method, "steps": n, "sessions": sessions,
            "steps_per_s": n / (t_env + t_agent), "env_only_steps_per_s": n / t_env,
            "agent_ms_per_step": 1000 * t_agent / n, "env_ms_per_step": 1000 * t_env / n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--profiles", default="msc,complex")
    p.add_argument("--method", default="vanilla")
    args = p.parse_args()
    for prof in args.profiles.split(","):
        measure(prof, steps=200, method=args.method)  # warm caches (catalogue, recogniser)
        res = measure(prof, steps=args.steps, method=args.method)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}))


if __name__ == "__main__":
    main()
