from __future__ import annotations

import json

import pytest

from personalization_env.preferences import load_catalogue
from personalization_env.profiles import dump_profiles, generate_profiles, load_profiles, parse_preference
from personalization_env.profiles.generator import MSC_CATEGORIES, VARS_MIX


def assert_no_conflicts(profile):
    prefs = profile.preferences
    for i, a in enumerate(prefs):
        for b in prefs[i + 1:]:
            assert not a.conflicts(b), (profile.user_id, a.id, b.id)
            assert not (a.type.id == b.type.id and a.condition.overlaps(b.condition)), (a.id, b.id)


def test_shipped_complex_set():
    ps = load_profiles("complex")
    assert len(ps) == 200
    assert all(len(p.preferences) == 43 for p in ps)
    conditional = sum(p.condition.kind != "always" for u in ps for p in u.preferences)
    assert conditional / (200 * 43) > 0.3
    for p in ps:
        assert_no_conflicts(p)
    cats = {c for p in ps for c in (x.category for x in p.preferences)}
    assert cats == set(VARS_MIX)


def test_shipped_msc_set():
    ps = load_profiles("msc")
    assert len(ps) == 100
    for p in ps:
        assert len(p.preferences) == 3
        assert len({x.category for x in p.preferences}) == 3
        assert {x.category for x in p.preferences} <= set(MSC_CATEGORIES)


def test_shipped_sets_match_the_generator():
    assert load_profiles("complex")[:5] == generate_profiles(200, 43, style="complex", seed=0)[:5]
    assert load_profiles("msc") == generate_profiles(100, 3, style="msc", seed=0)


@pytest.mark.parametrize("k", [3, 10, 43, 100, 200])
def test_density_parameter(k):
    ps = generate_profiles(3, k, style="complex", seed=1)
    for p in ps:
        assert len(p.preferences) == k
        assert_no_conflicts(p)


def test_generator_is_seeded():
    assert generate_profiles(5, 20, seed=3) == generate_profiles(5, 20, seed=3)
    assert generate_profiles(5, 20, seed=3) != generate_profiles(5, 20, seed=4)
    assert load_profiles("complex-10-u4-s2") == generate_profiles(4, 10, seed=2)


def test_bad_density_and_style():
    with pytest.raises(ValueError, match="from 3 to 200, got 2"):
        generate_profiles(1, 2)
    with pytest.raises(ValueError, match="style must be"):
        generate_profiles(1, 3, style="vars")


def test_round_trip_file(tmp_path):
    ps = generate_profiles(4, 12, seed=5)
    path = tmp_path / "p.jsonl"
    dump_profiles(ps, path)
    assert load_profiles(path) == ps


def test_malformed_line_names_line_number(tmp_path):
    good = json.dumps({"user_id": "a", "persona": "x", "preferences": []})
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "\n" + '{"user_id": "b", "preferences": [\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: malformed JSON"):
        load_profiles(path)


def test_unknown_preference_id_suggests(tmp_path):
    some = sorted(load_catalogue())[0]
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"user_id": "a", "preferences": [some + "x"]}) + "\n")
    with pytest.raises(ValueError, match=rf"p.jsonl:1: .*{some + 'x'}.*did you mean '{some}'"):
        load_profiles(path)


def test_conflicting_pair_rejected(tmp_path):
    a, b = "concise", "detailed"
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"user_id": "a", "preferences": [a, b]}) + "\n")
    with pytest.raises(ValueError, match="conflict"):
        load_profiles(path)
    # disjoint task kinds make the pair legal
    path.write_text(json.dumps({"user_id": "a", "preferences": [f"{a}@math", f"{b}@logic"]}) + "\n")
    assert len(load_profiles(path)[0].preferences) == 2


def test_unknown_set_name_suggests():
    with pytest.raises(ValueError, match="did you mean 'complex'"):
        load_profiles("complx")


def test_parse_preference_condition_suffixes():
    some = sorted(load_catalogue())[0]
    p = parse_preference(f"{some}@math+logic")
    assert p.condition.task_kinds == {"math", "logic"}
    with pytest.raises(ValueError, match="unknown condition 'maths'"):
        parse_preference(f"{some}@maths")


def test_msc_reference_profiles_load_through_load_profiles(msc_data):
    ps = load_profiles(msc_data / "user_profiles.json")
    assert len(ps) == 100 and all(len(p.preferences) == 3 for p in ps)


def test_json_errors_read_as_words(tmp_path):
    from personalization_env.preferences.msc import load_msc_profiles

    bad = tmp_path / "user_profiles.json"
    bad.write_text('[{"persona": "a\nb"}]')  # a raw newline inside a string: "Invalid control character at"
    with pytest.raises(ValueError) as e:
        load_msc_profiles(bad)
    msg = str(e.value)
    assert "at at" not in msg and "Invalid control character, line 1 column" in msg and "expected a list" in msg
