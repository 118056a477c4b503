"""Gymnasium spaces for chat text.

Gymnasium's default :class:`~gymnasium.spaces.Text` charset is alphanumeric only, so real chat text
(spaces, punctuation, newlines, unicode) would not be "contained". :class:`ChatText` accepts any
``str`` within the length bounds and samples from printable ASCII.
"""

from __future__ import annotations

import string
from typing import Any

from gymnasium import spaces

_SAMPLE_CHARSET = string.ascii_letters + string.digits + " .,;:!?'\"-()\n"


class ChatText(spaces.Text):
    """Any Python string of ``min_length`` to ``max_length`` characters."""

    def __init__(self, max_length: int, *, min_length: int = 0, seed: Any = None):
        super().__init__(max_length=max_length, min_length=min_length, charset=_SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"ChatText(min_length={self.min_length}, max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ChatText) and (self.min_length, self.max_length) == (other.min_length, other.max_length)
