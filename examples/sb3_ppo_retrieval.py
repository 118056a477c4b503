"""Train SB3 PPO on rag's retrieval decision, then run the policy as an agent beside rag and rag_vector.

MultiSessionCollabRetrieval-v0 hands PPO one numeric decision per agent turn: which of rag's candidate
memory cards go into the prompt (``MultiBinary(64)``, at most 3 taken). This script trains briefly
(2,048 steps, about 15 s on one core), saves the policy, runs it through the benchmark runner as the
plug-in ``agents.ppo_retrieval:PPORetrievalAgent`` and prints the usual table. A brief training
shows the path works; it is no evidence that PPO helps (``python -m benchmarks.ppo_retrieval``
measures that).

Run: python examples/sb3_ppo_retrieval.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import faiss  # noqa: F401  (loaded before the thread limit below, so that it reaches FAISS's OpenMP)
import gymnasium as gym
import torch
from stable_baselines3 import PPO
from threadpoolctl import threadpool_limits

from agents.retrieval_env import ENV_ID, register_retrieval_env
from benchmarks.report import format_table, summarize
from benchmarks.run import RunConfig, run
from personalization_env.profiles import load_profiles

PLUGIN = "agents.ppo_retrieval:PPORetrievalAgent"


def main() -> None:
    torch.set_num_threads(1)  # a tiny MLP and 30-card searches: threads only fight over the cores
    threadpool_limits(1)
    if ENV_ID not in gym.registry:  # until personalization_env registers it
        register_retrieval_env()

    # train on the last 20 of the 200 complex users; the table below uses the first 4
    env = gym.make(ENV_ID, profiles=load_profiles("complex")[-20:])
    model = PPO("MultiInputPolicy", env, n_steps=256, batch_size=64, n_epochs=4, seed=0, device="cpu")
    t0 = time.monotonic()
    model.learn(total_timesteps=2048)
    print(f"PPO: {model.num_timesteps} agent turns in {time.monotonic() - t0:.1f} s")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ppo_retrieval"
        model.save(path)
        world = dict(profiles="complex", n_users=4, sessions=3, progress=False, tensorboard=False)
        # two runs, pooled: msc run hands every --agent-arg to every method that takes **kwargs, and rag
        # and rag_vector do not accept ppo_policy (one run works once the runner scopes agent args)
        rows = run(RunConfig(methods=["rag", "rag_vector"], out=f"{tmp}/baselines", **world))
        rows += run(RunConfig(methods=[PLUGIN], agent_args={"ppo_policy": str(path)}, out=f"{tmp}/ppo", **world))
    for r in rows:
        r["method"] = "ppo_retrieval" if r["method"] == PLUGIN else r["method"]
    print("\n4 complex users x 3 sessions (simulated; the PPO policy is barely trained):\n")
    print(format_table(summarize(rows, methods=["rag", "rag_vector", "ppo_retrieval"], max_turns=10)))


if __name__ == "__main__":
    main()
