"""A content-addressed response cache: replayable runs and cheap resumes.

The key is a hash of (model id, purpose, messages, max_tokens, temperature, seed, response format);
the server's address is not part of it, so a run moved to another node still hits. Entries live in
one SQLite file per folder (``<folder>/responses.sqlite``, WAL mode, safe for the runner's worker
processes). With ``replay=True`` a miss is an error instead of a model call, so a replayed run
provably makes no calls.

Many lanes (threads) share one cache without waiting for each other: each thread reads through a
connection of its own (WAL readers do not block), and new entries go to one writer thread that
commits them in batches; until then lookups find them in memory. A request that another lane is
asking at the same moment is not sent twice: the second lane waits for the first one's answer, as
it would find it in the cache had it come later, so concurrent lanes see the same replies as one. :meth:`CachedBackend.flush` waits
until the calling lane's entries are on disk (the runner calls it before a session's checkpoint, so
a replay finds every call of every recorded session).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any

from personalization_env.llm.base import ChatBackend, ChatRequest, ChatResponse, DeadlineExceeded, remaining_time


class CacheMissError(KeyError):
    """A replayed run asked for a response the cache does not hold."""


def request_key(model_id: str, r: ChatRequest) -> str:
    """The cache key of request ``r`` to model ``model_id``."""
    payload = {"model": model_id, "purpose": r.purpose, "messages": [[m.role, m.content] for m in r.messages],
               "max_tokens": r.max_tokens, "temperature": r.temperature, "seed": r.seed,
               "response_format": r.response_format}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class CachedBackend(ChatBackend):
    """Wraps a backend with the response cache (see module docstring).

    Args:
        inner: the backend that answers misses.
        folder: the cache folder (created).
        replay: a miss raises :class:`CacheMissError` instead of calling ``inner``.
    """

    name = "cached"
    _TRANSIENT = ("_tls", "_lock", "_pending", "_inflight", "_queue", "_writer", "_stored", "_committed", "_done",
                  "_pid")

    def __init__(self, inner: ChatBackend, folder: str | os.PathLike[str], replay: bool = False):
        super().__init__()
        self.inner, self.folder, self.replay = inner, Path(folder), replay
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "responses.sqlite"
        self.stats = inner.stats  # faults and repairs are the inner backend's
        inner.account_to = self  # ... and a lane's meter counts them under this wrapper, with the calls
        self.hits = self.misses = 0
        self._open().close()  # create the table now, so readers never race its creation
        self._init_transient()

    def _init_transient(self) -> None:
        self._tls = threading.local()
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[str, int, int, str]] = {}  # written, not yet committed
        self._inflight: dict[str, threading.Event] = {}  # asked of the model right now
        self._queue: queue.Queue[tuple[int, list[tuple[str, str, int, int, str]]]] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._stored = self._committed = 0  # sequence numbers of the batches stored and committed
        self._done = threading.Condition(self._lock)
        self._pid = os.getpid()

    @property
    def cache_id(self) -> str:
        return self.inner.cache_id

    @property
    def model(self) -> str:
        return getattr(self.inner, "model", "")

    def __getstate__(self) -> dict[str, Any]:
        self.flush(everyone=True)
        return {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_transient()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # no fsync per commit: a killed process loses nothing (the WAL is in the OS), and a lost
        # entry after a power cut is only a cache miss; a commit then costs microseconds, not a disk flush
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
                     "prompt_tokens INTEGER, completion_tokens INTEGER, meta TEXT)")
        conn.commit()
        return conn

    def _reader(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # a forked worker: its own connections and writer
            self._init_transient()
        conn = getattr(self._tls, "conn", None)
        if conn is None:
            conn = self._tls.conn = self._open()
        return conn

    def _write_loop(self) -> None:
        conn = self._open()
        while True:
            batches = [self._queue.get()]
            while True:
                try:
                    batches.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [row for _, b in batches for row in b]
            conn.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", rows)
            conn.commit()
            with self._done:
                for row in rows:
                    if self._pending.get(row[0]) == row[1:]:
                        del self._pending[row[0]]
                self._committed = max(seq for seq, _ in batches)  # batches come in order
                self._done.notify_all()

    def _store(self, rows: list[tuple[str, str, int, int, str]]) -> None:
        with self._lock:
            self._pending.update((r[0], r[1:]) for r in rows)
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, name="msc-cache-writer", daemon=True)
                self._writer.start()
            self._stored += 1
            self._tls.last = self._stored
            self._queue.put((self._stored, rows))  # under the lock: the queue holds the batches in order

    def flush(self, everyone: bool = False) -> None:
        """Wait until the entries this thread stored (``everyone``: all threads) are committed to disk;
        a lane waits for its own replies, not for what other lanes keep adding."""
        if self._pid != os.getpid():
            return
        with self._done:
            target = self._stored if everyone else getattr(self._tls, "last", 0)
            while self._committed < target:
                self._done.wait()

    def __len__(self) -> int:
        self.flush(everyone=True)
        return int(self._reader().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def _lookup(self, keys: set[str]) -> dict[str, ChatResponse]:
        db = self._reader()
        found = {}
        for k in keys:
            with self._lock:
                row = self._pending.get(k)
            if row is None:
                row = db.execute("SELECT text, prompt_tokens, completion_tokens, meta FROM responses WHERE key = ?",
                                 (k,)).fetchone()
            if row is not None:
                meta = {**json.loads(row[3] or "{}"), "cached": True, "latency_s": 0.0}
                found[k] = ChatResponse(row[0], int(row[1] or 0), int(row[2] or 0), meta)
        return found

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        keys = [request_key(self.cache_id, r) for r in requests]
        found = self._lookup(set(keys))
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        if todo and self.replay:
            raise CacheMissError(f"{len(todo)} request(s) are not in the response cache {self.path} "
                                 f"(replay mode makes no model calls); run without replay to fill it")
        first = {k: keys.index(k) for k in todo}
        fetched: set[str] = set()
        while todo:
            # a request another lane is asking right now is not asked twice: its answer is waited for
            # (so concurrent lanes get the same answers a one-lane run would get from the cache)
            mine, theirs = [], []
            with self._lock:
                for k in todo:
                    if k in self._inflight:
                        theirs.append((k, self._inflight[k]))
                    else:
                        self._inflight[k] = threading.Event()
                        mine.append(k)
            if mine:  # a lane may have stored one of them since our lookup: look once more
                late = self._lookup(set(mine))
                if late:
                    found.update(late)
                    with self._lock:
                        for k in late:
                            self._inflight.pop(k).set()
                    mine = [k for k in mine if k not in late]
            if mine:
                try:
                    answers = self.inner.generate([requests[first[k]] for k in mine])
                    self._store([(k, a.text, a.prompt_tokens, a.completion_tokens, json.dumps(dict(a.meta)))
                                 for k, a in zip(mine, answers)])
                    found.update(zip(mine, answers))
                    fetched.update(mine)
                finally:
                    with self._lock:
                        for k in mine:
                            self._inflight.pop(k).set()
            for _, event in theirs:
                left = remaining_time()
                if not event.wait(timeout=None if left is None else max(left, 0.0)):
                    raise DeadlineExceeded("the session's time limit ran out waiting for a reply another lane "
                                           "asked for")
            found.update(self._lookup({k for k, _ in theirs}))
            todo = [k for k, _ in theirs if k not in found]  # the lane that asked failed: ask ourselves
        hits = sum(k not in fetched for k in keys)
        with self._lock:
            self.hits += hits
            self.misses += len(keys) - hits
        if hits:
            self.count("cache_hits", hits)
        return [found[k] for k in keys]
