from __future__ import annotations

import pickle
import subprocess
import sys
import time

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import personalization_env  # noqa: F401  (registers the id)
from agents import make_agent
from personalization_env.env import MultiSessionCollabEnv
from personalization_env.profiles import parse_preference
from personalization_env.types import Profile


def small_env(**kw):
    kw.setdefault("n_users", 3)
    kw.setdefault("tasks_per_dataset", 20)
    return MultiSessionCollabEnv(**kw)


def rollout(env, seed, sessions=3):
    agent = make_agent("vanilla", seed=seed)
    out = []
    env.reset(seed=seed)
    for s in range(sessions):
        obs, info = env.reset(options={"user_index": s % len(env.profiles)})
        out.append(obs["message"])
        while True:
            reply = agent.act(obs)
            obs, r, te, tr, info = env.step(reply)
            agent.observe(obs, r, te, tr, info)
            out.append((reply, obs["message"], r, te, tr))
            if te or tr:
                break
    return out


def test_check_env_passes():
    env = gym.make("MultiSessionCollab-v0", n_users=2, tasks_per_dataset=10)
    check_env(env.unwrapped, skip_render_check=True)


def test_same_seed_same_trajectory_and_different_seed_differs():
    a = rollout(small_env(), seed=7)
    b = rollout(small_env(), seed=7)
    c = rollout(small_env(), seed=8)
    assert a == b
    assert a != c


def test_observation_contains_real_chat_text():
    env = small_env()
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert "\n" in obs["message"] or " " in obs["message"]
    obs, *_ = env.step("Here is an answer, with punctuation: é, ü — and a newline.\nDone!")
    assert env.observation_space.contains(obs)


def test_env_pickles_mid_session_and_continues_identically():
    env = small_env()
    obs, _ = env.reset(seed=3)
    clone = pickle.loads(pickle.dumps(env))
    r1 = env.step("The answer is 4.")
    r2 = clone.step("The answer is 4.")
    assert r1[0] == r2[0] and r1[1] == r2[1]


def test_sessions_advance_and_reset_seed_starts_new_lifetime():
    env = small_env()
    obs, info = env.reset(seed=1)
    assert obs["session"] == 0
    obs, info = env.reset()
    assert obs["session"] == 1
    obs, info = env.reset(seed=1)
    assert obs["session"] == 0
    uid = env.profiles[2].user_id
    obs, info = env.reset(options={"user_id": uid})
    assert obs["user_id"] == uid and obs["session"] == 0


def test_final_step_reports_metrics_and_reward_terms():
    env = small_env()
    obs, _ = env.reset(seed=0)
    info = {}
    for _ in range(env.max_turns):
        obs, r, te, tr, info = env.step("I am not sure.")
        assert set(info["reward_terms"]) == {"feedback", "task_success"}
        assert r == pytest.approx(sum(info["reward_terms"].values()))
        if te or tr:
            break
    assert te or tr
    m = info["metrics"]
    assert set(m) >= {"task_success", "user_effort", "turns", "timeout", "compliance"}
    assert m["turns"] <= env.max_turns
    assert "oracle" not in info  # the ground truth only when asked for
    bullets = Profile("u", "A student who likes tidy notes", (parse_preference("msc_bullets"),), {})
    env = MultiSessionCollabEnv(profiles=[bullets], oracle_info=True)
    env.reset(seed=0)
    _, _, _, _, info = env.step("Let me think about it.")  # prose: the bullet-points wish is violated
    assert info["oracle"]["label"] == "neg_constraint_restate" and info["oracle"]["draft_correct"] is False
    _, _, _, _, info = env.step("- Let me think about it.\n- Which step have you tried so far?")
    assert info["oracle"]["label"] == "pos_progress"  # compliant, no answer, checks in with a question


def test_user_tokens_count_every_user_message_at_four_characters_a_token():
    env = small_env()
    env.reset(seed=0)
    te = tr = False
    while not (te or tr):
        _, _, te, tr, info = env.step("I am not sure.")
    user_chars = [len(text) for role, text in env.transcript() if role == "user"]
    assert len(user_chars) == info["metrics"]["turns"]
    assert info["metrics"]["user_tokens"] == sum(-(-n // 4) for n in user_chars)  # ceil(chars / 4) each
    assert info["metrics"]["timeout"] in (0.0, 1.0)


def test_env_world_kwarg_picks_a_preset_and_unknown_names_fail():
    env = gym.make("MultiSessionCollab-v0", world="vars-llama8b", datasets="gen_code", n_users=1).unwrapped
    assert env.world.name == "vars-llama8b" and env.profiles[0].user_id.startswith("complex")
    with pytest.raises(ValueError, match="unknown world 'msc'"):
        MultiSessionCollabEnv(world="msc")


@pytest.mark.parametrize("action,exc,needle", [
    (123, TypeError, "int"),
    ("", ValueError, "empty"),
    ("x" * 20, ValueError, "max_reply_chars=10"),
])
def test_bad_actions_raise_one_clear_error(action, exc, needle):
    env = small_env(max_reply_chars=10)
    env.reset(seed=0)
    with pytest.raises(exc, match=needle):
        env.step(action)


def test_step_before_reset_and_after_end_raise():
    env = small_env()
    with pytest.raises(RuntimeError, match="before reset"):
        env.step("hello")
    env.reset(seed=0)
    te = tr = False
    while not (te or tr):
        _, _, te, tr, _ = env.step("I am not sure.")
    with pytest.raises(RuntimeError, match="after the session ended"):
        env.step("hello")


def test_unknown_user_and_options_are_clear():
    env = small_env()
    with pytest.raises(ValueError, match="unknown user_id 'msc-00001'.*did you mean"):
        env.reset(options={"user_id": "msc-00001"})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"users": 1})


def test_render_is_a_transcript():
    env = small_env(render_mode="ansi")
    env.reset(seed=0)
    env.step("Let me think. The answer is 3.")
    text = env.render()
    assert "USER:" in text and "ASSISTANT: Let me think." in text


def test_import_does_not_import_torch():
    code = "import sys, personalization_env, gymnasium as gym; gym.make('MultiSessionCollab-v0', n_users=1); " \
           "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_make_vec_batches_users_and_autoresets():
    envs = gym.make_vec("MultiSessionCollab-v0", num_envs=3, n_users=3, tasks_per_dataset=10)
    obs, info = envs.reset(seed=0)
    assert obs["user_id"] == tuple(f"msc-{i:04d}" for i in range(3))
    done_seen = False
    for _ in range(25):
        obs, r, te, tr, info = envs.step(["I am not sure."] * 3)
        assert r.shape == (3,)
        done_seen |= bool((te | tr).any())
    assert done_seen
    assert (obs["session"] >= 1).any()


def test_vector_env_sends_its_sub_envs_model_calls_together():
    """With a model-backed simulator and judge, a reset and a step of N sub-envs take about one model
    latency each, not N (the requests of all sub-envs are in flight at once)."""
    pytest.importorskip("openai")
    from benchmarks.scripted_server import Faults, ScriptedServer

    latency, n = 0.3, 6
    srv = ScriptedServer(faults=Faults(latency=latency)).start()
    try:
        spec = f"openai:scripted@{srv.base_url}"
        envs = gym.make_vec("MultiSessionCollab-v0", num_envs=n, n_users=n, user_simulator=f"hybrid:{spec}",
                            feedback=f"llm:{spec}", tasks_per_dataset=10)
        t0 = time.perf_counter()
        obs, _ = envs.reset(seed=0)
        t_reset = time.perf_counter() - t0
        t0 = time.perf_counter()
        envs.step(["Let me think step by step. The answer is 4."] * n)
        t_step = time.perf_counter() - t0  # the simulator's N rewrites, then the judge's N labels
        assert srv.counts["chat_ok_user"] == 2 * n and srv.counts["chat_ok_judge"] == n
        assert t_reset < 2.5 * latency, t_reset  # one by one would take n * latency = 1.8 s
        assert t_step < 4.5 * latency, t_step  # one by one: 2 * n * latency = 3.6 s
        envs.close()
    finally:
        srv.stop()


@pytest.mark.parametrize("mode", ["vector_entry_point", "sync", "async"])
def test_vector_envs_of_every_mode_step_on_real_text_with_distinct_users(mode):
    envs = gym.make_vec("MultiSessionCollab-v0", num_envs=3, vectorization_mode=mode, n_users=5, profiles="complex",
                        datasets="gen_math,gen_mc,gen_code", tasks_per_dataset=10)
    obs, _ = envs.reset(seed=1)
    assert tuple(obs["user_id"]) == ("complex-0001", "complex-0002", "complex-0003")  # user (seed + i) mod n
    assert all(" " in m and "?" in m or "." in m for m in obs["message"])  # real text, not Gymnasium's charset
    obs, r, te, tr, _ = envs.step(["Here is the answer × 42, ünïcode and a\nnew line."] * 3)
    assert r.shape == (3,) and all(isinstance(m, str) and m for m in obs["message"])
    if mode == "vector_entry_point":
        with pytest.raises(TypeError, match="one reply per sub-env"):
            envs.step("ab")
    envs.close()


def test_more_sub_envs_than_users_is_refused_and_a_seeded_single_env_picks_its_user():
    with pytest.raises(ValueError, match="num_envs=4 is more than the 3 users"):
        gym.make_vec("MultiSessionCollab-v0", num_envs=4, n_users=3)
    env = MultiSessionCollabEnv(n_users=5)
    assert env.reset(seed=7)[0]["user_id"] == "msc-0002"
    assert env.reset(seed=7, options={"user_id": "msc-0004"})[0]["user_id"] == "msc-0004"


def test_run_vector_drives_any_agent_on_a_vector_env():
    from agents import run_vector

    envs = gym.make_vec("MultiSessionCollab-v0", num_envs=3, n_users=3, tasks_per_dataset=10)
    records = run_vector(make_agent("all_memory"), envs, sessions=2, seed=0)
    assert sorted((r["user_id"], r["session"]) for r in records) == [(f"msc-{u:04d}", s) for u in range(3)
                                                                     for s in range(2)]
    # the same sessions as one env run user by user with the same agent code
    env = MultiSessionCollabEnv(n_users=3, tasks_per_dataset=10)
    single = {}
    for u in range(3):
        agent = make_agent("all_memory")
        for s in range(2):
            obs, _ = env.reset(seed=u if s == 0 else None)
            while True:
                obs, r, te, tr, info = env.step(agent.act(obs))
                agent.observe(obs, r, te, tr, info)
                if te or tr:
                    single[(info["user_id"], s)] = info["metrics"]["user_effort"]
                    break
    assert {(r["user_id"], r["session"]): r["user_effort"] for r in records} == single


def test_lifetime_wrapper_makes_a_user_s_sessions_one_episode():
    from personalization_env.wrappers import LifetimeEpisode

    def replies():
        while True:
            yield "Let me think step by step."
            yield "The answer is 4."

    env = LifetimeEpisode(MultiSessionCollabEnv(n_users=2, tasks_per_dataset=10), sessions=3)
    obs, info = env.reset(seed=1)
    ends, steps, gen = [], 0, replies()
    while True:
        obs, r, te, tr, info = env.step(next(gen))
        steps += 1
        if "session_end" in info:
            ends.append(info["session_end"])
            assert obs["user_id"] == "msc-0001"  # the same user throughout
        if te or tr:
            break
    assert te and not tr and [e["index"] for e in ends] == [0, 1, 2]
    # the same three sessions, stepped on the bare env
    bare, turns, gen = MultiSessionCollabEnv(n_users=2, tasks_per_dataset=10), 0, replies()
    bare.reset(seed=1)
    for s in range(3):
        if s:
            bare.reset()
        while True:
            _, _, te, tr, info = bare.step(next(gen))
            turns += 1
            if te or tr:
                assert info["metrics"] == ends[s]["metrics"]
                break
    assert turns == steps
    with pytest.raises(ValueError, match="sessions must be a positive int"):
        LifetimeEpisode(MultiSessionCollabEnv(n_users=1), sessions=0)


@pytest.mark.parametrize("spec,traits_of", [
    ("rule", lambda sim: sim.traits),
    ("hybrid:scripted", lambda sim: sim.rule.traits),
])
def test_world_user_traits_reach_every_simulator_that_has_traits(spec, traits_of):
    from personalization_env.worlds import World

    world = World(name="t", description="test world", user_traits={"verify_prob": 0.0, "notice_prob": 0.5})
    env = MultiSessionCollabEnv(world=world, user_simulator=spec, datasets="gen_math", n_users=1)
    traits = traits_of(env.simulator)
    assert traits["verify_prob"] == 0.0 and traits["notice_prob"] == 0.5


def test_world_user_traits_skip_a_simulator_without_traits():
    from personalization_env.users.llm import LLMUserSimulator
    from personalization_env.worlds import World

    world = World(name="t", description="test world", user_traits={"verify_prob": 0.0})
    env = MultiSessionCollabEnv(world=world, user_simulator="llm:scripted", datasets="gen_math", n_users=1)
    assert isinstance(env.simulator, LLMUserSimulator)
