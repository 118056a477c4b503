"""Drive MultiSessionCollab-v0 by hand: one user, three sessions, an agent with and without memory.

Run: python examples/quickstart.py
"""

from __future__ import annotations

import gymnasium as gym

import personalization_env  # noqa: F401  (registers MultiSessionCollab-v0)
from agents import make_agent


def main() -> None:
    env = gym.make("MultiSessionCollab-v0", profiles="msc", n_users=3)
    profiles = env.unwrapped.profiles
    for name in ("vanilla", "oracle"):
        agent = make_agent(name, profiles=profiles) if name == "oracle" else make_agent(name)
        efforts = []
        for session in range(3):
            # seed= starts a fresh lifetime (every user back at session 0); later resets continue it
            obs, info = env.reset(seed=0 if session == 0 else None, options={"user_id": profiles[0].user_id})
            while True:
                obs, reward, terminated, truncated, info = env.step(agent.act(obs))
                agent.observe(obs, reward, terminated, truncated, info)
                if terminated or truncated:
                    break
            efforts.append(info["metrics"]["user_effort"])
        print(f"{name:8s} user effort per session: {efforts}")
    print("\nlast transcript:\n")
    print(env.unwrapped.transcript_text()[:1500])


if __name__ == "__main__":
    main()
