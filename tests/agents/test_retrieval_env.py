"""MultiSessionCollabRetrieval-v0 (agents/retrieval_env.py) and the PPO plug-in (agents/ppo_retrieval.py)."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("faiss")
sb3 = pytest.importorskip("stable_baselines3")

from agents import make_agent  # noqa: E402
from agents.check import check_agent  # noqa: E402
from agents.retrieval_env import (  # noqa: E402
    CARD_FEATURES,
    ENV_ID,
    QUERY_FEATURES,
    RetrievalEnv,
    register_retrieval_env,
)
from personalization_env.env import MultiSessionCollabEnv  # noqa: E402
from personalization_env.llm import ChatBackend, make_backend  # noqa: E402

K, J = 64, 3
F = len(CARD_FEATURES)


@pytest.fixture(autouse=True)
def one_thread():
    """FAISS and torch on one thread (OpenMP threads fighting over 2 cores make a search 30x slower)."""
    import torch
    from threadpoolctl import threadpool_limits

    import faiss  # loaded before the limit, so that the limit reaches its OpenMP

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        assert faiss.omp_get_max_threads() == 1
        yield
    torch.set_num_threads(before)


def rag_action(k: int = K, j: int = J) -> np.ndarray:
    a = np.zeros(k, dtype=np.int8)
    a[:j] = 1
    return a


def rollout(env: RetrievalEnv, seed: int, sessions: int, action_seed: int = 1) -> list:
    """Observations, rewards, replies and chosen notes of ``sessions`` episodes with seeded random actions."""
    rng = np.random.default_rng(action_seed)
    out = []
    obs, info = env.reset(seed=seed)
    for s in range(sessions):
        if s:
            obs, info = env.reset()
        out.append((info["user_id"], info["session"], {k: v.copy() for k, v in obs.items()}))
        done = False
        while not done:
            obs, r, te, tr, info = env.step(rng.integers(0, 2, K).astype(np.int8))
            out.append((r, info["reply"], info["chosen"], {k: v.copy() for k, v in obs.items()}))
            done = te or tr
    return out


def same(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            if isinstance(u, dict):
                if u.keys() != v.keys() or not all(np.array_equal(u[k], v[k]) for k in u):
                    return False
            elif u != v:
                return False
    return True


# ---- the Gymnasium contract ----------------------------------------------------------------------
def test_sb3_check_env_passes_without_warnings():
    from stable_baselines3.common.env_checker import check_env

    env = RetrievalEnv(n_users=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SB3's checker reports its doubts as warnings
        check_env(env, warn=True)


def test_registered_id_makes_the_env_and_gymnasium_checker_passes():
    from gymnasium.utils.env_checker import check_env as gym_check_env

    register_retrieval_env()
    register_retrieval_env()  # idempotent
    assert gym.spec(ENV_ID).entry_point == "agents.retrieval_env:RetrievalEnv"
    env = gym.make(ENV_ID, n_users=3)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs["query"].shape == (len(QUERY_FEATURES),) and obs["cards"].shape == (K * F,)
    gym_check_env(env.unwrapped, skip_render_check=True)


def test_same_seed_same_trajectory_other_seed_another():
    a = rollout(RetrievalEnv(n_users=3), seed=5, sessions=4)
    b = rollout(RetrievalEnv(n_users=3), seed=5, sessions=4)
    c = rollout(RetrievalEnv(n_users=3), seed=6, sessions=4)
    assert same(a, b)
    assert not same(a, c)
    assert sum(1 for x in a if len(x) == 4 and x[2]) > 0  # some steps did put cards into the prompt


def test_pickle_round_trip_mid_session_continues_identically():
    env = RetrievalEnv(n_users=2, rotate_users=False)
    env.reset(seed=0)
    for _ in range(2):  # a session to fill the memory, then into the next one
        done = False
        while not done:
            _, _, te, tr, _ = env.step(rag_action())
            done = te or tr
        env.reset()
    env.step(rag_action())
    clone = pickle.loads(pickle.dumps(env))
    acts = np.random.default_rng(3).integers(0, 2, (12, K)).astype(np.int8)
    for env_ in (env, clone):
        env_.trace = []
        for a in acts:
            obs, r, te, tr, info = env_.step(a)
            env_.trace.append((r, info["reply"], obs["cards"].tobytes()))
            if te or tr:
                break
    assert env.trace == clone.trace and len(env.trace) >= 1


def test_reset_rotates_users_and_memory_persists_per_user_until_a_seeded_reset():
    env = RetrievalEnv(n_users=3)
    seen = []
    obs, info = env.reset(seed=1)  # user 1 mod 3
    for _ in range(5):
        seen.append((info["user_id"], info["session"], int(obs["mask"].sum())))
        done = False
        while not done:
            obs, _, te, tr, info = env.step(rag_action())
            done = te or tr
        obs, info = env.reset()
    ids = [p.user_id for p in env.profiles]
    assert [(u, s) for u, s, _ in seen] == [(ids[1], 0), (ids[2], 0), (ids[0], 0), (ids[1], 1), (ids[2], 1)]
    assert all(n == 0 for _, s, n in seen if s == 0)  # nothing known about a user at their first message
    assert seen[3][2] > 0  # user 1's cards from session 0 are candidates at the start of session 1
    obs, info = env.reset(seed=1)
    assert (info["user_id"], info["session"], int(obs["mask"].sum())) == (ids[1], 0, 0)  # fresh lifetime


# ---- the observation is rag's real decision --------------------------------------------------------
def test_rag_choice_reproduces_rag_and_the_mask_counts_its_candidates():
    """With the first J slots the env is rag: same replies and rewards as the rag agent in the text env;
    the mask counts the candidates rag retrieved (all the conditional cards it holds, K being larger)."""
    env = RetrievalEnv(n_users=2, rotate_users=False)
    text_env = MultiSessionCollabEnv(profiles="complex", n_users=2)
    rag = make_agent("rag", seed=0)
    counted = 0
    for s in range(4):
        obs, info = env.reset(seed=0 if s == 0 else None, options={"user_index": 1})
        t_obs, _ = text_env.reset(seed=0 if s == 0 else None, options={"user_index": 1})
        assert obs["query"][QUERY_FEATURES.index("session")] == pytest.approx(s / 50)
        done = False
        while not done:
            reply = rag.act(t_obs)
            uid = t_obs["user_id"]
            conditional = sum(1 for c in rag.store(uid).cards if not c.is_global)
            n = int(obs["mask"].sum())
            assert n == min(K, conditional) == rag.last.get(uid, {}).get("candidates", 0)
            assert np.all(obs["mask"][n:] == 0) and np.all(obs["mask"][:n] == 1)
            cards = obs["cards"].reshape(K, F)
            assert not cards[n:].any()  # padded slots are zero
            if n:
                rerank = cards[:n, CARD_FEATURES.index("rerank")]
                assert rerank[0] == pytest.approx(1.0) and np.all(np.diff(rerank) <= 1e-6)  # slots in reranker order
                counted += 1
            obs, r, te, tr, info = env.step(rag_action())
            t_obs, t_r, t_te, t_tr, t_info = text_env.step(reply)
            rag.observe(t_obs, t_r, t_te, t_tr, t_info)
            assert info["reply"] == reply and r == t_r and (te, tr) == (t_te, t_tr)
            assert info["chosen"] == [rag.store(uid).cards[i].note for i in rag.last.get(uid, {}).get("chosen", [])]
            done = te or tr
    assert counted >= 5


# ---- the action decides the prompt ---------------------------------------------------------------
class RecordingBackend(ChatBackend):
    """The scripted agent model, keeping the system prompt of every reply request."""

    name = "recording"

    def __init__(self) -> None:
        super().__init__()
        self.inner = make_backend("scripted")
        self.systems: list[str] = []

    def _generate(self, requests):
        self.systems += [r.messages[0].content for r in requests if r.purpose == "reply"]
        return self.inner.generate(requests)


def applicable_slots(env: RetrievalEnv, obs: dict) -> list[int]:
    """Slots whose card reads (to the scripted model) as a preference of this user that applies to the
    session's task kind: computed from the profile, which the env never shows the policy."""
    from personalization_env.llm.scripted import ScriptedBackend

    recognizer = ScriptedBackend().recognizer
    world = env.world
    prefs = {p.type.id: p for p in world.profile.preferences}
    kind = world.task.kind
    store = env.agent.store(world.profile.user_id)
    out = []
    for slot in range(int(obs["mask"].sum())):
        r = recognizer.recognize(store.cards[env.candidate_ids[slot]].note)
        p = prefs.get(r.type_id) if r is not None else None
        if p is not None and p.condition.kind == "task_kinds" and kind in p.condition.task_kinds:
            out.append(slot)
    return out


def test_action_decides_the_prompt_no_cards_vs_the_applicable_ones():
    env = RetrievalEnv(n_users=1, rotate_users=False, agent_model=RecordingBackend())
    obs, _ = env.reset(seed=0)
    for _ in range(3):  # three sessions of rag to fill the memory
        done = False
        while not done:
            obs, _, te, tr, _ = env.step(rag_action())
            done = te or tr
        obs, _ = env.reset()
    good = applicable_slots(env, obs)[:J]
    assert len(good) >= 2, "the user's memory should hold cards for this task by now"
    store = env.agent.store(env.world.profile.user_id)
    good_notes = [store.cards[env.candidate_ids[s]].note for s in good]
    other_notes = [store.cards[i].note for i in env.candidate_ids if store.cards[i].note not in good_notes]

    none_env, good_env = pickle.loads(pickle.dumps(env)), pickle.loads(pickle.dumps(env))
    action = np.zeros(K, dtype=np.int8)
    action[good] = 1
    action[int(obs["mask"].sum()):] = 1  # bits on padded slots are ignored
    _, _, _, _, info_none = none_env.step(np.zeros(K, dtype=np.int8))
    _, _, _, _, info_good = good_env.step(action)
    assert info_none["chosen"] == [] and info_good["chosen"] == good_notes
    sys_none, sys_good = none_env.agent.backend.systems[-1], good_env.agent.backend.systems[-1]
    assert all(n in sys_good and n not in sys_none for n in good_notes)
    assert not any(n in sys_good for n in other_notes)
    assert info_none["reply"] != info_good["reply"]


def test_at_most_J_cards_taken_best_by_reranker_first():
    env = RetrievalEnv(n_users=1, rotate_users=False, J=2)
    obs, _ = env.reset(seed=0)
    while int(obs["mask"].sum()) < 5:
        obs, _, te, tr, _ = env.step(np.ones(K, dtype=np.int8))
        if te or tr:
            obs, _ = env.reset()
    store = env.agent.store(env.world.profile.user_id)
    notes = [store.cards[i].note for i in env.candidate_ids]
    action = np.zeros(K, dtype=np.int8)
    action[[4, 1, 3]] = 1
    _, _, _, _, info = env.step(action)
    assert info["chosen"] == [notes[1], notes[3]]


def test_bad_arguments_are_refused_with_the_value():
    with pytest.raises(ValueError, match="J must be a positive int, got 0"):
        RetrievalEnv(J=0)
    with pytest.raises(ValueError, match=r"agent_kwargs may not set \['K'\]"):
        RetrievalEnv(agent_kwargs={"K": 5})
    env = RetrievalEnv(n_users=1)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="64 entries"):
        env.step(np.ones(3, dtype=np.int8))


# ---- PPO and the plug-in -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_policy(tmp_path_factory):
    """A PPO policy after a brief training (256 steps) on users the evaluation does not use."""
    import torch
    from stable_baselines3 import PPO

    from personalization_env.profiles import load_profiles

    torch.set_num_threads(1)
    env = RetrievalEnv(profiles=load_profiles("complex")[-10:])
    model = PPO("MultiInputPolicy", env, n_steps=128, batch_size=64, n_epochs=2, seed=0, device="cpu")
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(256)
    assert model.num_timesteps >= 256
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))  # it did update
    path = tmp_path_factory.mktemp("ppo") / "policy"
    model.save(path)
    return path


def env_effort_with_policy(path, users: int, sessions: int) -> dict[tuple[str, int], tuple[float, float]]:
    """(user effort, turns) per (user, session) of the policy acting in the retrieval env (fresh lifetime
    per user, seed 0: the sessions a run with --seed 0 gives that user)."""
    from stable_baselines3 import PPO

    model = PPO.load(path, device="cpu")
    env = RetrievalEnv(n_users=users, rotate_users=False)
    out = {}
    for u in range(users):
        for s in range(sessions):
            obs, info = env.reset(seed=0 if s == 0 else None, options={"user_index": u})
            done = False
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, _, te, tr, info = env.step(action)
                done = te or tr
            out[(info["user_id"], s)] = (info["metrics"]["user_effort"], info["metrics"]["turns"])
    return out


def test_trained_policy_runs_as_a_plugin_in_run_and_acts_as_in_the_env(trained_policy, tmp_path):
    from benchmarks.run import RunConfig, run

    rows = run(RunConfig(methods=["agents.ppo_retrieval:PPORetrievalAgent"], profiles="complex", n_users=2,
                         sessions=3, agent_args={"ppo_policy": str(trained_policy)}, out=str(tmp_path / "run"),
                         progress=False, tensorboard=False))
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    expected = env_effort_with_policy(trained_policy, users=2, sessions=3)
    got = {(r["user_id"], r["session"]): (r["user_effort"], r["turns"]) for r in rows}
    assert got == expected  # the plug-in sees the env's observation and takes the env's action


def test_plugin_passes_check_agent_and_refuses_a_policy_of_another_shape(trained_policy):
    report = check_agent("agents.ppo_retrieval:PPORetrievalAgent", ppo_policy=str(trained_policy), users=2, sessions=2)
    assert report["sessions"] == 4 and report["resume_identical"]
    agent = make_agent("agents.ppo_retrieval:PPORetrievalAgent", ppo_policy=str(trained_policy) + ".zip", K=8)
    with pytest.raises(ValueError, match="K=8"):
        agent.model()
    with pytest.raises(FileNotFoundError, match="no SB3 policy"):
        make_agent("agents.ppo_retrieval:PPORetrievalAgent", ppo_policy=str(trained_policy) + "-missing")
    with pytest.raises(ValueError, match="needs ppo_policy=PATH"):
        make_agent("agents.ppo_retrieval:PPORetrievalAgent")
