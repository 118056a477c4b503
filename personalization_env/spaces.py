"""Gymnasium spaces for chat text.

Gymnasium's default :class:`~gymnasium.spaces.Text` charset is alphanumeric only, so real chat text
(spaces, punctuation, newlines, unicode) would not be "contained". :class:`ChatText` accepts any
``str`` within the length bounds and samples from printable ASCII.

Async vector envs pass observations through shared memory; for a ChatText that is a byte buffer per
sub-env holding the text as UTF-8 after its length (registered below with Gymnasium's shared-memory
functions), so any text travels, at the cost of its length, not of ``max_length``.
"""

from __future__ import annotations

import multiprocessing as mp
import string
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import shared_memory as _shm

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


_HEADER = 8  # bytes of the length prefix of a shared-memory slot


def _slot(space: ChatText) -> int:
    return _HEADER + 4 * space.max_length  # UTF-8 takes at most 4 bytes a character


@_shm.create_shared_memory.register(ChatText)
def _create_chat_text_memory(space: ChatText, n: int = 1, ctx: Any = mp) -> Any:
    return ctx.Array("B", n * _slot(space))


class SharedTexts(Sequence):
    """The texts of n sub-envs in shared memory, read when accessed.

    Gymnasium's async vector env reads its shared memory once and expects views that follow later
    writes (numpy arrays do); strings cannot be views, so this sequence decodes the current text on
    every access, and a deep copy (what the vector env returns by default) is a plain tuple.
    """

    def __init__(self, shared_memory: Any, n: int, slot: int):
        self._buf, self._n, self._slot = np.frombuffer(shared_memory.get_obj(), dtype=np.uint8), n, slot

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(self._n)))
        if not -self._n <= i < self._n:
            raise IndexError(i)
        start = (i % self._n) * self._slot
        length = int.from_bytes(self._buf[start:start + _HEADER].tobytes(), "little")
        return self._buf[start + _HEADER:start + _HEADER + length].tobytes().decode("utf-8")

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, (tuple, SharedTexts)) and tuple(self) == tuple(other)

    def __deepcopy__(self, memo: Any) -> tuple[str, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        return repr(tuple(self))


@_shm.read_from_shared_memory.register(ChatText)
def _read_chat_text(space: ChatText, shared_memory: Any, n: int = 1) -> SharedTexts:
    return SharedTexts(shared_memory, n, _slot(space))


@_shm.write_to_shared_memory.register(ChatText)
def _write_chat_text(space: ChatText, index: int, value: str, shared_memory: Any) -> None:
    data, size = value.encode("utf-8"), _slot(space)
    if len(data) > size - _HEADER:
        raise ValueError(f"a text of {len(value)} characters does not fit a ChatText of max_length {space.max_length}")
    buf, start = np.frombuffer(shared_memory.get_obj(), dtype=np.uint8), index * size
    buf[start:start + _HEADER] = np.frombuffer(len(data).to_bytes(_HEADER, "little"), dtype=np.uint8)
    buf[start + _HEADER:start + _HEADER + len(data)] = np.frombuffer(data, dtype=np.uint8)
