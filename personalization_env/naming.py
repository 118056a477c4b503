"""Helpers of error messages: the "did you mean" hint of every error about an unknown name, and JSON
errors in words."""

from __future__ import annotations

import difflib
import json
from typing import Iterable


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest known name, or ``""`` when none is close."""
    hint = difflib.get_close_matches(str(name), list(known), n=1)
    return f"; did you mean {hint[0]!r}?" if hint else ""


def json_error(e: json.JSONDecodeError) -> str:
    """A JSON decoding error in words: ``"Expecting ',' delimiter, line 3 column 7"``. (Some of
    Python's messages end in " at", meant for its own "at line ..." suffix.)"""
    return f"{e.msg.removesuffix(' at')}, line {e.lineno} column {e.colno}"
