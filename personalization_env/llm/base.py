"""The batched chat interface every model role goes through.

A backend takes a list of :class:`ChatRequest` and returns one :class:`ChatResponse` per request, in
order. Requests carry a ``purpose`` tag (``reply``, ``reflect``, ``extract``, ``judge``, ``user``, ``grade``) so
that one backend can serve several roles and usage can be accounted per role; real LLM servers ignore
the tag, the scripted backend dispatches on it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from personalization_env.naming import did_you_mean
from personalization_env.types import Message

PURPOSES: tuple[str, ...] = ("reply", "reflect", "extract", "judge", "user", "grade")


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


class BackendUnavailableError(RuntimeError):
    """A model server could not be reached even after retries: the run must stop (and resume later),
    not record the session as a failure of the method."""


class ChatBackend(abc.ABC):
    """A model that answers batches of chat requests.

    Subclasses implement :meth:`_generate`; :meth:`generate` validates input and keeps per-purpose
    usage counters (``usage``: calls, tokens, latency) so runs can report them per role, and
    ``stats`` (retries, faults by kind, JSON repairs) for backends that talk to servers.
    """

    name: str = "backend"

    def __init__(self) -> None:
        self.usage: dict[str, dict[str, float]] = {}
        self.stats: dict[str, Any] = {"retries": 0, "repairs": 0, "faults": {}}

    @property
    def cache_id(self) -> str:
        """What identifies this model's outputs in a response cache (model name, not server address)."""
        return f"{self.name}:{getattr(self, 'model', '')}"

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
            u = self.usage.setdefault(r.purpose, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                                  "latency_s": 0.0})
            u["calls"] += 1
            u["prompt_tokens"] += o.prompt_tokens
            u["completion_tokens"] += o.completion_tokens
            u["latency_s"] = u.get("latency_s", 0.0) + float(o.meta.get("latency_s", 0.0))
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
    "openai": "personalization_env.llm.openai_backend:OpenAIBackend",
    "hf": "personalization_env.llm.hf:HFBackend",
    "vllm": "personalization_env.llm.vllm_engine:VLLMBackend",
}


def make_backend(spec: str | ChatBackend, cache: str | None = None, replay: bool = False,
                 **kwargs: Any) -> ChatBackend:
    """Build a backend from a spec string.

    Specs: ``"scripted"`` (the embedded model), ``"openai:<model>@<base_url>"`` (any OpenAI-compatible
    server: vLLM, SGLang, OpenAI; ``openai:<model>`` uses ``$OPENAI_BASE_URL`` or OpenAI),
    ``"hf:<path or name>"`` (local transformers), ``"vllm:<model>"`` (in-process vLLM, GPU).

    Args:
        spec: ``family`` or ``family:rest``; an existing backend is returned as is.
        cache: a response-cache folder: the backend is wrapped in a
            :class:`~personalization_env.llm.cache.CachedBackend` (the scripted model is never cached:
            it is faster than a cache lookup).
        replay: with ``cache``, answer only from the cache (a miss raises instead of calling the model).
        **kwargs: passed to the backend's constructor.
    """
    if isinstance(spec, ChatBackend):
        return _maybe_cached(spec, cache, replay)
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
    return _maybe_cached(cls(**kwargs), cache, replay)


def _maybe_cached(backend: ChatBackend, cache: str | None, replay: bool) -> ChatBackend:
    if cache is None or backend.name in ("scripted", "cached"):
        return backend
    from personalization_env.llm.cache import CachedBackend

    return CachedBackend(backend, cache, replay=replay)
