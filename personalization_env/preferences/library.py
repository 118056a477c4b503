"""The preference library: package data ``data/catalogue.jsonl`` loaded into :class:`PreferenceType` objects.

Each catalogue line is one JSON object with the fields of :class:`~personalization_env.types.PreferenceType`
(``condition`` as ``"always"``, a situation name or ``{"kind": "task_kinds", "task_kinds": [...]}``;
``check`` as ``{"name": ..., "params": {...}}`` or null) plus an optional ``msc_text``: the verbatim
MultiSessionCollab preference text the type stands for.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import re
from importlib import resources
from typing import Any, Mapping

import numpy as np

from personalization_env.naming import json_error
from personalization_env.preferences.checkers import CHECKERS
from personalization_env.types import SITUATIONS, TASK_KINDS, CheckSpec, Condition, Preference, PreferenceType

logger = logging.getLogger(__name__)

#: MultiSessionCollab's six categories followed by the eight categories of the VARS 43-preference profiles.
CATEGORIES: tuple[str, ...] = (
    "directness", "politeness", "proactivity", "guidance", "analyticality_intuitiveness", "habitual_strategies",
    "response_format", "verbosity", "code_style", "math_style", "interaction_pattern", "domain_specific",
    "error_correction", "output_artifacts",
)
_FIELDS = {"id", "category", "condition", "action", "phrasings", "check", "conflict_group", "directive", "families",
           "msc_text"}
_REQUIRED = ("id", "category", "condition", "action", "phrasings")
_FAMILIES = ("msc", "vars")
_CATALOGUE = "catalogue.jsonl"


def _condition(raw: Any, where: str) -> Condition:
    if raw == "always" or raw is None:
        return Condition()
    if isinstance(raw, str):
        if raw not in SITUATIONS:
            close = difflib.get_close_matches(raw, (*SITUATIONS, "always"), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"use 'always' or one of {SITUATIONS}"
            raise ValueError(f"{where}: unknown condition {raw!r}; {hint}")
        return Condition(kind="situation", situation=raw)
    if isinstance(raw, dict) and raw.get("kind") == "task_kinds":
        kinds = raw.get("task_kinds") or []
        bad = [k for k in kinds if k not in TASK_KINDS]
        if bad or not kinds:
            raise ValueError(f"{where}: bad task_kinds {kinds!r}; use a non-empty list from {TASK_KINDS}")
        return Condition(kind="task_kinds", task_kinds=frozenset(kinds))
    if isinstance(raw, dict) and raw.get("kind") == "situation":
        return _condition(raw.get("situation"), where)
    raise ValueError(f"{where}: bad condition {raw!r}; use 'always', a situation name or "
                     "{'kind': 'task_kinds', 'task_kinds': [...]}")


def parse_line(obj: Mapping[str, Any], where: str) -> tuple[PreferenceType, str | None]:
    """Validate one catalogue object; returns the type and its MSC text (or None).

    Raises:
        ValueError: naming ``where`` (file:line), the bad field and how to fix it.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [f for f in _REQUIRED if f not in obj]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}; every line needs {list(_REQUIRED)}")
    extra = sorted(set(obj) - _FIELDS)
    if extra:
        raise ValueError(f"{where}: unknown field(s) {extra}; allowed: {sorted(_FIELDS)}")
    tid = obj["id"]
    if not isinstance(tid, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", tid):
        raise ValueError(f"{where}: id {tid!r} must be snake_case (letters, digits, underscores)")
    if obj["category"] not in CATEGORIES:
        close = difflib.get_close_matches(str(obj["category"]), CATEGORIES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"use one of {CATEGORIES}"
        raise ValueError(f"{where}: unknown category {obj['category']!r} for {tid!r}; {hint}")
    phr = obj["phrasings"]
    if not isinstance(phr, list) or len(phr) < 4 or not all(isinstance(p, str) and p.strip() for p in phr):
        raise ValueError(f"{where}: {tid!r} needs at least 4 non-empty phrasings, got {phr!r}")
    check = obj.get("check")
    spec = None
    if check is not None:
        name = check.get("name") if isinstance(check, dict) else None
        if name not in CHECKERS:
            close = difflib.get_close_matches(str(name), CHECKERS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "register it in preferences/checkers.py"
            raise ValueError(f"{where}: {tid!r} names unknown checker {name!r}; {hint}")
        params = check.get("params") or {}
        if not isinstance(params, dict):
            raise ValueError(f"{where}: {tid!r} checker params must be an object, got {params!r}")
        spec = CheckSpec(name=name, params=params)
    families = tuple(obj.get("families") or ())
    bad_fam = [f for f in families if f not in _FAMILIES]
    if bad_fam:
        raise ValueError(f"{where}: {tid!r} has unknown families {bad_fam}; use {list(_FAMILIES)}")
    directive = obj.get("directive") or {}
    if not isinstance(directive, dict):
        raise ValueError(f"{where}: {tid!r} directive must be an object, got {directive!r}")
    t = PreferenceType(id=tid, category=obj["category"], condition=_condition(obj["condition"], f"{where} ({tid})"),
                       action=str(obj["action"]), phrasings=tuple(phr), check=spec,
                       conflict_group=obj.get("conflict_group"), directive=directive, families=families)
    return t, obj.get("msc_text")


@functools.cache
def _load() -> tuple[dict[str, PreferenceType], dict[str, str]]:
    types: dict[str, PreferenceType] = {}
    msc: dict[str, str] = {}
    text = resources.files("personalization_env.preferences").joinpath("data", _CATALOGUE).read_text("utf-8")
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{_CATALOGUE}:{i}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: invalid JSON ({json_error(e)}); fix the line's syntax") from e
        t, msc_text = parse_line(obj, where)
        if t.id in types:
            raise ValueError(f"{where}: duplicate preference id {t.id!r}; ids must be unique")
        types[t.id] = t
        if msc_text:
            msc[normalize_text(msc_text)] = t.id
    logger.debug("loaded %d preference types", len(types))
    return types, msc


def normalize_text(text: str) -> str:
    """Whitespace- and case-normalised text (for matching published preference sentences)."""
    return " ".join(text.split()).lower()


def load_catalogue() -> dict[str, PreferenceType]:
    """All preference types by id (validated, cached; a copy of the mapping is returned)."""
    return dict(_load()[0])


def msc_texts() -> dict[str, str]:
    """Normalised MultiSessionCollab preference text -> library type id."""
    return dict(_load()[1])


def get_type(type_id: str) -> PreferenceType:
    """The library type ``type_id``.

    Raises:
        KeyError: unknown id, with the closest known id suggested.
    """
    types = _load()[0]
    try:
        return types[type_id]
    except KeyError:
        close = difflib.get_close_matches(type_id, types, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; see load_catalogue() for the known ids"
        raise KeyError(f"unknown preference id {type_id!r}{hint}") from None


_OPENERS = ("", "", "Hmm, ", "Quick note: ", "One thing: ", "Also, ", "Just so you know, ", "Again, ")
_CLOSERS = ("", "", " Thanks.", " That would help a lot.", " It really matters to me.")
_PERSONA_OPENERS = {"student": "As a student, ", "teacher": "As a teacher, ", "engineer": "As an engineer, ",
                    "developer": "As a developer, ", "researcher": "As a researcher, "}


def phrase(pref: Preference, rng: np.random.Generator, *, persona: str | None = None) -> str:
    """A natural restatement of ``pref`` a user would say when enforcing it.

    Picks one of the type's phrasings, adds the condition's words when the preference is conditional
    (filling a ``{cond}`` placeholder or prefixing them), and varies the opener and ending; a persona
    naming a role ("student", "developer" ...) sometimes flavours the opener.

    Args:
        pref: the preference to restate.
        rng: randomness source.
        persona: the user's persona sentence (optional).
    """
    t = pref.type
    text = t.phrasings[int(rng.integers(len(t.phrasings)))]
    cond = pref.condition.describe()
    if "{cond}" in text:
        fill = "always" if cond == "always" else cond
        text = text.replace("{cond}", fill)
        text = text[0].upper() + text[1:]
    elif cond != "always":
        text = f"{cond[0].upper()}{cond[1:]}: {text[0].lower()}{text[1:]}" if rng.random() < 0.5 else \
            f"{text.rstrip('.!')} {cond}."
    opener = _OPENERS[int(rng.integers(len(_OPENERS)))]
    if persona and rng.random() < 0.3:
        low = persona.lower()
        role = next((v for k, v in _PERSONA_OPENERS.items() if k in low), None)
        if role:
            opener = role
    if opener:
        text = opener + text[0].lower() + text[1:] if not text.startswith("I ") else opener + text
    closer = _CLOSERS[int(rng.integers(len(_CLOSERS)))]
    if closer and text.rstrip().endswith((".", "!")):
        text = text.rstrip() + closer
    return text
