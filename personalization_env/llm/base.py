"""The batched chat interface every model role goes through.

A backend takes a list of :class:`ChatRequest` and returns one :class:`ChatResponse` per request, in
order. Requests carry a ``purpose`` tag (``reply``, ``reflect``, ``extract``, ``judge``, ``user``) so
that one backend can serve several roles and usage can be accounted per role; real LLM servers ignore
the tag, the scripted backend dispatches on it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from personalization_env.naming import did_you_mean
from personalization_env.types import Message

PURPOSES: tuple[str, ...] = ("reply", "reflect", "extract", "judge", "user")


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request.

    Args:
        messages: the conversation, system prompt first.
        purpose: the role this call plays (see :data:`PURPOSES`).
        max_tokens: generation cap.
        temperature: sampling temperature.
        seed: per-request seed; deterministic backends derive all randomness from it.
        response_format: a JSON schema the reply must follow, when the caller wants structured output.
    """

    messages: tuple[Message, ...]
    purpose: str = "reply"
    max_tokens: int = 1024
    temperature: float = 0.7
    seed: int | None = None
    response_format: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", tuple(self.messages))
        if self.purpose not in PURPOSES:
            raise ValueError(f"unknown request purpose {self.purpose!r}; expected one of {PURPOSES}")
        if not self.messages:
            raise ValueError("a chat request needs at least one message")


@dataclass(frozen=True)
class ChatResponse:
    """A completion plus its accounting."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    meta: Mapping[str, Any] = field(default_factory=dict)


def approx_tokens(text: str) -> int:
    """A cheap token estimate (about 4 characters a token) for backends that do not count."""
    return max(1, (len(text) + 3) // 4)


class ChatBackend(abc.ABC):
    """A model that answers batches of chat requests.

    Subclasses implement :meth:`_generate`; :meth:`generate` validates input and keeps per-purpose
    usage counters (``usage``) so runs can report tokens per role.
    """

    name: str = "backend"

    def __init__(self) -> None:
        self.usage: dict[str, dict[str, int]] = {}

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Answer ``requests`` (one response per request, same order)."""
        requests = list(requests)
        for r in requests:
            if not isinstance(r, ChatRequest):
                raise TypeError(f"generate() takes ChatRequest objects, got {type(r).__name__}")
        if not requests:
            return []
        out = self._generate(requests)
        if len(out) != len(requests):
            raise RuntimeError(f"{type(self).__name__} returned {len(out)} responses for {len(requests)} requests")
        for r, o in zip(requests, out):
            u = self.usage.setdefault(r.purpose, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0})
            u["calls"] += 1
            u["prompt_tokens"] += o.prompt_tokens
            u["completion_tokens"] += o.completion_tokens
        return out

    def complete(self, messages: Sequence[Message], **kw: Any) -> str:
        """Convenience: one request, text only."""
        return self.generate([ChatRequest(tuple(messages), **kw)])[0].text

    @abc.abstractmethod
    def _generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """Answer a non-empty batch."""


#: backend families a spec string may start with; the value is "module:factory".
BACKENDS: dict[str, str] = {
    "scripted": "personalization_env.llm.scripted:ScriptedBackend",
}


def make_backend(spec: str | ChatBackend, **kwargs: Any) -> ChatBackend:
    """Build a backend from a spec string such as ``"scripted"`` (later: ``"openai:<model>@<url>"``).

    Args:
        spec: ``family`` or ``family:rest``; an existing backend is returned as is.
        **kwargs: passed to the backend's constructor.
    """
    if isinstance(spec, ChatBackend):
        return spec
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"backend spec must be a non-empty string such as 'scripted', got {spec!r}")
    family, _, rest = spec.partition(":")
    if family not in BACKENDS:
        extra = did_you_mean(family, BACKENDS)
        raise ValueError(f"unknown backend {family!r}{extra} known: {sorted(BACKENDS)}")
    import importlib

    mod, _, attr = BACKENDS[family].partition(":")
    cls = getattr(importlib.import_module(mod), attr)
    if rest:
        kwargs.setdefault("model", rest)
    return cls(**kwargs)
