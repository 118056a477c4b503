"""Seeded generator of user profiles.

Two styles, after the two published profile families:

- ``msc``: MultiSessionCollab style: each user holds ``n_prefs`` (default 3) preferences from distinct
  MSC categories, drawn from the library types of the ``msc`` family, unconditional as published.
- ``complex``: VARS style: ``n_prefs`` (default 43) preferences spread over the 8 VARS categories in
  the published proportions (response format 4, verbosity 5, code style 8, math style 6, interaction
  pattern 6, domain-specific 6, error correction 4, output artifacts 4 per 43), many narrowed to task
  kinds. No two preferences of a profile conflict under overlapping conditions, and no type appears
  twice under overlapping conditions; when a density exceeds the library, types recur under disjoint
  task-kind conditions.

Only checkable types are used by default, so every preference can be enforced by the rule simulator.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Sequence

import numpy as np

from personalization_env.preferences import load_catalogue
from personalization_env.types import Condition, Preference, PreferenceType, Profile

#: The VARS category mix (counts per 43 preferences).
VARS_MIX: dict[str, int] = {
    "response_format": 4, "verbosity": 5, "code_style": 8, "math_style": 6,
    "interaction_pattern": 6, "domain_specific": 6, "error_correction": 4, "output_artifacts": 4,
}
MSC_CATEGORIES: tuple[str, ...] = ("directness", "politeness", "proactivity", "guidance",
                                   "analyticality_intuitiveness", "habitual_strategies")
_NARROW_KINDS = ("math", "logic", "multiple_choice", "code")


@cache
def personas() -> tuple[str, ...]:
    with resources.files("personalization_env.profiles").joinpath("data/personas.json").open(encoding="utf-8") as f:
        return tuple(json.load(f)["personas"])


def _compatible(p: Preference, chosen: Sequence[Preference]) -> bool:
    for q in chosen:
        if p.conflicts(q):
            return False
        if q.type.id == p.type.id and p.condition.overlaps(q.condition):
            return False
    return True


def _narrowings(t: PreferenceType, rng: np.random.Generator, p_conditional: float,
                kinds: Sequence[str] = _NARROW_KINDS) -> list[Condition]:
    """Conditions to try for type ``t``, most preferred first."""
    if t.condition.kind == "task_kinds":
        return [t.condition]
    kinds = list(rng.permutation(list(kinds)))
    kind = t.condition.kind if t.condition.kind == "situation" else "task_kinds"
    singles = [Condition(kind=kind, situation=t.condition.situation, task_kinds=frozenset([k])) for k in kinds]
    pair = Condition(kind=kind, situation=t.condition.situation, task_kinds=frozenset(kinds[:2]))
    if rng.random() < p_conditional:
        return [pair, *singles]
    return [t.condition, pair, *singles]


def _quotas(weights: dict[str, int], k: int) -> dict[str, int]:
    total = sum(weights.values())
    raw = {c: k * w / total for c, w in weights.items()}
    q = {c: int(v) for c, v in raw.items()}
    for c in sorted(raw, key=lambda c: raw[c] - q[c], reverse=True)[: k - sum(q.values())]:
        q[c] += 1
    return q


def generate_profiles(n_users: int, n_prefs: int | None = None, *, style: str = "complex", seed: int = 0,
                      checkable_only: bool = True, p_conditional: float = 0.5,
                      id_prefix: str | None = None) -> list[Profile]:
    """Generate ``n_users`` profiles.

    Args:
        n_users: number of users (>= 1).
        n_prefs: preferences per user (3 to 200; default 3 for ``msc``, 43 for ``complex``).
        style: ``"msc"`` or ``"complex"`` (see module docstring).
        seed: generator seed; the same arguments always give the same profiles.
        checkable_only: use only types with a programmatic checker.
        p_conditional: in ``complex`` style, chance that an unconditional type is narrowed to task kinds.
        id_prefix: user id prefix (default: the style).
    """
    if style not in ("msc", "complex"):
        raise ValueError(f"style must be 'msc' or 'complex', got {style!r}")
    if n_prefs is None:
        n_prefs = 3 if style == "msc" else 43
    if not isinstance(n_prefs, int) or not 3 <= n_prefs <= 200:
        raise ValueError(f"n_prefs (preference density) must be an int from 3 to 200, got {n_prefs!r}")
    if not isinstance(n_users, int) or n_users < 1:
        raise ValueError(f"n_users must be a positive int, got {n_users!r}")
    cat = load_catalogue()
    types = [t for t in cat.values() if t.check is not None or not checkable_only]
    if style == "msc":
        types = [t for t in types if "msc" in t.families and t.category in MSC_CATEGORIES]
        weights = {c: 1 for c in MSC_CATEGORIES}
    else:
        types = [t for t in types if t.category in VARS_MIX]
        weights = dict(VARS_MIX)
    by_cat: dict[str, list[PreferenceType]] = {c: [t for t in types if t.category == c] for c in weights}
    rng = np.random.default_rng([seed, 0 if style == "msc" else 1, n_prefs])
    if style == "complex" and n_prefs > len(types):
        # dense profiles: narrow every type so that types can recur under disjoint task kinds
        p_conditional = 1.0
    spare = [t for t in cat.values() if (t.check is not None or not checkable_only) and t not in types]
    # last resort for the densest profiles: types without a checker (never enforced by the rule user)
    uncheckable = [t for t in cat.values() if t.check is None and t not in types and t not in spare]
    kinds = _NARROW_KINDS + (("writing",) if n_prefs > len(types) else ())
    pool = personas()
    prefix = id_prefix or style
    out = []
    for u in range(n_users):
        chosen: list[Preference] = []
        quotas = _quotas(weights, n_prefs) if style == "complex" else {c: 0 for c in weights}
        if style == "msc":  # distinct categories first, as published
            for c in list(rng.permutation(list(weights)))[: min(n_prefs, len(weights))]:
                quotas[str(c)] = 1

        def take(cands: list[PreferenceType], want: int, singles: bool = False) -> None:
            for i in rng.permutation(len(cands)):
                if want <= 0:
                    return
                t = cands[int(i)]
                conds = [t.condition] if style == "msc" else _narrowings(t, rng, p_conditional, kinds)
                if singles:
                    conds = [c for c in conds if len(c.task_kinds) == 1] or conds
                for cond in conds:
                    p = Preference(t, cond)
                    if _compatible(p, chosen):
                        chosen.append(p)
                        want -= 1
                        break

        for c, q in quotas.items():
            take(by_cat[c], q)
        # fill: any category, repeated types under disjoint task-kind conditions
        for pool_ in (types, spare, uncheckable):  # beyond the family's library: other categories' types
            for _ in range(8):
                if len(chosen) >= n_prefs:
                    break
                take(pool_, n_prefs - len(chosen), singles=True)
        if len(chosen) < n_prefs:
            raise ValueError(f"cannot build {n_prefs} non-conflicting {style} preferences from the library "
                             f"(reached {len(chosen)}); lower n_prefs")
        persona = pool[int(rng.integers(len(pool)))]
        out.append(Profile(user_id=f"{prefix}-{u:04d}", persona=persona, preferences=tuple(chosen)))
    return out


def main() -> None:  # pragma: no cover - maintenance script
    """Regenerate the shipped sets: ``python -m personalization_env.profiles.generator``."""
    from pathlib import Path

    from personalization_env.profiles.io import dump_profiles

    here = Path(__file__).parent / "data"
    dump_profiles(generate_profiles(100, 3, style="msc", seed=0), here / "msc.jsonl")
    dump_profiles(generate_profiles(200, 43, style="complex", seed=0), here / "complex.jsonl")


if __name__ == "__main__":  # pragma: no cover
    main()
