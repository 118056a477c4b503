"""A lean keep-alive JSON client for OpenAI-compatible servers, shared by the threads of a run.

Why not the official ``openai`` SDK for every call: a harness that keeps a 64-slot server full at
0.2 s per reply makes 320 requests per second, and a 256-slot one 1,280, so the client's CPU per
request decides how full a 2-core harness keeps the server. ``python -m benchmarks.harness_efficiency``
measures both clients side by side (the README has its figures). This client (``http.client`` over a
pool of persistent HTTP/1.1 connections, one JSON encode and one decode per call) does as little per
call as the protocol allows. The backends use it by default; ``client="sdk"`` on
:class:`~personalization_env.llm.openai_backend.OpenAIBackend` switches to the SDK.

Errors come as two exceptions: :class:`HTTPStatusError` (the server answered with a status >= 400)
and :class:`TransportError` with a ``kind`` of ``"timeout"``, ``"connection"`` or ``"malformed"``
(a body cut short or not JSON). Retrying is the caller's business; the one retry done here is on a
pooled connection the server had already closed (keep-alive expiry), which is not a fault.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
from typing import Any, Mapping
from urllib.parse import urlsplit


class HTTPStatusError(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


class TransportError(Exception):
    """No usable answer: ``kind`` is ``"timeout"``, ``"connection"`` or ``"malformed"``."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def _error_detail(raw: bytes) -> str:
    try:
        body = json.loads(raw)
        msg = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(msg, dict):
            msg = msg.get("message", msg)
        return str(msg)[:200]
    except ValueError:
        return raw[:200].decode("utf-8", "replace")


class JSONClient:
    """JSON requests to one server, over a pool of keep-alive connections (thread-safe).

    Args:
        base_url: ``http://host:port/prefix`` (``https`` works too); paths of requests are appended.
        api_key: sent as ``Authorization: Bearer <key>``; kept out of ``repr`` and pickles.
    """

    def __init__(self, base_url: str, api_key: str | None = None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a server URL looks like http://host:port/v1, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._headers = {"Accept": "application/json", "User-Agent": "multisessioncollab"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"JSONClient({self.base_url!r})"

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a JSONClient holds sockets and a key; pickle the backend that owns it instead")

    def _take(self, fresh: bool) -> http.client.HTTPConnection:
        with self._lock:
            if self._pid != os.getpid():  # a forked child must not share its parent's sockets
                self._idle, self._pid = [], os.getpid()
            if self._idle and not fresh:
                return self._idle.pop()
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, context=ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port)

    def _give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.append(conn)

    def close(self) -> None:
        """Close the idle connections (connections in use close when their request ends)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for c in idle:
            c.close()

    def request(self, method: str, path: str, payload: Any = None, *, timeout: float,
                headers: Mapping[str, str] | None = None) -> Any:
        """Send one request and return the parsed JSON body.

        Args:
            method: ``"GET"`` or ``"POST"``.
            path: appended to the base URL's path (``"/chat/completions"``).
            payload: the JSON body (None: no body).
            timeout: seconds for the connect and for each read.
            headers: extra headers.

        Raises:
            HTTPStatusError: status >= 400.
            TransportError: timeout, connection failure, or a body that is cut short or not JSON.
        """
        body = None if payload is None else json.dumps(payload).encode()
        hdrs = {**self._headers, **(headers or {})}
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        for fresh in (False, True):
            conn = self._take(fresh)
            reused = conn.sock is not None
            try:
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
                conn.request(method, self._prefix + path, body=body, headers=hdrs)
                resp = conn.getresponse()
                raw = resp.read()
            except TimeoutError as e:
                conn.close()
                raise TransportError("timeout", f"no answer within {timeout:g} s") from e
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                conn.close()
                if reused and not fresh:
                    continue  # the server closed an idle keep-alive connection: try once on a new one
                raise TransportError("connection", type(e).__name__) from e
            except http.client.HTTPException as e:  # IncompleteRead, BadStatusLine, ...
                conn.close()
                raise TransportError("malformed", type(e).__name__) from e
            except OSError as e:  # refused, unreachable, reset during connect
                conn.close()
                raise TransportError("connection", type(e).__name__) from e
            if resp.will_close:
                conn.close()
            else:
                self._give(conn)
            if resp.status >= 400:
                raise HTTPStatusError(resp.status, _error_detail(raw))
            try:
                return json.loads(raw)
            except ValueError as e:
                raise TransportError("malformed", f"the body is not JSON ({len(raw)} bytes)") from e
        raise AssertionError("unreachable")  # pragma: no cover
