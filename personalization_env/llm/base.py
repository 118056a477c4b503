"""The batched chat interface every model role goes through.

A backend takes a list of :class:`ChatRequest` and returns one :class:`ChatResponse` per request, in
order. Requests carry a ``purpose`` tag (``reply``, ``reflect``, ``extract``, ``judge``, ``user``, ``grade``) so
that one backend can serve several roles and usage can be accounted per role; real LLM servers ignore
the tag, the scripted backend dispatches on it.
"""

from __future__ import annotations

import abc
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

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


class DeadlineExceeded(TimeoutError):
    """The time limit of the running session (see :func:`call_context`) ran out at a model call."""


# ---- per-lane accounting and time limits ------------------------------------------------------------
# Backends are shared by many lanes (threads) of a run; what one lane's calls cost is collected in the
# UsageMeter of the thread's call context, and a session's time limit travels the same way.
_COUNT_LOCK = threading.Lock()  # guards the counters of every backend (short critical sections)
_local = threading.local()
T = TypeVar("T")


def _zero_counts() -> dict[str, Any]:
    return {"calls": 0, "tokens": 0, "latency_s": 0.0, "retries": 0, "repairs": 0, "cache_hits": 0, "faults": {}}


class UsageMeter:
    """The model calls made under one :func:`call_context`, per backend: calls, tokens, latency,
    retries, JSON repairs, cache hits and faults by kind (a cache wrapper and the backend it wraps
    count as one)."""

    def __init__(self) -> None:
        self._by_backend: dict[int, dict[str, Any]] = {}

    def _entry(self, backend: "ChatBackend") -> dict[str, Any]:
        return self._by_backend.setdefault(id(backend), _zero_counts())

    def counts(self, backend: "ChatBackend") -> dict[str, Any]:
        """A copy of what was counted for ``backend`` (zeros when it was not called)."""
        e = self._by_backend.get(id(backend)) or _zero_counts()
        return {**e, "latency_s": round(e["latency_s"], 4), "faults": dict(e["faults"])}


@dataclass(frozen=True)
class CallContext:
    """What the calls of a thread are accounted to (``meter``) and bounded by (``deadline``, a
    :func:`time.monotonic` instant)."""

    meter: UsageMeter | None = None
    deadline: float | None = None


def current_context() -> CallContext:
    """The calling thread's :class:`CallContext` (empty outside :func:`call_context`)."""
    return getattr(_local, "ctx", None) or CallContext()


@contextmanager
def call_context(meter: UsageMeter | None = None, time_limit: float | None = None) -> Iterator[CallContext]:
    """Account the model calls of this block to ``meter`` and stop them ``time_limit`` seconds from now
    (:class:`DeadlineExceeded` at the next call that starts, or waits, past it)."""
    ctx = CallContext(meter, None if time_limit is None else time.monotonic() + float(time_limit))
    prev = getattr(_local, "ctx", None)
    _local.ctx = ctx
    try:
        yield ctx
    finally:
        _local.ctx = prev


def in_context(ctx: CallContext, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` under ``ctx`` (for helper threads that answer one caller's batch)."""
    prev = getattr(_local, "ctx", None)
    _local.ctx = ctx
    try:
        return fn(*args)
    finally:
        _local.ctx = prev


def remaining_time() -> float | None:
    """Seconds left before the calling thread's deadline (None: no limit)."""
    deadline = current_context().deadline
    return None if deadline is None else deadline - time.monotonic()


class ChatBackend(abc.ABC):
    """A model that answers batches of chat requests.

    Subclasses implement :meth:`_generate`; :meth:`generate` validates input and keeps per-purpose
    usage counters (``usage``: calls, tokens, latency) so runs can report them per role, and
    ``stats`` (retries, faults by kind, JSON repairs) for backends that talk to servers.
    """

    name: str = "backend"
    #: the backend whose meter entry this one's counters go to (a cache wrapper sets itself)
    account_to: "ChatBackend | None" = None

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
        meter = current_context().meter if self.account_to is None else None
        with _COUNT_LOCK:
            m = meter._entry(self) if meter is not None else None
            for r, o in zip(requests, out):
                u = self.usage.setdefault(r.purpose, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                                      "latency_s": 0.0})
                latency = float(o.meta.get("latency_s", 0.0))
                u["calls"] += 1
                u["prompt_tokens"] += o.prompt_tokens
                u["completion_tokens"] += o.completion_tokens
                u["latency_s"] = u.get("latency_s", 0.0) + latency
                if m is not None:
                    m["calls"] += 1
                    m["tokens"] += o.prompt_tokens + o.completion_tokens
                    m["latency_s"] += latency
        return out

    def count(self, key: str, n: int = 1) -> None:
        """Add ``n`` to ``"retries"`` or ``"repairs"`` (in ``stats``) or to ``"cache_hits"``; the running
        lane's meter gets the same."""
        if key not in ("retries", "repairs", "cache_hits"):
            raise ValueError(f"unknown counter {key!r}; expected retries, repairs or cache_hits")
        self._count(key, None, n)

    def count_fault(self, kind: str) -> None:
        """Count one fault of ``kind`` (``"429"``, ``"timeout"``, ...) in ``stats["faults"]`` and the lane's meter."""
        self._count("faults", kind, 1)

    def _count(self, key: str, fault: str | None, n: int) -> None:
        meter = current_context().meter
        with _COUNT_LOCK:
            if fault is not None:
                faults = self.stats.setdefault("faults", {})
                faults[fault] = faults.get(fault, 0) + n
            elif key != "cache_hits":
                self.stats[key] = self.stats.get(key, 0) + n
            if meter is not None:
                m = meter._entry(self.account_to or self)
                if fault is not None:
                    m["faults"][fault] = m["faults"].get(fault, 0) + n
                else:
                    m[key] += n

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
