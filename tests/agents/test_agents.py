from __future__ import annotations

import pytest

from agents import make_agent
from agents.base import Agent
from personalization_env.env import MultiSessionCollabEnv


class Echo(Agent):
    def _act(self, obs):
        return "echo: " + obs["message"][:20]


def test_make_agent_names_and_errors():
    assert make_agent("vanilla").name == "vanilla"
    assert type(make_agent("tests.agents.test_agents:Echo")).__name__ == "Echo"
    with pytest.raises(ValueError, match="unknown agent 'vanila'; did you mean 'vanilla'"):
        make_agent("vanila")
    with pytest.raises(ValueError, match="not an Agent subclass"):
        make_agent("personalization_env.types:Task")


def test_oracle_prompt_holds_true_preferences_and_vanilla_none():
    env = MultiSessionCollabEnv(n_users=2, tasks_per_dataset=5)
    obs, _ = env.reset(seed=0)
    oracle = make_agent("oracle", profiles=env.profiles)
    msgs = oracle.build_messages(obs)
    for p in env.profile.preferences:
        assert p.statement() in msgs[0].content
    vanilla = make_agent("vanilla")
    assert "preferences" not in vanilla.build_messages(obs)[0].content


def test_agents_never_see_oracle_info():
    seen = []

    class Spy(Agent):
        def _act(self, obs):
            return "I am not sure."

        def _observe(self, obs, reward, terminated, truncated, info):
            seen.append(info)

    env = MultiSessionCollabEnv(n_users=1, tasks_per_dataset=5, oracle_info=True)
    obs, _ = env.reset(seed=0)
    a = Spy()
    obs, r, te, tr, info = env.step(a.act(obs))
    assert "oracle" in info
    a.observe(obs, r, te, tr, info)
    assert "oracle" not in seen[0]


def test_oracle_needs_far_less_effort_than_vanilla(tmp_path):
    from benchmarks.run import RunConfig, run

    rows = run(RunConfig(n_users=15, sessions=2, out=str(tmp_path / "r"), progress=False))
    eff = {m: sum(r["user_effort"] for r in rows if r["method"] == m) / 30 for m in ("vanilla", "oracle")}
    assert eff["oracle"] < 0.5 * eff["vanilla"], eff
