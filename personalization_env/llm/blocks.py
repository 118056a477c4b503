"""Named blocks in prompts: ``<<<NAME`` ... ``NAME>>>``.

The LLM user simulator, the hybrid rewrite and the answer judge quote problems, replies and answers
in such blocks, so that a model sees clearly where quoted text starts and ends and the embedded
scripted model can read the same prompt back by name.
"""

from __future__ import annotations

import re
from functools import lru_cache


def block(name: str, text: str) -> str:
    """``text`` quoted as the block ``name``."""
    return f"<<<{name}\n{text}\n{name}>>>"


@lru_cache(maxsize=None)
def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"<<<{name}\n(.*?)\n{name}>>>", re.S)


def find_block(text: str, name: str) -> str | None:
    """The first block ``name`` in ``text``, or None."""
    m = _pattern(name).search(text)
    return m.group(1) if m else None
