from __future__ import annotations

import copy

import pytest

from agents import make_agent
from agents.check import check_agent
from agents.registry import METHODS
from personalization_env.env import MultiSessionCollabEnv
from personalization_env.profiles import parse_preference
from personalization_env.types import Profile

MEMORY = [m for m in METHODS if m != "vanilla"]


def play(agent, env, user_ids, sessions, *, seed=0, replies=None):
    for k in range(sessions):
        for j, uid in enumerate(user_ids):
            obs, _ = env.reset(seed=seed if (k == 0 and j == 0) else None, options={"user_id": uid})
            while True:
                reply = agent.act(obs)
                if replies is not None:
                    replies.append(reply)
                obs, r, te, tr, info = env.step(reply)
                agent.observe(obs, r, te, tr, info)
                if te or tr:
                    break
    return replies


@pytest.mark.parametrize("method", MEMORY)
def test_per_user_isolation_canary(method):
    canary = "Always sign off with the word ZEBRAFISH."
    profiles = [Profile("alice", "A canary keeper", (parse_preference("msc_bullets"),)),
                Profile("bob", "A second user", (parse_preference("msc_tldr"),))]
    env = MultiSessionCollabEnv(profiles=profiles, tasks_per_dataset=10)
    agent = make_agent(method, seed=0)
    obs, _ = env.reset(seed=0, options={"user_id": "alice"})
    agent.act({**obs, "message": obs["message"] + "\n" + canary})
    obs, r, te, tr, info = env.step("Noted.")
    agent.observe(obs, r, te, tr, info)
    agent.end_session("alice", {"session": 0})
    play(agent, env, ["alice", "bob"], 2)
    bob_obs, _ = env.reset(options={"user_id": "bob"})
    system = agent.build_messages(bob_obs)[0].content if hasattr(agent, "build_messages") else ""
    assert "ZEBRAFISH" not in system
    assert "ZEBRAFISH" not in repr(agent.state_dict().get("cards", {}).get("bob", ""))


@pytest.mark.parametrize("method", METHODS)
def test_save_load_continue_is_identical(method):
    users = ["msc-0000", "msc-0001"]
    env_a = MultiSessionCollabEnv(n_users=2, tasks_per_dataset=20)
    a = make_agent(method, seed=1)
    play(a, env_a, users, 2)
    env_b = copy.deepcopy(env_a)
    b = make_agent(method, seed=1)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    ra = play(a, env_a, users, 2, seed=None, replies=[])
    rb = play(b, env_b, users, 2, seed=None, replies=[])
    assert ra == rb and len(ra) > 4


@pytest.mark.parametrize("method", METHODS)
def test_methods_ignore_oracle_info(method):
    """Handed an info with the ground truth (an env made with oracle_info=True) or without it, every
    method replies the same."""
    def run(oracle_info):
        env = MultiSessionCollabEnv(n_users=2, tasks_per_dataset=20, oracle_info=oracle_info)
        return play(make_agent(method, seed=2), env, ["msc-0000", "msc-0001"], 2, replies=[])

    assert run(True) == run(False)


@pytest.mark.parametrize("method", METHODS)
def test_builtin_methods_pass_check_agent(method):
    report = check_agent(method, users=2, sessions=2)
    assert report["sessions"] == 4 and report["resume_identical"]


def test_memory_methods_remember_across_sessions():
    env = MultiSessionCollabEnv(n_users=5, tasks_per_dataset=20)
    uids = [p.user_id for p in env.profiles]
    effort = {}
    for m in ("vanilla", "all_memory"):
        agent = make_agent(m, seed=0)
        play(agent, env, uids, 3)
        total = 0.0
        for uid in uids:  # sessions 3-4
            for _ in range(2):
                obs, _ = env.reset(options={"user_id": uid})
                while True:
                    obs, r, te, tr, info = env.step(agent.act(obs))
                    agent.observe(obs, r, te, tr, info)
                    if te or tr:
                        total += info["metrics"]["user_effort"]
                        break
        effort[m] = total
    assert effort["all_memory"] < 0.6 * effort["vanilla"], effort


def test_rag_vector_logs_change_rate_and_keyword_modes():
    from agents.rewards import keyword_reward

    assert keyword_reward("I know the answer now", 0.5, match="substring") == -1.0  # "no" inside "know"
    assert keyword_reward("I know the answer now", 0.5, match="word") == 0.0
    assert keyword_reward("Could you use bullet points please?", 0.5, match="substring") == 0.0
    assert keyword_reward("Could you use bullet points please?", 0.5, match="word") == -1.0
    assert keyword_reward("Thanks, great!", 0.5) == 1.0 and keyword_reward("Thanks, great!", 0.1) == 0.25
    env = MultiSessionCollabEnv(profiles="complex", n_users=2, tasks_per_dataset=20)
    agent = make_agent("rag_vector", seed=0)
    play(agent, env, [p.user_id for p in env.profiles], 3)
    st = agent.session_stats(env.profiles[0].user_id)
    assert st["turns"] >= 1 and "changed" in st and st["z_long_norm"] > 0
    paper = make_agent("rag_vector", preset="paper")
    assert paper.J == 5 and paper.reward_source.match == "substring" and not paper.rerank_always


def test_query_transformation_finds_task_kind_cards_the_problem_text_misses():
    from agents.memory.cards import Card

    plain, qt = make_agent("rag", query_transform=False), make_agent("rag")
    assert qt.query_transform and not make_agent("rag_vector", preset="paper").query_transform
    problem = "Compute 17 * 23 - 4 and give the result."
    cards = [Card("for logic puzzles", "end with a conclusion line"), Card("for coding questions", "add type hints"),
             Card("for multiple-choice questions", "explain the options"), Card("for math problems", "label each step")]
    scores = {}
    for name, agent in (("plain", plain), ("qt", qt)):
        emb = agent.embedder.encode([c.note for c in cards])
        scores[name] = agent.base_scores(problem, cards, emb, agent.embedder.encode_one(problem))
    assert scores["plain"].max() == 0  # the problem text shares no word with any card
    assert int(scores["qt"].argmax()) == 3 and scores["qt"][3] > scores["qt"][:3].max()  # the task kind does


@pytest.mark.parametrize("method", [*METHODS, "oracle"])
def test_fork_and_commit_from_one_snapshot(method):
    """The GRPO pattern: snapshot the user's lifetime (env) and the agent's memory, roll the next
    session out twice from it; with the same replies the rollouts are identical, and committing one
    (restoring the state after it) continues exactly as if only that one had happened."""
    env = MultiSessionCollabEnv(n_users=2, tasks_per_dataset=20)
    kw = {"profiles": env.profiles} if method == "oracle" else {}
    agent = make_agent(method, seed=3, **kw)
    play(agent, env, ["msc-0000"], 2)
    snap = (env.snapshot(), agent.state_dict())

    def rollout(env, agent):
        replies = play(agent, env, ["msc-0000"], 1, seed=None, replies=[])
        return replies, (env.snapshot(), agent.state_dict())

    first, after_first = rollout(env, agent)
    play(agent, env, ["msc-0000"], 1, seed=None)  # the live env and agent move on: the snapshot must not
    env2, agent2 = MultiSessionCollabEnv(n_users=2, tasks_per_dataset=20), make_agent(method, seed=3, **kw)
    env2.restore(snap[0])
    agent2.load_state_dict(snap[1])
    second, _ = rollout(env2, agent2)
    assert second == first
    # commit the first rollout: what follows equals continuing right after it
    env3, agent3 = MultiSessionCollabEnv(n_users=2, tasks_per_dataset=20), make_agent(method, seed=3, **kw)
    env3.restore(after_first[0])
    agent3.load_state_dict(after_first[1])
    assert play(agent3, env3, ["msc-0000"], 1, seed=None, replies=[]) == \
        play(agent2, env2, ["msc-0000"], 1, seed=None, replies=[])
