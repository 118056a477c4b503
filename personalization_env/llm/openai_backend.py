"""Any OpenAI-compatible chat server (vLLM, SGLang, OpenAI).

Spec: ``openai:<model>@<base_url>``, e.g. ``openai:meta-llama/Llama-3.1-8B-Instruct@http://node1:8000/v1``
(``openai:<model>`` alone uses ``$OPENAI_BASE_URL``, else OpenAI's API). The API key is read from the
environment only (``$MSC_API_KEY``, else ``$OPENAI_API_KEY``, else ``"EMPTY"`` as a keyless vLLM
server expects); it is never stored in a spec, a config, a pickle or a log line.

Requests go through the lean keep-alive client of :mod:`personalization_env.llm.http_client` (a few
tenths of a millisecond of CPU per call; ``client="sdk"`` uses the official ``openai`` client, about
2-3 ms). One backend is shared by every lane of a run: at most ``max_concurrency`` requests are in
flight to the server at once, whichever lanes send them, and the requests of a batch run
concurrently. Each request gets its
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

from personalization_env.llm.base import (BackendUnavailableError, ChatBackend, ChatRequest, ChatResponse,
                                          DeadlineExceeded, current_context, in_context, remaining_time)
from personalization_env.llm.http_client import HTTPStatusError, JSONClient, TransportError

KEY_ENV_VARS: tuple[str, ...] = ("MSC_API_KEY", "OPENAI_API_KEY")


def api_key_from_env() -> str:
    """The API key from the environment (see module docstring); ``"EMPTY"`` when none is set."""
    for name in KEY_ENV_VARS:
        v = os.environ.get(name)
        if v:
            return v
    return "EMPTY"


#: ``$MSC_LLM_*`` settings of the clients and their defaults (see :class:`OpenAIBackend`).
SETTINGS: dict[str, tuple[str, Any]] = {
    "max_concurrency": ("MSC_LLM_CONCURRENCY", 256), "timeout": ("MSC_LLM_TIMEOUT", 120.0),
    "max_retries": ("MSC_LLM_MAX_RETRIES", 6), "backoff": ("MSC_LLM_BACKOFF", 0.5), "client": ("MSC_LLM_CLIENT", "http"),
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


OPENAI_URL = "https://api.openai.com/v1"


def split_model_url(model: str, base_url: str | None) -> tuple[str, str | None]:
    """``"name@http://host:port/v1"`` -> (name, url); a model name may itself contain ``@``."""
    if base_url is None and "@" in model:
        name, _, url = model.rpartition("@")
        if url.startswith(("http://", "https://")):
            return name, url.rstrip("/")
    return model, base_url or os.environ.get("OPENAI_BASE_URL") or None


class OpenAIBackend(ChatBackend):
    """Chat completions from an OpenAI-compatible server (see module docstring).

    Defaults of the settings come from ``$MSC_LLM_CONCURRENCY`` (256), ``$MSC_LLM_TIMEOUT`` (120),
    ``$MSC_LLM_MAX_RETRIES`` (6), ``$MSC_LLM_BACKOFF`` (0.5) and ``$MSC_LLM_CLIENT`` (``http``), so a CLI
    run can set them.

    Args:
        model: the served model name, optionally ``name@base_url``.
        base_url: the server's OpenAI base URL (``http://host:port/v1``).
        max_concurrency: requests in flight to the server at once, over all threads of the process.
        timeout: seconds per request attempt (connect, and each read).
        max_retries: retries per request after the first attempt.
        backoff: first retry delay in seconds (doubles each retry, with jitter, capped at ``max_backoff``).
        max_backoff: the cap on one retry delay.
        guided: ``"auto"`` (send schemas, stop when the server rejects them), ``"always"`` or ``"never"``.
        client: ``"http"`` (the lean client, default) or ``"sdk"`` (the official ``openai`` package;
            about 2-3 ms of CPU per request against a few tenths of a millisecond).
    """

    name = "openai"

    def __init__(self, model: str, base_url: str | None = None, max_concurrency: int | None = None,
                 timeout: float | None = None, max_retries: int | None = None, backoff: float | None = None,
                 max_backoff: float = 20.0, guided: str = "auto", client: str | None = None):
        super().__init__()
        max_concurrency, timeout = setting("max_concurrency", max_concurrency), setting("timeout", timeout)
        max_retries, backoff = setting("max_retries", max_retries), setting("backoff", backoff)
        client = setting("client", client)
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
        if client not in ("http", "sdk"):
            raise ValueError(f"client must be 'http' (the lean client) or 'sdk' (the openai package), got {client!r}")
        self.model, self.base_url = split_model_url(model, base_url)
        self.max_concurrency, self.timeout, self.max_retries = max_concurrency, float(timeout), max_retries
        self.backoff, self.max_backoff, self.guided, self.client = float(backoff), float(max_backoff), guided, client
        self.served: dict[str, Any] | None = None  # what the server says of the model (set by health())
        self._guided_ok = guided != "never"
        self._init_transient()

    def _init_transient(self) -> None:
        self._http: JSONClient | None = None
        self._sdk: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_http", "_sdk", "_pool", "_slots", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_transient()

    @property
    def where(self) -> str:
        return self.base_url or OPENAI_URL

    def _clients(self) -> None:
        """Build the connection pool (and the SDK client when used) in this process."""
        if self._pid != os.getpid():  # a forked worker builds its own connections
            self._init_transient()
        with self._lock:
            if self._http is None:
                self._http = JSONClient(self.where, api_key_from_env())
                self._pool = ThreadPoolExecutor(min(self.max_concurrency, 64), thread_name_prefix="msc-llm")
                if self.client == "sdk":
                    self._sdk = make_client(self.base_url, self.timeout, 0, "the OpenAI-compatible backend (client='sdk')")

    def health(self) -> None:
        """Raise :class:`BackendUnavailableError` unless the server lists models (``GET /models``);
        what it says of this model (id, root, max_model_len) is kept in ``served``."""
        self._clients()
        assert self._http is not None
        try:
            listing = self._http.request("GET", "/models", timeout=min(self.timeout, 10.0))
        except (HTTPStatusError, TransportError) as e:
            raise BackendUnavailableError(f"model server {self.where} is not up ({e}); start it "
                                          f"(see slurm/README.md), then run again") from e
        data = listing.get("data", []) if isinstance(listing, dict) else []
        for m in data:
            if isinstance(m, dict) and m.get("id") == self.model:
                self.served = {k: m[k] for k in ("id", "root", "max_model_len") if k in m}
                break
        else:
            self.served = {"id": self.model, "listed": sorted(str(m.get("id")) for m in data if isinstance(m, dict))}

    @staticmethod
    def _classify(e: Exception) -> tuple[str, bool]:
        """(fault kind, retryable)."""
        if isinstance(e, HTTPStatusError):
            return str(e.status), e.status in (408, 409, 429) or e.status >= 500
        if isinstance(e, TransportError):
            return e.kind, True
        if isinstance(e, (ValueError, KeyError, IndexError, TypeError)):
            return "malformed", True
        try:
            import openai
        except ImportError:  # pragma: no cover - only the SDK raises anything else
            return type(e).__name__, False
        if isinstance(e, openai.APITimeoutError):
            return "timeout", True
        if isinstance(e, openai.APIConnectionError):
            return "connection", True
        if isinstance(e, openai.APIStatusError):
            code = int(getattr(e, "status_code", 0) or 0)
            return str(code), code in (408, 409, 429) or code >= 500
        if isinstance(e, openai.APIResponseValidationError):
            return "malformed", True
        return type(e).__name__, False

    def _post(self, payload: dict[str, Any], purpose: str, timeout: float) -> tuple[str, int, int]:
        """One attempt: (text, prompt tokens, completion tokens)."""
        headers = {"X-MSC-Purpose": purpose}
        if self._sdk is not None:
            resp = self._sdk.with_options(timeout=timeout).chat.completions.create(**payload, extra_headers=headers)
            text, usage = resp.choices[0].message.content, getattr(resp, "usage", None)
            prompt, completion = getattr(usage, "prompt_tokens", 0), getattr(usage, "completion_tokens", 0)
        else:
            assert self._http is not None
            body = self._http.request("POST", "/chat/completions", payload, timeout=timeout, headers=headers)
            text = body["choices"][0]["message"]["content"]
            usage = body.get("usage") or {}
            prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        if not isinstance(text, str):
            raise ValueError("the server's reply has no message content")
        return text, int(prompt or 0), int(completion or 0)

    def _wait(self, seconds: float | None, what: str) -> float:
        """``seconds`` capped by the session's deadline; :class:`DeadlineExceeded` when none is left."""
        left = remaining_time()
        if left is None:
            return seconds if seconds is not None else self.timeout
        if left <= 0:
            raise DeadlineExceeded(f"the session's time limit ran out {what} (model {self.model!r} at {self.where})")
        return left if seconds is None else min(seconds, left)

    def _one(self, r: ChatRequest) -> ChatResponse:
        payload: dict[str, Any] = {
            "model": self.model, "messages": [{"role": m.role, "content": m.content} for m in r.messages],
            "max_tokens": r.max_tokens, "temperature": r.temperature,
        }
        if r.seed is not None:
            payload["seed"] = int(r.seed)  # < 2**63: vLLM and OpenAI take 64-bit seeds
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            guided = r.response_format is not None and self._guided_ok
            if guided:
                payload["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": "reply", "schema": dict(r.response_format or {}), "strict": False}}
            else:
                payload.pop("response_format", None)
            if not self._slots.acquire(timeout=self._wait(None, "waiting for a free request slot")):
                raise DeadlineExceeded(f"the session's time limit ran out waiting for a request slot of {self.where}")
            t0 = time.perf_counter()
            try:
                text, prompt, completion = self._post(payload, r.purpose, self._wait(self.timeout, "before a request"))
                return ChatResponse(text, prompt_tokens=prompt, completion_tokens=completion,
                                    meta={"latency_s": time.perf_counter() - t0, "attempts": attempt + 1})
            except DeadlineExceeded:
                raise
            except Exception as e:  # noqa: BLE001 - classified below
                kind, retryable = self._classify(e)
                left = remaining_time()
                if kind == "timeout" and left is not None and left < 0.05:  # the session's limit, not the server
                    raise DeadlineExceeded(f"the session's time limit ran out waiting for model {self.model!r} at "
                                           f"{self.where}") from e
                if kind == "400" and guided and self.guided == "auto":
                    self._guided_ok = False  # the server does not take json_schema: validate upstream instead
                    continue
                self.count_fault(kind)
                last = e
                if not retryable or attempt == self.max_retries:
                    break
            finally:
                self._slots.release()
            self.count("retries")
            delay = min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)
            time.sleep(self._wait(delay, "during a retry backoff"))
        raise BackendUnavailableError(f"model server {self.where} failed {self.max_retries + 1} times for model "
                                      f"{self.model!r} (last: {type(last).__name__}: {str(last)[:120]}); check the "
                                      f"server, then rerun with --resume")

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        self._clients()
        if len(requests) == 1:
            return [self._one(requests[0])]
        assert self._pool is not None
        ctx = current_context()  # the pool's threads account to, and stop at, the caller's context
        return list(self._pool.map(lambda r: in_context(ctx, self._one, r), requests))
