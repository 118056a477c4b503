"""Named world presets: documented sets of world parameters calibrated to published settings.

A world fixes what the env and the embedded agent model would otherwise take from their defaults:
the profile set, the datasets, the turn limit, the rule user's traits and the scripted agent model's
parameters (:class:`~personalization_env.llm.scripted.ScriptedConfig`). ``msc run --world NAME`` and
``gym.make("MultiSessionCollab-v0", world=NAME)`` select one; arguments given explicitly still win.

- ``default``: the package defaults, unchanged (every override empty).
- ``msc-llama70b``: the MultiSessionCollab setting (real profiles and the five 20-problem datasets,
  10 user turns, Llama-3.3-70B agent; MultiSessionCollab's user was Llama-3.3-70B too, here it is
  the rule user with fitted traits). Fitted by ``python -m benchmarks.calibrate --world
  msc-llama70b`` to the published no-memory row only; the reflection row is predicted, not fitted.
- ``vars-llama8b``: the VARS setting (43-preference profiles; math-hard, math-500 and a code set;
  Llama-3.1-8B agent; the rule user with fitted traits stands in for VARS's 70B user). Fitted by ``python -m benchmarks.calibrate --world vars-llama8b`` to the
  published vanilla row only; the other five rows are predicted.

A World is read-only: its mappings (``user_traits``, ``agent`` with its nested ``skill``, ``sources``)
are read-only views, and :meth:`World.agent_config` and :meth:`World.with_params` hand out copies, so
no caller can change a preset for everyone.

Each preset lists, per parameter it sets, where the value comes from (``sources``): a published
figure, an assumption, or "fitted by benchmarks.calibrate". Paths in ``profiles`` may name
``{msc_data}``: the folder of the MultiSessionCollab files (``data_dir``, else ``$MSC_DATA_DIR``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Mapping

from personalization_env.naming import did_you_mean


#: the env settings of a world that does not set them (the ``default`` world): the one place they live
DEFAULT_SETTINGS: Mapping[str, Any] = MappingProxyType({
    "profiles": "msc", "datasets": "gen_math,gen_logic,gen_mc", "max_turns": 10, "tasks_per_dataset": 100})


@dataclass(frozen=True)
class World:
    """One world preset.

    Args:
        name: the preset's name.
        description: one line on the setting it stands for.
        profiles: profile set or file (None: the caller's default); may contain ``{msc_data}``.
        datasets: comma-separated datasets (None: the caller's default).
        max_turns: user turns per session (None: the caller's default).
        tasks_per_dataset: tasks drawn per dataset (None: the env's default).
        user_traits: overrides of the rule user's traits
            (:data:`personalization_env.users.rule.DEFAULT_TRAITS`).
        agent: overrides of the scripted agent model's :class:`ScriptedConfig` fields.
        sources: per parameter set here, its source.
        fitted: the parameters ``benchmarks.calibrate`` fits (to the no-memory row only).
    """

    name: str
    description: str
    profiles: str | None = None
    datasets: str | None = None
    max_turns: int | None = None
    tasks_per_dataset: int | None = None
    user_traits: Mapping[str, Any] = field(default_factory=dict)
    agent: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    fitted: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("user_traits", "agent", "sources"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "fitted", tuple(self.fitted))

    def __reduce__(self) -> tuple[Any, ...]:
        # read-only views do not pickle: rebuild from plain copies (an env holding its world pickles)
        return (World, tuple(_thawed(getattr(self, f.name)) for f in fields(self)))

    def values(self) -> dict[str, Any]:
        """Every value the preset sets (plain copies), as recorded with a run."""
        return {"profiles": self.profiles, "datasets": self.datasets, "max_turns": self.max_turns,
                "tasks_per_dataset": self.tasks_per_dataset, "user_traits": _thawed(self.user_traits),
                "agent": _thawed(self.agent)}

    def fingerprint(self) -> str:
        """A short hash of :meth:`values`: changes whenever a value the preset sets changes."""
        blob = json.dumps(self.values(), sort_keys=True, default=repr).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def setting(self, name: str, data_dir: str | os.PathLike[str] | None = None) -> Any:
        """The env setting ``name`` (``profiles``, ``datasets``, ``max_turns``, ``tasks_per_dataset``) in
        this world: the preset's value, else the package default (:data:`DEFAULT_SETTINGS`)."""
        value = self.profiles_spec(data_dir) if name == "profiles" else getattr(self, name)
        return DEFAULT_SETTINGS[name] if value is None else value

    def profiles_spec(self, data_dir: str | os.PathLike[str] | None = None) -> str | None:
        """``profiles`` with ``{msc_data}`` filled in (``data_dir``, else ``$MSC_DATA_DIR``)."""
        if self.profiles is None or "{msc_data}" not in self.profiles:
            return self.profiles
        where = data_dir or os.environ.get("MSC_DATA_DIR")
        if not where:
            raise ValueError(f"world {self.name!r} reads the MultiSessionCollab profiles: pass --data-dir <folder> "
                             "(or set MSC_DATA_DIR) to the folder holding user_profiles.json")
        return self.profiles.format(msc_data=os.fspath(where))

    def agent_config(self, **overrides: Any) -> Any:
        """The scripted agent model's :class:`ScriptedConfig` in this world (``overrides`` win)."""
        from personalization_env.llm.scripted import ScriptedConfig

        return ScriptedConfig(**{**_thawed(self.agent), **overrides})

    def with_params(self, agent: Mapping[str, Any] | None = None,
                    user_traits: Mapping[str, Any] | None = None) -> "World":
        """A copy with some agent-model or user-trait values replaced (used by the calibration search)."""
        from dataclasses import replace

        return replace(self, agent={**_thawed(self.agent), **(agent or {})},
                       user_traits={**_thawed(self.user_traits), **(user_traits or {})})


def _frozen(value: Any) -> Any:
    """``value`` with every mapping in it turned into a read-only view of a copy."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    return value


def _thawed(value: Any) -> Any:
    """``value`` with every mapping in it turned into a fresh dict (what a World hands out)."""
    if isinstance(value, Mapping):
        return {k: _thawed(v) for k, v in value.items()}
    return value


#: Llama-3.3-70B-Instruct answer accuracy per MSC dataset (the scripted model's DEFAULT_SKILL: MATH
#: 77.0 % per the model card, MMLU 86.0 %, lower for MATH level 5 and LogiQA, MedQA about 75 %).
_MSC_DATASETS = "math_500,math_hard,logiqa,mmlu,medqa"

# --- fitted values ---------------------------------------------------------------------------------
# _MSC_FIT: written by `python -m benchmarks.calibrate --world msc-llama70b --data-dir ../shared/data/msc`;
# _VARS_FIT: by `python -m benchmarks.calibrate --world vars-llama8b --data-dir ../shared/data/msc`.
# Rerunning a command reproduces its values (the search is deterministic); `--check` re-evaluates them.
_MSC_FIT: Mapping[str, float] = {'defer_prob': 0.85, 'recheck_prob': 1.0, 'verify_prob': 0.0, 'max_restate': 2,
                                 'notice_prob': 1.0}
_VARS_FIT: Mapping[str, float] = {'notice_prob': 0.15, 'defer_prob': 0.25, 'recheck_prob': 0.0, 'verify_prob': 0.75,
                                  'max_restate': 3}


def _split(fit: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """Fitted values split into (agent-model fields, user traits)."""
    user = {"recheck_prob", "verify_prob", "max_restate", "notice_prob"}
    return ({k: v for k, v in fit.items() if k not in user}, {k: v for k, v in fit.items() if k in user})


_msc_agent, _msc_user = _split(_MSC_FIT)
_vars_agent, _vars_user = _split(_VARS_FIT)

#: IFEval (Meta model cards): Llama-3.1-8B-Instruct 80.4, Llama-3.3-70B-Instruct 92.1. The 8B model's
#: ceiling is the 70B curve's ceiling scaled by their ratio (the 70B curve is the package default).
IFEVAL_8B, IFEVAL_70B = 80.4, 92.1
_P_MAX_8B = round(0.98 * IFEVAL_8B / IFEVAL_70B, 3)
_P_MIN_8B = round(0.5 * IFEVAL_8B / IFEVAL_70B, 3)

WORLDS: dict[str, World] = {
    "default": World(name="default", description="the package defaults (embedded world as documented)"),
    "msc-llama70b": World(
        name="msc-llama70b",
        description="MultiSessionCollab: real profiles (100 users x 3), 5 datasets x 20 problems, <= 10 user "
                    "turns, Llama-3.3-70B agent",
        profiles="{msc_data}/user_profiles.json",
        datasets=_MSC_DATASETS,
        max_turns=10,
        tasks_per_dataset=20,
        user_traits={"patience": None, **_msc_user},
        agent=dict(_msc_agent),
        sources={
            "profiles": "MultiSessionCollab user_profiles.json (100 users x 3 preferences)",
            "datasets": "MultiSessionCollab: math_500, math_hard, logiqa, mmlu, medqa, 20 problems each",
            "max_turns": "MultiSessionCollab: at most 10 user turns",
            "skill": "Llama-3.3-70B-Instruct model card (MATH 77.0, MMLU 86.0); others documented assumptions",
            "p_max, p_min, n_half": "IFScale (Jaroslawicz et al. 2025) frontier-model curve (package default)",
            "reflect_drop, reflect_blur": "assumption (package default 0.15 each), set before any comparison, "
                                          "never fitted",
            "extract_miss, judge_error": "assumption (package default 0.10), not used by vanilla or reflection's fit",
            "misapply_prob": "assumption (package default 0.15), not fitted",
            **{k: "fitted by benchmarks.calibrate (no-memory row only)" for k in _MSC_FIT},
        },
        fitted=tuple(_MSC_FIT),
    ),
    "vars-llama8b": World(
        name="vars-llama8b",
        description="VARS: 43-preference profiles, math-hard + math-500 + a code set (gen_code stands in for "
                    "bigcodebench), Llama-3.1-8B agent, 70B user",
        profiles="complex",
        datasets="math_hard,math_500,gen_code",
        max_turns=10,
        tasks_per_dataset=20,
        user_traits={"patience": None, **_vars_user},
        agent={"p_max": _P_MAX_8B, "p_min": _P_MIN_8B,
               "skill": {"math_500": 0.519, "math_hard": round(0.50 * 51.9 / 77.0, 3), "gen_code": 0.40},
               **_vars_agent},
        sources={
            "profiles": "VARS: about 43 preferences per user in 8 categories (the shipped 'complex' set)",
            "datasets": "VARS: math-hard, math-500, bigcodebench; bigcodebench is not available offline, the "
                        "embedded code generator gen_code stands in (same task kind: code, checked exactly)",
            "max_turns": "assumption: 10 user turns, as in MultiSessionCollab (VARS builds on it)",
            "p_max, p_min": "IFEval, Meta model cards: Llama-3.1-8B-Instruct 80.4 vs Llama-3.3-70B-Instruct 92.1; "
                            "the 70B IFScale curve scaled by their ratio",
            "n_half": "IFScale frontier curve (package default); assumption for an 8B model",
            "skill.math_500": "Llama-3.1-8B-Instruct model card: MATH (0-shot CoT) 51.9",
            "skill.math_hard": "assumption: the 70B math_hard skill scaled by MATH 51.9 / 77.0",
            "skill.gen_code": "assumption: about 40 % (BigCodeBench-Complete level of 8B instruct models)",
            **{k: "fitted by benchmarks.calibrate (vanilla row only)" for k in _VARS_FIT},
        },
        fitted=tuple(_VARS_FIT),
    ),
}


def get_world(name: str | World) -> World:
    """The preset called ``name`` (a World is returned as is)."""
    if isinstance(name, World):
        return name
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}{did_you_mean(str(name), WORLDS)} known: {sorted(WORLDS)}")
    return WORLDS[name]
