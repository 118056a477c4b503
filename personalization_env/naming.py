"""The "did you mean" hint shared by every error about an unknown name."""

from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest known name, or ``""`` when none is close."""
    hint = difflib.get_close_matches(str(name), list(known), n=1)
    return f"; did you mean {hint[0]!r}?" if hint else ""
