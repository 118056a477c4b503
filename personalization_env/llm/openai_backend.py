"""Any OpenAI-compatible chat server (vLLM, SGLang, OpenAI) through the official ``openai`` client.

Spec: ``openai:<model>@<base_url>``, e.g. ``openai:meta-llama/Llama-3.1-8B-Instruct@http://node1:8000/v1``
(``openai:<model>`` alone uses ``$OPENAI_BASE_URL``, else OpenAI's API). The API key is read from the
environment only (``$MSC_API_KEY``, else ``$OPENAI_API_KEY``, else ``"EMPTY"`` as a keyless vLLM
server expects); it is never stored in a spec, a config, a pickle or a log line.

Requests of a batch run concurrently (at most ``max_concurrency`` in flight). Each request gets its
own timeout and up to ``max_retries`` retries with exponential backoff and jitter on rate limits
(429), server errors (5xx), timeouts, dropped connections and malformed bodies; every fault is
counted by kind in ``stats["faults"]`` and every retry in ``stats["retries"]``. When a request still
fails, :class:`~personalization_env.llm.base.BackendUnavailableError` stops the run with one line
(resume it later with ``msc run --resume``). A schema in ``ChatRequest.response_format`` is sent as
OpenAI's ``json_schema`` response format (guided decoding on vLLM); a server that rejects it gets
plain requests from then on (``guided="auto"``) and the reply is validated upstream
(:mod:`personalization_env.llm.structured`).
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from personalization_env.llm.base import BackendUnavailableError, ChatBackend, ChatRequest, ChatResponse

KEY_ENV_VARS: tuple[str, ...] = ("MSC_API_KEY", "OPENAI_API_KEY")


def api_key_from_env() -> str:
    """The API key from the environment (see module docstring); ``"EMPTY"`` when none is set."""
    for name in KEY_ENV_VARS:
        v = os.environ.get(name)
        if v:
            return v
    return "EMPTY"


#: ``$MSC_LLM_*`` settings of the clients and their defaults (see :class:`OpenAIBackend`).
SETTINGS: dict[str, tuple[str, float]] = {
    "max_concurrency": ("MSC_LLM_CONCURRENCY", 16), "timeout": ("MSC_LLM_TIMEOUT", 120.0),
    "max_retries": ("MSC_LLM_MAX_RETRIES", 6), "backoff": ("MSC_LLM_BACKOFF", 0.5),
}


def setting(name: str, value: Any = None) -> Any:
    """``value`` when given, else the environment's ``$MSC_LLM_*`` setting, else its default."""
    if value is not None:
        return value
    var, default = SETTINGS[name]
    return type(default)(os.environ.get(var, default))


def make_client(base_url: str | None, timeout: float, max_retries: int, what: str) -> Any:
    """An ``openai.OpenAI`` client with the key from the environment (``what`` names the user in the
    error when the ``[llm]`` extra is missing)."""
    try:
        import openai
    except ImportError as e:
        raise ImportError(f"{what} needs: pip install 'multisessioncollab[llm]'") from e
    return openai.OpenAI(base_url=base_url, api_key=api_key_from_env(), timeout=timeout, max_retries=max_retries)


def split_model_url(model: str, base_url: str | None) -> tuple[str, str | None]:
    """``"name@http://host:port/v1"`` -> (name, url); a model name may itself contain ``@``."""
    if base_url is None and "@" in model:
        name, _, url = model.rpartition("@")
        if url.startswith(("http://", "https://")):
            return name, url.rstrip("/")
    return model, base_url or os.environ.get("OPENAI_BASE_URL") or None


class OpenAIBackend(ChatBackend):
    """Chat completions from an OpenAI-compatible server (see module docstring).

    Defaults of the numeric settings come from ``$MSC_LLM_CONCURRENCY`` (16), ``$MSC_LLM_TIMEOUT`` (120),
    ``$MSC_LLM_MAX_RETRIES`` (6) and ``$MSC_LLM_BACKOFF`` (0.5), so a CLI run can set them.

    Args:
        model: the served model name, optionally ``name@base_url``.
        base_url: the server's OpenAI base URL (``http://host:port/v1``).
        max_concurrency: requests in flight at once.
        timeout: seconds per request attempt.
        max_retries: retries per request after the first attempt.
        backoff: first retry delay in seconds (doubles each retry, with jitter, capped at ``max_backoff``).
        max_backoff: the cap on one retry delay.
        guided: ``"auto"`` (send schemas, stop when the server rejects them), ``"always"`` or ``"never"``.
    """

    name = "openai"

    def __init__(self, model: str, base_url: str | None = None, max_concurrency: int | None = None,
                 timeout: float | None = None, max_retries: int | None = None, backoff: float | None = None,
                 max_backoff: float = 20.0, guided: str = "auto"):
        super().__init__()
        max_concurrency, timeout = setting("max_concurrency", max_concurrency), setting("timeout", timeout)
        max_retries, backoff = setting("max_retries", max_retries), setting("backoff", backoff)
        if not model:
            raise ValueError("an OpenAI-compatible backend needs a model: 'openai:<model>@<base_url>'")
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be a positive int, got {max_concurrency!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if guided not in ("auto", "always", "never"):
            raise ValueError(f"guided must be 'auto', 'always' or 'never', got {guided!r}")
        self.model, self.base_url = split_model_url(model, base_url)
        self.max_concurrency, self.timeout, self.max_retries = max_concurrency, float(timeout), max_retries
        self.backoff, self.max_backoff, self.guided = float(backoff), float(max_backoff), guided
        self._guided_ok = guided != "never"
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_client", "_pool", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client, self._pool, self._lock = None, None, threading.Lock()

    def _get_client(self) -> Any:
        if self._client is None or self._pid != os.getpid():  # a forked worker builds its own connections
            self._client = make_client(self.base_url, self.timeout, 0, "the OpenAI-compatible backend")
            self._pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="msc-openai")
            self._pid = os.getpid()
        return self._client

    def health(self) -> None:
        """Raise :class:`BackendUnavailableError` unless the server lists models (``GET /models``)."""
        client = self._get_client()
        try:
            client.with_options(timeout=min(self.timeout, 10.0)).models.list()
        except Exception as e:  # noqa: BLE001 - any failure means "not up"
            where = self.base_url or "api.openai.com"
            raise BackendUnavailableError(f"model server {where} is not up ({type(e).__name__}); start it "
                                          f"(see slurm/README.md), then run again") from e

    def _fault(self, kind: str) -> None:
        with self._lock:
            faults = self.stats["faults"]
            faults[kind] = faults.get(kind, 0) + 1

    @staticmethod
    def _classify(e: Exception) -> tuple[str, bool]:
        """(fault kind, retryable)."""
        import openai

        if isinstance(e, openai.APITimeoutError):
            return "timeout", True
        if isinstance(e, openai.APIConnectionError):
            return "connection", True
        if isinstance(e, openai.RateLimitError):
            return "429", True
        if isinstance(e, openai.APIStatusError):
            code = int(getattr(e, "status_code", 0) or 0)
            return str(code), code >= 500 or code in (408, 409)
        if isinstance(e, (openai.APIResponseValidationError, ValueError, KeyError, IndexError, TypeError)):
            return "malformed", True
        return type(e).__name__, False

    def _one(self, r: ChatRequest) -> ChatResponse:
        client = self._get_client()
        kwargs: dict[str, Any] = {
            "model": self.model, "messages": [{"role": m.role, "content": m.content} for m in r.messages],
            "max_tokens": r.max_tokens, "temperature": r.temperature,
            "extra_headers": {"X-MSC-Purpose": r.purpose},
        }
        if r.seed is not None:
            kwargs["seed"] = int(r.seed)  # < 2**63: vLLM and OpenAI take 64-bit seeds
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            guided = r.response_format is not None and self._guided_ok
            if guided:
                kwargs["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": "reply", "schema": dict(r.response_format or {}), "strict": False}}
            else:
                kwargs.pop("response_format", None)
            t0 = time.perf_counter()
            try:
                resp = client.chat.completions.create(**kwargs)
                text = resp.choices[0].message.content
                if not isinstance(text, str):
                    raise ValueError("the server's reply has no message content")
                usage = getattr(resp, "usage", None)
                return ChatResponse(text, prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                                    completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                                    meta={"latency_s": time.perf_counter() - t0, "attempts": attempt + 1})
            except Exception as e:  # noqa: BLE001 - classified below
                kind, retryable = self._classify(e)
                if kind == "400" and guided and self.guided == "auto":
                    self._guided_ok = False  # the server does not take json_schema: validate upstream instead
                    continue
                self._fault(kind)
                last = e
                if not retryable or attempt == self.max_retries:
                    break
                with self._lock:
                    self.stats["retries"] += 1
                delay = min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)
                time.sleep(delay)
        where = self.base_url or "api.openai.com"
        raise BackendUnavailableError(f"model server {where} failed {self.max_retries + 1} times for model "
                                      f"{self.model!r} (last: {type(last).__name__}); check the server, then "
                                      f"rerun with --resume")

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        self._get_client()
        assert self._pool is not None
        if len(requests) == 1:
            return [self._one(requests[0])]
        return list(self._pool.map(self._one, requests))
