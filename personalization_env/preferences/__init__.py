"""Preference library, programmatic checkers and the MultiSessionCollab importer."""

from __future__ import annotations

from personalization_env.preferences.checkers import CHECKERS, applies, check_preference, register, run_check
from personalization_env.preferences.library import CATEGORIES, get_type, load_catalogue, phrase
from personalization_env.preferences.msc import load_msc_profiles, msc_type_id

__all__ = ["CATEGORIES", "CHECKERS", "applies", "check_preference", "get_type", "load_catalogue",
           "load_msc_profiles", "msc_type_id", "phrase", "register", "run_check"]
