"""User profiles: shipped sets, a seeded generator, and file loading/validation."""

from __future__ import annotations

from personalization_env.profiles.generator import generate_profiles
from personalization_env.profiles.io import (
    PROFILE_SETS,
    dump_profiles,
    load_profiles,
    parse_preference,
    profile_from_dict,
    profile_to_dict,
)

__all__ = [
    "PROFILE_SETS",
    "dump_profiles",
    "generate_profiles",
    "load_profiles",
    "parse_preference",
    "profile_from_dict",
    "profile_to_dict",
]
