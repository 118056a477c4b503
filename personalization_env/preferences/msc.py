"""Importer for MultiSessionCollab user profiles (``user_profiles.json``).

The published format is a JSON list of ``{"i": int, "persona": str, "categories": [str],
"preferences": [str]}``; each preference text maps to one library type (see :func:`msc_type_id`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from personalization_env.naming import json_error
from personalization_env.preferences.library import get_type, msc_texts, normalize_text
from personalization_env.types import Preference, Profile

logger = logging.getLogger(__name__)


def msc_type_id(text: str) -> str:
    """The library type id of a MultiSessionCollab preference text (exact or whitespace/case-normalised).

    Raises:
        ValueError: the text is not one of the 20 published MSC preferences.
    """
    tid = msc_texts().get(normalize_text(text))
    if tid is None:
        raise ValueError(f"unknown MultiSessionCollab preference text {text[:60]!r}...; expected one of the 20 "
                         "published texts (add an 'msc_text' to the matching catalogue line)")
    return tid


def load_msc_profiles(path: str | Path) -> list[Profile]:
    """Load MultiSessionCollab profiles; ``user_id`` is ``f"msc-{i}"``.

    Raises:
        ValueError: naming the entry index and what to fix.
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({json_error(e)}); expected a list of profiles") from e
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of profiles, got {type(data).__name__}")
    profiles: list[Profile] = []
    for idx, entry in enumerate(data):
        where = f"{path} entry {idx}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object with i, persona, preferences")
        missing = [k for k in ("i", "persona", "preferences") if k not in entry]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}; each entry needs i, persona, preferences")
        prefs_raw = entry["preferences"]
        if not isinstance(prefs_raw, list) or not all(isinstance(p, str) for p in prefs_raw):
            raise ValueError(f"{where}: 'preferences' must be a list of strings")
        cats = entry.get("categories")
        prefs: list[Preference] = []
        for j, text in enumerate(prefs_raw):
            try:
                t = get_type(msc_type_id(text))
            except ValueError as e:
                raise ValueError(f"{where}, preference {j}: {e}") from e
            if isinstance(cats, list) and j < len(cats) and cats[j] != t.category:
                raise ValueError(f"{where}, preference {j}: category {cats[j]!r} does not match the library type "
                                 f"{t.id!r} ({t.category!r}); fix the entry's 'categories'")
            prefs.append(Preference(type=t, condition=t.condition))
        profiles.append(Profile(user_id=f"msc-{entry['i']}", persona=str(entry["persona"]), preferences=tuple(prefs)))
    logger.debug("loaded %d MSC profiles from %s", len(profiles), path)
    return profiles
