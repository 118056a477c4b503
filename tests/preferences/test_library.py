from __future__ import annotations

import numpy as np
import pytest

from personalization_env.types import groups_conflict

from personalization_env.preferences import CATEGORIES, get_type, load_catalogue, phrase
from personalization_env.preferences.library import parse_line
from personalization_env.types import Condition, Preference

VARS_MIN = {"response_format": 6, "verbosity": 7, "code_style": 10, "math_style": 8, "interaction_pattern": 8,
            "domain_specific": 8, "error_correction": 6, "output_artifacts": 6}
MSC_CATS = ("directness", "politeness", "proactivity", "guidance", "analyticality_intuitiveness", "habitual_strategies")


def test_catalogue_size_and_coverage() -> None:
    cat = load_catalogue()
    assert len(cat) >= 70
    counts = {c: sum(t.category == c for t in cat.values()) for c in CATEGORIES}
    for c, n in VARS_MIN.items():
        assert counts[c] >= n, (c, counts[c])
    for c in MSC_CATS:
        assert counts[c] >= 2
    assert sum(t.check is not None for t in cat.values()) / len(cat) >= 0.8


def test_types_are_well_formed() -> None:
    for t in load_catalogue().values():
        assert len(t.phrasings) >= 4 and len(set(t.phrasings)) == len(t.phrasings)
        assert t.families and set(t.families) <= {"msc", "vars"}
        if t.check is not None:
            assert t.directive, f"{t.id} has a checker but no directive"


def test_conflict_groups_pair_up() -> None:
    groups: dict[str, list[str]] = {}
    for t in load_catalogue().values():
        if t.conflict_group:
            groups.setdefault(t.conflict_group.partition(":")[0], []).append(t.id)
    assert all(len(v) >= 2 for v in groups.values()), groups
    # every group has at least one contradicting pair
    cat = load_catalogue()
    for ids in groups.values():
        assert any(groups_conflict(cat[a].conflict_group, cat[b].conflict_group) for a in ids for b in ids if a != b)
    assert groups_conflict(get_type("msc_bullets").conflict_group, get_type("prose_only").conflict_group)
    assert groups_conflict(get_type("concise").conflict_group, get_type("detailed").conflict_group)
    # same pole: compatible
    assert not groups_conflict(get_type("concise").conflict_group, get_type("max_5_sentences").conflict_group)
    assert not groups_conflict(get_type("msc_bullets").conflict_group, get_type("msc_numbered_steps").conflict_group)


def test_get_type_suggests() -> None:
    with pytest.raises(KeyError, match="did you mean 'msc_bullets'"):
        get_type("msc_bulets")


@pytest.mark.parametrize("obj, msg", [
    ({"id": "x", "category": "verbosity", "condition": "always", "action": "A.", "phrasings": ["a", "b", "c"]},
     "at least 4 non-empty phrasings"),
    ({"id": "x", "category": "verbosty", "condition": "always", "action": "A.", "phrasings": list("abcd")},
     "did you mean 'verbosity'"),
    ({"id": "x", "category": "verbosity", "condition": "final_answr", "action": "A.", "phrasings": list("abcd")},
     "did you mean 'final_answer'"),
    ({"id": "x", "category": "verbosity", "condition": "always", "action": "A.", "phrasings": list("abcd"),
      "check": {"name": "has_lst"}}, "did you mean 'has_list'"),
    ({"id": "x", "category": "verbosity", "condition": {"kind": "task_kinds", "task_kinds": ["maths"]},
      "action": "A.", "phrasings": list("abcd")}, "bad task_kinds"),
])
def test_parse_line_errors_name_the_line(obj: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg) as e:
        parse_line(obj, "catalogue.jsonl:7")
    assert "catalogue.jsonl:7" in str(e.value)


def test_phrase_mentions_condition_and_varies() -> None:
    rng = np.random.default_rng(0)
    t = get_type("msc_bullets")
    narrowed = Preference(t, Condition(kind="task_kinds", task_kinds=frozenset({"math"})))
    texts = {phrase(narrowed, rng) for _ in range(30)}
    assert len(texts) >= 5
    assert all("math problems" in x for x in texts)
    plain = {phrase(Preference(t, t.condition), rng, persona="A student of art") for _ in range(30)}
    assert all("{cond}" not in x and "always," not in x.lower()[:8] for x in plain)
    cond_t = get_type("ec_acknowledge")
    assert all("mistake" in phrase(Preference(cond_t, cond_t.condition), rng) for _ in range(10))
