from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import gymnasium as gym
import pytest

import personalization_env  # noqa: F401 - registers the env
from benchmarks.identity import difference
from benchmarks.run import RunConfig, env_kwargs_of
from personalization_env.llm.scripted import ScriptedConfig
from personalization_env.users.rule import DEFAULT_TRAITS
from personalization_env.worlds import WORLDS, get_world

MSC_DIR = Path(__file__).resolve().parents[1].parent / "shared/data/msc"


def test_unknown_world_is_one_line_listing_the_names():
    with pytest.raises(ValueError) as e:
        get_world("msc-llama")
    msg = str(e.value)
    assert "\n" not in msg and all(name in msg for name in WORLDS)
    with pytest.raises(ValueError, match="msc-llama70b"):
        gym.make("MultiSessionCollab-v0", world="nope")
    with pytest.raises(ValueError, match="vars-llama8b"):
        RunConfig(world="nope")


def test_default_world_overrides_nothing():
    w = get_world("default")
    assert w.agent == {} and w.user_traits == {} and w.profiles is None and w.datasets is None
    assert w.agent_config() == ScriptedConfig()


@pytest.mark.parametrize("name", [n for n in WORLDS if n != "default"])
def test_every_preset_value_is_a_known_parameter_with_a_source(name):
    w = get_world(name)
    assert set(w.agent) <= {f.name for f in fields(ScriptedConfig)}
    assert set(w.user_traits) <= set(DEFAULT_TRAITS)
    w.agent_config()  # valid values
    sourced = " ".join(w.sources)
    for k in (*w.agent, *w.fitted):
        assert k in sourced, f"{name}: {k} has no source"
    for k in w.fitted:  # a fitted value lives in the preset, where the env and msc run read it
        assert k in w.agent or k in w.user_traits


def test_env_takes_the_worlds_settings_and_explicit_arguments_win():
    env = gym.make("MultiSessionCollab-v0", world="vars-llama8b", datasets="gen_math", n_users=2).unwrapped
    w = get_world("vars-llama8b")
    assert env.datasets == ["gen_math"] and env.max_turns == w.max_turns
    assert env.profiles[0].user_id.startswith("complex")
    assert all(env.simulator.traits[k] == v for k, v in w.user_traits.items())
    assert len(env.tasks) == w.tasks_per_dataset
    env.reset(seed=0)
    default = gym.make("MultiSessionCollab-v0", n_users=2).unwrapped
    assert default.datasets == ["gen_math", "gen_logic", "gen_mc"] and default.max_turns == 10
    assert default.simulator.traits == dict(DEFAULT_TRAITS)


@pytest.mark.skipif(not MSC_DIR.exists(), reason="MultiSessionCollab files not present")
def test_msc_world_reads_the_real_profiles_and_datasets():
    env = gym.make("MultiSessionCollab-v0", world="msc-llama70b", data_dir=str(MSC_DIR)).unwrapped
    assert len(env.profiles) == 100 and all(len(p.preferences) == 3 for p in env.profiles)
    assert sorted(env.datasets) == sorted(["math_500", "math_hard", "logiqa", "mmlu", "medqa"])
    assert len(env.tasks) == 100


def test_msc_world_without_its_data_names_the_fix(monkeypatch):
    monkeypatch.delenv("MSC_DATA_DIR", raising=False)
    with pytest.raises(ValueError, match="--data-dir"):
        RunConfig(world="msc-llama70b")


def test_run_config_fills_from_the_world_and_the_world_is_part_of_the_identity():
    cfg = RunConfig(world="vars-llama8b")
    assert cfg.profiles == "complex" and cfg.datasets == get_world("vars-llama8b").datasets
    kw = env_kwargs_of(cfg)
    assert kw["world"] == "vars-llama8b"
    assert RunConfig().profiles == "msc" and RunConfig().max_turns == 10
    old = {"config": {"world": "default", "seed": 0}}
    assert difference(old, {"config": {"world": "vars-llama8b", "seed": 0}}).startswith("it was made with world=")
    assert difference({"config": {"seed": 0}}, {"config": {"world": "default", "seed": 0}}) is None  # older runs


def test_the_run_gives_the_agents_the_worlds_scripted_model():
    from benchmarks.run import _backend

    cfg = RunConfig(world="vars-llama8b")
    assert _backend("scripted", cfg).config == get_world("vars-llama8b").agent_config()
    assert _backend("scripted", RunConfig()).config == ScriptedConfig()


def test_calibration_searches_only_unsourced_parameters_never_the_memory_methods():
    from benchmarks.calibrate import GRIDS, PUBLISHED

    from benchmarks.calibrate import MEMORY_ONLY

    memory_only = {"reflect_drop", "reflect_blur", "extract_miss"}
    assert set(MEMORY_ONLY) == memory_only
    for name, grid in GRIDS.items():
        w = get_world(name)
        assert set(grid) == set(w.fitted)  # the preset says what is fitted, and that is all that is searched
        assert not memory_only & set(grid)
        assert all("fitted by benchmarks.calibrate" in w.sources[k] for k in grid)
        assert "vanilla" in PUBLISHED[name]  # the row it is fitted to


def test_kendall_tau_against_hand_counts():
    from benchmarks.calibrate import kendall_tau

    assert kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx((5 - 1) / 6)  # one discordant pair of six


@pytest.mark.skipif(not MSC_DIR.exists(), reason="MultiSessionCollab files not present")
def test_calibrate_check_prints_published_beside_simulated_and_says_what_missed(monkeypatch, capsys):
    from benchmarks import calibrate

    small = {**calibrate.STAGES["msc-llama70b"], "users": 4, "sessions": 1}
    monkeypatch.setitem(calibrate.STAGES, "msc-llama70b", small)
    assert calibrate.main(["--world", "msc-llama70b", "--check", "--data-dir", str(MSC_DIR)]) == 0
    out = capsys.readouterr().out
    assert "41.78" in out and "46.38" in out  # the published rows
    assert "fit (" in out and "prediction reflection:" in out and "never searched" in out


@pytest.mark.parametrize("name", list(WORLDS))
def test_a_preset_cannot_be_changed_through_what_it_hands_out(name):
    w = get_world(name)
    before = w.values()
    for mapping in (w.agent, w.user_traits, w.sources):
        with pytest.raises(TypeError):
            mapping["p_max"] = 0.1  # read-only
    if "skill" in w.agent:
        with pytest.raises(TypeError):
            w.agent["skill"]["math_500"] = 0.0
    cfg = w.agent_config()
    if isinstance(cfg.skill, dict):
        cfg.skill["math_500"] = 0.0  # the config's own copy
    changed = w.with_params({"p_max": 0.5}, {"notice_prob": 0.2})  # a copy, not the preset
    assert changed.agent["p_max"] == 0.5 and changed.user_traits["notice_prob"] == 0.2
    assert get_world(name).values() == before and w.agent_config() == ScriptedConfig(**before["agent"])
    import copy
    import pickle

    assert pickle.loads(pickle.dumps(w)) == w and copy.deepcopy(w) == w  # an env holding its world pickles


def test_the_run_identity_records_the_worlds_values_and_refuses_changed_ones(monkeypatch):
    import dataclasses

    from benchmarks.identity import run_identity
    from personalization_env import worlds

    cfg = dataclasses.asdict(RunConfig(world="vars-llama8b"))
    old = run_identity(cfg, [], [], {})
    assert old["world_values"] == get_world("vars-llama8b").values()
    assert difference(old, run_identity(cfg, [], [], {})) is None
    refit = get_world("vars-llama8b").with_params(user_traits={"notice_prob": 0.9})
    monkeypatch.setitem(worlds.WORLDS, "vars-llama8b", refit)  # the preset's fitted value changed
    diff = difference(old, run_identity(cfg, [], [], {}))
    assert diff is not None and "notice_prob" in diff and "vars-llama8b" in diff
    unrecorded = {k: v for k, v in old.items() if k != "world_values"}  # a run from before the field
    assert "without the values" in difference(unrecorded, run_identity(cfg, [], [], {}))
    default = dataclasses.asdict(RunConfig())
    older_default = {k: v for k, v in run_identity(default, [], [], {}).items() if k != "world_values"}
    assert difference(older_default, run_identity(default, [], [], {})) is None
