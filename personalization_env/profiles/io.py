"""Reading and writing profile files (JSONL, one user per line) and resolving profile-set names.

Line format::

    {"user_id": "u1", "persona": "...", "traits": {}, "preferences": ["bullets", "concise@math+logic",
     {"type": "tldr", "condition": {"kind": "situation", "situation": "final_answer"}}]}

A preference is a library type id, optionally narrowed with ``@`` to task kinds and/or one situation,
as ``"tldr@math+logic"``, ``"tldr@final_answer"`` or ``"tldr@final_answer/math+logic"`` (a situation
restricted to task kinds; ``"x@code"`` is the task kind, ``"x@code/"`` the situation).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from personalization_env.naming import json_error
from personalization_env.preferences import get_type
from personalization_env.types import SITUATIONS, TASK_KINDS, Condition, Preference, Profile

#: shipped sets (package data) and generated families
PROFILE_SETS: tuple[str, ...] = ("msc", "complex")
_GENERATED = re.compile(r"^(msc|complex)-(\d+)(?:-u(\d+))?(?:-s(\d+))?$")


def parse_preference(spec: str | Mapping[str, Any]) -> Preference:
    """A :class:`Preference` from ``"type"``, ``"type@math+logic"``, ``"type@final_answer"`` or a dict."""
    if isinstance(spec, Mapping):
        if "type" not in spec:
            raise ValueError(f"preference object needs a 'type' key, got keys {sorted(spec)}")
        t = get_type(str(spec["type"]))
        cond = Condition.from_dict(spec["condition"]) if "condition" in spec else t.condition
        return Preference(t, cond)
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"preference must be a type id string or an object, got {spec!r}")
    tid, _, suffix = spec.partition("@")
    t = get_type(tid)
    if not suffix:
        return Preference(t, t.condition)
    if suffix == "always":
        return Preference(t, Condition())
    sit, slash, kinds_part = suffix.partition("/")
    if not slash:  # "math+logic" (task kinds) or "final_answer" (a situation; "code" alone is the task kind)
        sit, kinds_part = ("", suffix) if suffix in TASK_KINDS or "+" in suffix else (suffix, "")
    kinds = [k for k in kinds_part.split("+") if k]
    bad = [k for k in kinds if k not in TASK_KINDS]
    if bad or (sit and sit not in SITUATIONS) or (not sit and not kinds):
        raise ValueError(f"unknown condition {suffix!r} in preference {spec!r}; use task kinds {TASK_KINDS} joined "
                         f"by '+', a situation from {SITUATIONS}, or '<situation>/<kinds>'")
    if sit:
        return Preference(t, Condition(kind="situation", situation=sit, task_kinds=frozenset(kinds)))
    return Preference(t, Condition(kind="task_kinds", task_kinds=frozenset(kinds)))


def _pref_to_json(p: Preference) -> str | dict[str, Any]:
    if p.condition == p.type.condition:
        return p.type.id
    return p.id


def profile_to_dict(p: Profile) -> dict[str, Any]:
    return {"user_id": p.user_id, "persona": p.persona, "traits": dict(p.traits),
            "preferences": [_pref_to_json(x) for x in p.preferences]}


def profile_from_dict(d: Mapping[str, Any]) -> Profile:
    """Validate one profile object."""
    if not isinstance(d, Mapping):
        raise ValueError(f"a profile must be a JSON object, got {type(d).__name__}")
    missing = [k for k in ("user_id", "preferences") if k not in d]
    if missing:
        raise ValueError(f"profile is missing key(s) {missing}")
    prefs = d["preferences"]
    if not isinstance(prefs, list):
        raise ValueError(f"'preferences' must be a list, got {type(prefs).__name__}")
    profile = Profile(user_id=str(d["user_id"]), persona=str(d.get("persona", "")),
                      preferences=tuple(parse_preference(x) for x in prefs), traits=dict(d.get("traits", {})))
    for i, a in enumerate(profile.preferences):
        for b in profile.preferences[i + 1:]:
            if a.conflicts(b):
                raise ValueError(f"profile {profile.user_id!r}: preferences {a.id!r} and {b.id!r} conflict under "
                                 "overlapping conditions; narrow one with '@<task kinds>'")
    return profile


def read_profiles_jsonl(lines: Iterable[str], source: str) -> list[Profile]:
    """Parse JSONL profile lines; any error names ``source`` and the line number."""
    out: list[Profile] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            p = profile_from_dict(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{source}:{n}: malformed JSON ({json_error(e)}); fix or remove the line") from None
        except (ValueError, KeyError, TypeError) as e:
            msg = e.args[0] if e.args else str(e)
            raise ValueError(f"{source}:{n}: {msg}") from None
        if p.user_id in seen:
            raise ValueError(f"{source}:{n}: duplicate user_id {p.user_id!r}")
        seen.add(p.user_id)
        out.append(p)
    return out


@cache
def _shipped(name: str) -> tuple[Profile, ...]:
    ref = resources.files("personalization_env.profiles").joinpath(f"data/{name}.jsonl")
    with ref.open(encoding="utf-8") as f:
        return tuple(read_profiles_jsonl(f, f"{name}.jsonl"))


def load_profiles(spec: str | os.PathLike) -> list[Profile]:
    """Profiles from a set name or a file.

    Args:
        spec: ``"msc"`` (100 users x 3 preferences, MSC style) or ``"complex"`` (200 users x 43
            conditional preferences), shipped as package data; ``"complex-<k>"`` / ``"msc-<k>"``
            optionally ``-u<users>`` and ``-s<seed>`` (generated on the fly with ``k`` preferences per
            user, e.g. ``"complex-100-u50-s1"``); a ``.jsonl`` file in this package's format; or a
            ``.json`` file in the MultiSessionCollab format (e.g. its ``user_profiles.json``).
    """
    s = os.fspath(spec)
    if s in PROFILE_SETS:
        return list(_shipped(s))
    m = _GENERATED.match(s)
    if m:
        from personalization_env.profiles.generator import generate_profiles

        style, k, users, seed = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        return generate_profiles(int(users) if users else (100 if style == "msc" else 200), k, style=style,
                                 seed=int(seed) if seed else 0)
    path = Path(s)
    if not path.exists():
        hint = difflib.get_close_matches(s, PROFILE_SETS, n=1)
        extra = f"did you mean {hint[0]!r}? " if hint else ""
        raise ValueError(f"unknown profile set or missing file {s!r}; {extra}use one of {PROFILE_SETS}, "
                         "'complex-<k>', or a path to a .jsonl/.json file")
    if path.suffix == ".json":
        from personalization_env.preferences.msc import load_msc_profiles

        return load_msc_profiles(path)
    with path.open(encoding="utf-8") as f:
        return read_profiles_jsonl(f, str(path))


def dump_profiles(profiles: Iterable[Profile], path: str | os.PathLike) -> None:
    """Write profiles as JSONL (the format :func:`load_profiles` reads)."""
    with open(path, "w", encoding="utf-8") as f:
        for p in profiles:
            f.write(json.dumps(profile_to_dict(p), ensure_ascii=False) + "\n")
