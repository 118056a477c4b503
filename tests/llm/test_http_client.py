"""The lean HTTP client and the backend's request path: keep-alive reuse, a connection the server
closed, error kinds, the SDK client option, session deadlines, per-lane meters."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from personalization_env.llm import ChatRequest, make_backend
from personalization_env.llm.base import DeadlineExceeded, UsageMeter, call_context
from personalization_env.llm.http_client import HTTPStatusError, JSONClient, TransportError
from personalization_env.types import Message


class Server:
    """A loopback server that answers chat requests, counts connections, and can close every
    connection after its first answer without saying so (as a server whose keep-alive expired)."""

    def __init__(self, drop_idle: bool = False, status: int = 200, body: bytes | None = None, delay: float = 0.0):
        outer, lock = self, threading.Lock()
        self.connections = 0
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                return

            def setup(self):
                super().setup()
                outer.connections += 1

            def do_GET(self):
                self._answer({"data": [{"id": "m", "root": "/models/m", "max_model_len": 4096}]})

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    outer.requests += 1
                    n = outer.requests
                time.sleep(delay)
                self._answer({"choices": [{"message": {"content": f"reply {n}"}}],
                              "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
                if drop_idle:
                    self.close_connection = True  # closed without a "Connection: close" header

            def _answer(self, obj):
                payload = body if body is not None else json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def req(text: str = "hi") -> ChatRequest:
    return ChatRequest((Message("user", text),), seed=1)


def test_connections_are_kept_alive_and_reused():
    srv = Server()
    try:
        c = JSONClient(srv.url)
        for _ in range(5):
            assert c.request("POST", "/chat/completions", {"x": 1}, timeout=5)["choices"]
        assert (srv.requests, srv.connections) == (5, 1)
    finally:
        srv.close()


def test_a_connection_the_server_closed_is_replaced_without_a_fault():
    srv = Server(drop_idle=True)
    try:
        b = make_backend(f"openai:m@{srv.url}", max_retries=0)
        texts = [b.generate([req()])[0].text for _ in range(3)]
        assert texts == ["reply 1", "reply 2", "reply 3"]
        assert srv.connections == 3 and b.stats["faults"] == {} and b.stats["retries"] == 0
    finally:
        srv.close()


def test_error_kinds():
    srv = Server(status=404, body=b'{"error": {"message": "no such model"}}')
    try:
        with pytest.raises(HTTPStatusError, match="404: no such model") as e:
            JSONClient(srv.url).request("POST", "/chat/completions", {}, timeout=5)
        assert e.value.status == 404
    finally:
        srv.close()
    srv = Server(body=b'{"choices": [')
    try:
        with pytest.raises(TransportError, match="malformed"):
            JSONClient(srv.url).request("POST", "/chat/completions", {}, timeout=5)
    finally:
        srv.close()
    url = srv.url  # closed now: nothing listens there
    with pytest.raises(TransportError) as e:
        JSONClient(url).request("GET", "/models", timeout=5)
    assert e.value.kind == "connection"
    with pytest.raises(ValueError, match="http://host:port/v1"):
        JSONClient("localhost:8000")


def test_health_records_what_the_server_serves():
    srv = Server()
    try:
        b = make_backend(f"openai:m@{srv.url}")
        b.health()
        assert b.served == {"id": "m", "root": "/models/m", "max_model_len": 4096}
    finally:
        srv.close()


def test_the_sdk_client_is_still_available():
    pytest.importorskip("openai")
    srv = Server()
    try:
        b = make_backend(f"openai:m@{srv.url}", client="sdk")
        out = b.generate([req("a"), req("b")])
        assert sorted(o.text for o in out) == ["reply 1", "reply 2"] and out[0].prompt_tokens == 3
    finally:
        srv.close()
    with pytest.raises(ValueError, match="client must be"):
        make_backend("openai:m@http://x/v1", client="curl")


def test_a_session_deadline_stops_a_slow_call_and_is_not_a_server_fault():
    srv = Server(delay=1.0)
    try:
        b = make_backend(f"openai:m@{srv.url}", max_retries=3)
        t0 = time.perf_counter()
        with call_context(time_limit=0.3), pytest.raises(DeadlineExceeded):
            b.generate([req()])
        assert time.perf_counter() - t0 < 0.9
        assert b.stats["retries"] == 0 and b.stats["faults"] == {}  # the limit was the session's, not a server fault
    finally:
        srv.close()


def test_meters_count_each_thread_s_own_calls():
    srv = Server(delay=0.05)
    try:
        b = make_backend(f"openai:m@{srv.url}")
        meters = [UsageMeter() for _ in range(4)]

        def lane(i: int) -> None:
            with call_context(meters[i]):
                b.generate([req(str(k)) for k in range(i + 1)])  # a batch of i + 1 requests
                b.generate([req("one more")])

        threads = [threading.Thread(target=lane, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [m.counts(b)["calls"] for m in meters] == [2, 3, 4, 5]
        assert all(m.counts(b)["tokens"] == 5 * m.counts(b)["calls"] for m in meters)
        assert b.usage["reply"]["calls"] == 14
    finally:
        srv.close()
