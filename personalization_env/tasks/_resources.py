"""Package-data access for the task generators (word lists and templates live in ``tasks/data/``)."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any


@functools.lru_cache(maxsize=None)
def load_data(name: str) -> Any:
    """Load one JSON file from ``personalization_env/tasks/data/``.

    Args:
        name: file name inside the data folder, e.g. ``"words.json"``.

    Returns:
        The parsed JSON document. Callers must treat it as read-only (it is cached).

    Raises:
        FileNotFoundError: if the package data file is missing (a broken install).
    """
    path = resources.files("personalization_env.tasks").joinpath("data").joinpath(name)
    if not path.is_file():
        raise FileNotFoundError(f"package data file tasks/data/{name} is missing; reinstall the package")
    with path.open("r", encoding="utf-8") as fh:
        return json.load(fh)
