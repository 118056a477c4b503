from __future__ import annotations

import json
from pathlib import Path

import pytest

from personalization_env.preferences import get_type, load_msc_profiles, msc_type_id

MSC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "msc"
PROFILES = MSC_DIR / "user_profiles.json"
needs_data = pytest.mark.skipif(not PROFILES.exists(), reason=f"MultiSessionCollab data not found at {MSC_DIR}")


@needs_data
def test_all_profiles_load() -> None:
    profiles = load_msc_profiles(PROFILES)
    assert len(profiles) == 100
    assert profiles[0].user_id == "msc-0" and all(len(p.preferences) == 3 for p in profiles)


@needs_data
def test_every_text_maps_to_same_category_with_checker() -> None:
    texts: dict[str, str] = {}
    for e in json.loads(PROFILES.read_text("utf-8")):
        texts.update(zip(e["preferences"], e["categories"]))
    assert len(texts) == 20
    ids = set()
    for text, cat in texts.items():
        t = get_type(msc_type_id(text))
        ids.add(t.id)
        assert t.category == cat
        assert t.check is not None, t.id
        assert msc_type_id("  " + text.upper().replace(" ", "\n ")) == t.id
    assert len(ids) == 20


def test_unknown_text_names_it() -> None:
    with pytest.raises(ValueError, match="You prefer purple"):
        msc_type_id("You prefer purple responses.")


def test_bad_entry_names_index(tmp_path: Path) -> None:
    p = tmp_path / "profiles.json"
    p.write_text(json.dumps([{"i": 0, "persona": "x", "preferences": []}, {"i": 1, "persona": "y"}]))
    with pytest.raises(ValueError, match="entry 1: missing field"):
        load_msc_profiles(p)
    p.write_text(json.dumps([{"i": 0, "persona": "x", "preferences": ["Nope."]}]))
    with pytest.raises(ValueError, match="entry 0, preference 0"):
        load_msc_profiles(p)
