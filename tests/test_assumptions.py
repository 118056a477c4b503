"""docs/assumptions.md lists every parameter of the world, with the code's default.

The parameters are enumerated from the code (dataclass fields, the default mappings, constructor
defaults, and the presets of personalization_env/worlds.py when it exists), so a parameter added
without a row, a row whose value drifted from the code, and a row naming nothing all fail here.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from pathlib import Path
from typing import Any, Callable, Mapping

import pytest

from benchmarks.sensitivity import Row, load_table

DOC = Path(__file__).resolve().parent.parent / "docs" / "assumptions.md"
_NO_DEFAULT = object()


def _numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _signature_defaults(fn: Callable[..., Any], *, numeric_only: bool) -> dict[str, Any]:
    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name in ("self", "seed") or p.default is inspect.Parameter.empty:
            continue
        if not numeric_only or _numeric(p.default):
            out[name] = p.default
    return out


def code_parameters() -> dict[str, Any]:
    """Every world parameter the code defines, by the table's name, with its default
    (``_NO_DEFAULT`` where the code's default is None and the effective value is decided elsewhere)."""
    from agents.contextual import ContextualAgent
    from agents.llm_agent import LLMAgent
    from agents.memory.embedders import HashingEmbedder
    from agents.memory.extractors import RuleExtractor
    from agents.memory.rerankers import LexicalReranker
    from agents.rag import RAGAgent
    from agents.rewards import RewardSource
    from personalization_env.env import MultiSessionCollabEnv
    from personalization_env.feedback.labels import DEFAULT_REWARDS
    from personalization_env.llm.recognize import PreferenceRecognizer
    from personalization_env.llm.render import DEFAULT_HABITS
    from personalization_env.llm.scripted import DEFAULT_SKILL, ScriptedConfig
    from personalization_env.profiles.generator import VARS_MIX, generate_profiles
    from personalization_env.users.rule import DEFAULT_TRAITS
    from policies.user_vector import UserVectorConfig

    out: dict[str, Any] = {}
    for cls in (ScriptedConfig, UserVectorConfig):
        inst = cls()
        out.update({f"{cls.__name__}.{f.name}": getattr(inst, f.name) for f in dataclasses.fields(cls)})
    for label, mapping in (("DEFAULT_SKILL", DEFAULT_SKILL), ("DEFAULT_HABITS", DEFAULT_HABITS),
                           ("DEFAULT_TRAITS", DEFAULT_TRAITS), ("DEFAULT_REWARDS", DEFAULT_REWARDS),
                           ("VARS_MIX", VARS_MIX)):
        out.update({f"{label}.{k}": v for k, v in mapping.items()})
    for cls in (ContextualAgent, LLMAgent, RAGAgent, RewardSource, PreferenceRecognizer, HashingEmbedder,
                RuleExtractor, LexicalReranker):
        out.update({f"{cls.__name__}.{k}": v for k, v in _signature_defaults(cls.__init__, numeric_only=True).items()})
    out.update({f"generate_profiles.{k}": v for k, v in _signature_defaults(generate_profiles, numeric_only=True).items()})
    env = _signature_defaults(MultiSessionCollabEnv.__init__, numeric_only=False)
    from personalization_env.worlds import DEFAULT_SETTINGS

    for k, v in DEFAULT_SETTINGS.items():  # None in the signature: the default world's setting applies
        if env.get(k, v) is None:
            env[k] = v
    out.update({f"MultiSessionCollabEnv.{k}": v for k, v in env.items() if _numeric(v) or isinstance(v, str)})
    for k, v in world_parameters(env).items():
        out.setdefault(k, v)
    return out


_WORLD_META = {"name", "description", "sources", "fitted", "agent", "user_traits"}


def world_parameters(env_defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters the world presets set (empty when personalization_env/worlds.py does not exist):
    each preset field is an env argument, each ``agent`` key a ScriptedConfig field (a ``skill`` key
    a DEFAULT_SKILL entry, or a generated dataset that ``default_skill`` covers), each ``user_traits``
    key a trait."""
    try:
        worlds = importlib.import_module("personalization_env.worlds")
    except ModuleNotFoundError:
        return {}
    from personalization_env.tasks.datasets import GENERATORS

    out: dict[str, Any] = {}
    presets = [w for w in vars(worlds).get("WORLDS", {}).values() if dataclasses.is_dataclass(w)]
    for w in presets:
        for f in dataclasses.fields(w):
            if f.name not in _WORLD_META:
                d = env_defaults.get(f.name, _NO_DEFAULT)
                out[f"MultiSessionCollabEnv.{f.name}"] = _NO_DEFAULT if d is None else d
        for k, v in dict(getattr(w, "agent", {})).items():
            out.setdefault(f"ScriptedConfig.{k}", _NO_DEFAULT)
            if k == "skill":
                for ds in v:
                    out.setdefault("ScriptedConfig.default_skill" if ds in GENERATORS else f"DEFAULT_SKILL.{ds}",
                                   _NO_DEFAULT)
        for k in dict(getattr(w, "user_traits", {})):
            out.setdefault(f"DEFAULT_TRAITS.{k}", _NO_DEFAULT)
    return out


@pytest.fixture(scope="module")
def table() -> dict[str, Row]:
    return {r.name: r for r in load_table(DOC)}


@pytest.fixture(scope="module")
def params() -> dict[str, Any]:
    return code_parameters()


def test_every_parameter_has_a_row(table: dict[str, Row], params: dict[str, Any]) -> None:
    missing = sorted(set(params) - set(table))
    assert not missing, f"parameters without a row in docs/assumptions.md: {missing}"


def test_every_row_names_a_parameter(table: dict[str, Row], params: dict[str, Any]) -> None:
    stale = sorted(set(table) - set(params))
    assert not stale, f"rows of docs/assumptions.md that name no parameter of the code: {stale}"


def _expected_cell(name: str, default: Any, table: dict[str, Row]) -> Any:
    """A mapping-valued field's row names the rows of its entries; those rows' values must rebuild it."""
    if isinstance(default, Mapping):
        ref = table[name].value
        assert isinstance(ref, str), f"{name}: a mapping default is written as the name of its rows, got {ref!r}"
        return {r.name.partition(".")[2]: r.value for r in table.values() if r.name.startswith(ref + ".")}
    return default


def test_row_values_are_the_code_defaults(table: dict[str, Row], params: dict[str, Any]) -> None:
    wrong = []
    for name, default in params.items():
        if name not in table or default is _NO_DEFAULT:
            continue
        doc = table[name].value
        code = _expected_cell(name, default, table)
        if isinstance(default, Mapping):
            if dict(default) != code:
                wrong.append(f"{name}: rows give {code}, code {dict(default)}")
        elif doc != default or type(doc) is not type(default):  # an int row is moved as an int
            wrong.append(f"{name}: table {doc!r}, code {default!r}")
    assert not wrong, "docs/assumptions.md disagrees with the code:\n" + "\n".join(wrong)


def test_every_row_has_a_source_and_methods(table: dict[str, Row]) -> None:
    bare = [n for n, r in table.items() if not isinstance(r.value, str) and (not r.source or not r.methods)]
    assert not bare, f"rows without a source or methods: {bare}"


def test_a_parameter_without_a_row_is_caught() -> None:
    """The enumeration sees a field added to ScriptedConfig (as another engineer would add one)."""
    from personalization_env.llm import scripted

    extended = dataclasses.make_dataclass("ScriptedConfig", [("brand_new_knob", float, 0.5)],
                                          bases=(scripted.ScriptedConfig,))
    original = scripted.ScriptedConfig
    scripted.ScriptedConfig = extended
    try:
        found = code_parameters()
    finally:
        scripted.ScriptedConfig = original
    assert "ScriptedConfig.brand_new_knob" in found
    assert "ScriptedConfig.brand_new_knob" not in {r.name for r in load_table(DOC)}
