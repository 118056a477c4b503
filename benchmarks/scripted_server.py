"""A local OpenAI-compatible server that answers with the embedded models, and injects faults.

It lets the whole real-backend path (``openai`` client, retries, JSON repair, LLM user simulator,
response cache, resume) run on a laptop and in tests, with no GPU::

    python -m benchmarks.scripted_server --port 8000 --fault-rate 0.2
    msc run --user llm:openai:scripted@http://127.0.0.1:8000/v1 --agent-model openai:scripted@http://127.0.0.1:8000/v1

Endpoints: ``POST /v1/chat/completions`` (the scripted backend; the role comes from the
``X-MSC-Purpose`` header the package's client sends, ``reply`` otherwise), ``GET /v1/models``,
``POST /v1/embeddings`` (the hashing embedder), ``POST /score`` and ``POST /rerank`` (vLLM's score
and rerank shapes, the lexical reranker), ``GET /health``, ``GET /stats`` (requests and faults so far). Faults, drawn per request with a seeded
generator: ``429`` and ``500`` responses, ``timeout`` (the answer comes after ``hang`` seconds),
``malformed`` (a truncated JSON body) and ``bad_content`` (a reply that breaks the requested JSON
schema; only requests with a schema get it); plus fixed ``latency``. With no faults the answers are
exactly the in-process scripted backend's (same request, same seed, same text). Loopback only; request lines are not logged and the
``Authorization`` header is only kept as a hash, so tests can check a key was sent without storing it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from personalization_env.llm.base import PURPOSES, ChatRequest
from personalization_env.llm.scripted import ScriptedBackend
from personalization_env.types import Message

FAULT_KINDS: tuple[str, ...] = ("429", "500", "timeout", "malformed", "bad_content")


@dataclass
class Faults:
    """What the server breaks.

    Args:
        rate: probability that a chat request gets a fault.
        kinds: the faults drawn from (uniformly).
        latency: seconds added to every chat request.
        hang: seconds a ``timeout`` fault waits before answering.
        seed: seed of the fault draws.
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    latency: float = 0.0
    hang: float = 2.0
    seed: int = 0
    injected: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be in [0, 1], got {self.rate!r}")
        bad = sorted(set(self.kinds) - set(FAULT_KINDS))
        if bad:
            raise ValueError(f"unknown fault kind(s) {bad}; known: {list(FAULT_KINDS)}")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def cancel(self, kind: str) -> None:
        """Take back a drawn fault that does not apply to the request (bad_content without a schema)."""
        with self._lock:
            self.injected[kind] -= 1
            if not self.injected[kind]:
                del self.injected[kind]

    def draw(self) -> str | None:
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            kind = self.kinds[self._rng.randrange(len(self.kinds))]
            self.injected[kind] = self.injected.get(kind, 0) + 1
            return kind


class ScriptedServer:
    """The server (see module docstring); ``start()`` runs it in a daemon thread.

    Args:
        port: TCP port on 127.0.0.1 (0 picks a free one).
        faults: a :class:`Faults`.
        api_key: when set, requests without ``Authorization: Bearer <api_key>`` get 401.
        model_name: the name ``/v1/models`` lists (any name is accepted in requests).
        die_after: the server dies (drops the connection, then stops listening) at this many chat
            requests, as a crashed server would; None: never.
    """

    def __init__(self, port: int = 0, faults: Faults | None = None, api_key: str | None = None,
                 model_name: str = "scripted", die_after: int | None = None):
        self.faults = faults or Faults()
        self.die_after = die_after
        self.model_name = model_name
        self._key_hash = _hash(api_key) if api_key else None
        self.backend = ScriptedBackend()
        self._embedder: Any = None
        self._reranker: Any = None
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.auth_hashes: set[str] = set()
        self._conns: set[Any] = set()
        self.httpd = _QuietServer(("127.0.0.1", port), _handler(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "ScriptedServer":
        # warm the embedded model's cold paths (catalogue and recogniser; math-verify's first import takes
        # about 0.3 s) so that no early request outlasts a short client timeout
        from personalization_env.tasks import is_correct, load_tasks

        self.backend.generate([ChatRequest((Message("system", "Be helpful."), Message("user", "Please use bullet points.")))])
        task = load_tasks("gen_math", n=1)[0]
        is_correct(task, task.answer)
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="scripted-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop open keep-alive connections (as a crashed server would)."""
        import socket

        self.httpd.shutdown()
        self.httpd.server_close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def count(self, key: str) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    # ---- endpoint bodies ----------------------------------------------------------------------
    def chat(self, body: dict[str, Any], purpose: str, fault: str | None) -> dict[str, Any]:
        msgs = tuple(Message(m["role"], m["content"] if isinstance(m["content"], str) else json.dumps(m["content"]))
                     for m in body["messages"])
        fmt = body.get("response_format") or {}
        schema = fmt.get("json_schema", {}).get("schema") if fmt.get("type") == "json_schema" else None
        req = ChatRequest(msgs, purpose=purpose if purpose in PURPOSES else "reply",
                          max_tokens=int(body.get("max_tokens") or 1024),
                          temperature=float(body.get("temperature", 0.7)), seed=body.get("seed"),
                          response_format=schema)
        with self._lock:
            resp = self.backend.generate([req])[0]
        text = resp.text
        if fault == "bad_content" and schema is None:
            self.faults.cancel(fault)  # only structured replies can break their schema
        elif fault == "bad_content":
            text = "Sure! Here is what I think: " + text[: max(0, len(text) // 2)]
        return {"id": f"chatcmpl-{hashlib.sha1(text.encode()).hexdigest()[:12]}", "object": "chat.completion",
                "created": int(time.time()), "model": body.get("model", self.model_name),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": resp.prompt_tokens, "completion_tokens": resp.completion_tokens,
                          "total_tokens": resp.prompt_tokens + resp.completion_tokens}}

    def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._embedder is None:
            from agents.memory.embedders import HashingEmbedder

            self._embedder = HashingEmbedder()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vecs = self._embedder.encode([str(t) for t in texts])
        return {"object": "list", "model": body.get("model", self.model_name),
                "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vecs)],
                "usage": {"prompt_tokens": sum(len(str(t)) // 4 + 1 for t in texts), "total_tokens": 0}}

    def _rerank_scores(self, query: str, docs: list[str]) -> list[float]:
        if self._reranker is None:
            from agents.memory.rerankers import LexicalReranker

            self._reranker = LexicalReranker()
        return [float(s) for s in self._reranker.score(query, docs)]

    def score(self, body: dict[str, Any]) -> dict[str, Any]:
        docs = body["text_2"] if isinstance(body["text_2"], list) else [body["text_2"]]
        scores = self._rerank_scores(str(body["text_1"]), [str(d) for d in docs])
        return {"object": "list", "model": body.get("model", self.model_name),
                "data": [{"index": i, "object": "score", "score": s} for i, s in enumerate(scores)]}

    def rerank(self, body: dict[str, Any]) -> dict[str, Any]:
        docs = [d if isinstance(d, str) else d.get("text", "") for d in body["documents"]]
        scores = self._rerank_scores(str(body["query"]), docs)
        order = sorted(range(len(docs)), key=lambda i: -scores[i])[: int(body.get("top_n") or len(docs))]
        return {"model": body.get("model", self.model_name),
                "results": [{"index": i, "relevance_score": scores[i], "document": {"text": docs[i]}} for i in order]}


class _QuietServer(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 drops concurrent connects (a 1 s SYN retry)
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):  # a client that gave up
            super().handle_error(request, client_address)


def _hash(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def _handler(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else every keep-alive response stalls ~40 ms

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence request logs
            return

        def setup(self) -> None:
            super().setup()
            with server._lock:
                server._conns.add(self.connection)

        def finish(self) -> None:
            with server._lock:
                server._conns.discard(self.connection)
            super().finish()

        def _send(self, code: int, payload: bytes, content_type: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _json(self, code: int, obj: Any) -> None:
            self._send(code, json.dumps(obj).encode())

        def _authorized(self) -> bool:
            auth = self.headers.get("Authorization", "")
            if auth:
                server.auth_hashes.add(_hash(auth.removeprefix("Bearer ").strip()))
            if server._key_hash is None:
                return True
            if _hash(auth.removeprefix("Bearer ").strip()) != server._key_hash:
                self._json(401, {"error": {"message": "invalid API key", "type": "authentication_error"}})
                return False
            return True

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path.rstrip("/") in ("/health", "/v1/health"):
                self._json(200, {"status": "ok"})
            elif self.path.rstrip("/") == "/stats":
                self._json(200, {"requests": dict(server.counts), "faults_injected": dict(server.faults.injected)})
            elif self.path.rstrip("/") in ("/v1/models", "/models"):
                if self._authorized():
                    self._json(200, {"object": "list", "data": [{"id": server.model_name, "object": "model",
                                                                 "owned_by": "multisessioncollab"}]})
            else:
                self._json(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:  # noqa: N802
            n = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(n)
            if not self._authorized():
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._json(400, {"error": {"message": "request body is not JSON"}})
                return
            path = self.path.rstrip("/")
            try:
                if path in ("/v1/chat/completions", "/chat/completions"):
                    self._chat(body)
                elif path in ("/v1/embeddings", "/embeddings"):
                    server.count("embeddings")
                    self._json(200, server.embeddings(body))
                elif path in ("/score", "/v1/score"):
                    server.count("score")
                    self._json(200, server.score(body))
                elif path in ("/rerank", "/v1/rerank"):
                    server.count("rerank")
                    self._json(200, server.rerank(body))
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}"}})
            except (KeyError, TypeError, ValueError) as e:
                self._json(400, {"error": {"message": f"bad request: {type(e).__name__}: {e}"}})

        def _chat(self, body: dict[str, Any]) -> None:
            purpose = self.headers.get("X-MSC-Purpose", "reply")
            server.count("chat")
            if server.die_after is not None and server.counts["chat"] >= server.die_after:
                self.close_connection = True  # no answer: the connection just drops
                threading.Thread(target=server.stop, daemon=True).start()
                return
            f = server.faults
            fault = f.draw()
            if f.latency:
                time.sleep(f.latency)
            if fault == "429":
                self._json(429, {"error": {"message": "rate limited (injected)", "type": "rate_limit"}})
                return
            if fault == "500":
                self._json(500, {"error": {"message": "internal error (injected)", "type": "server_error"}})
                return
            if fault == "timeout":
                time.sleep(f.hang)
            payload = json.dumps(server.chat(body, purpose, fault)).encode()
            if fault == "malformed":
                payload = payload[: len(payload) // 2]
                self._send(200, payload)
                return
            server.count(f"chat_ok_{purpose}")
            self._send(200, payload)

    return Handler


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--faults", default=",".join(FAULT_KINDS), help="comma-separated fault kinds")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every chat request")
    p.add_argument("--hang", type=float, default=2.0, help="seconds a 'timeout' fault waits")
    p.add_argument("--datasets", default="gen_math,gen_logic,gen_mc",
                   help="task datasets to load, so the scripted user can find the tasks it is asked about")
    p.add_argument("--data-dir", default=None)
    a = p.parse_args(argv)
    from personalization_env.tasks import load_tasks

    for d in a.datasets.split(","):
        load_tasks(d.strip(), data_dir=a.data_dir)
    srv = ScriptedServer(a.port, Faults(a.fault_rate, tuple(k.strip() for k in a.faults.split(",")), a.latency, a.hang))
    print(f"scripted OpenAI-compatible server on {srv.base_url} (faults: {a.fault_rate:.0%})", flush=True)
    try:
        srv.httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
