"""Lanes: a (method, user) pair running its sessions in order, many lanes at once in one process.

A lane's sessions run one after another (the agent's memory of the user depends on their order);
lanes are independent, so a process runs up to ``lanes`` of them at once, each on its own thread.
While a lane waits for a model reply it holds no CPU, so with model servers in the loop the servers
see one request in flight per busy lane (up to each backend's ``max_concurrency``), and no lane
waits for another: there is no batch barrier and no lock-step. The CPU-bound embedded world gains
nothing from threads (one core runs Python at a time); it scales with worker processes instead,
and both combine (``workers`` processes x ``lanes`` threads).

Every lane builds its own env and agent (one user each), sharing what is read-only or built for
sharing: the profiles and tasks, the user simulator, the feedback classifier and the model backends.
Results are therefore identical whatever the number of lanes or workers.

After each finished session the lane pickles its checkpoint (:mod:`benchmarks.checkpoint`) and hands
it to the pool's writer thread, which writes it and only then lets the row be reported: the lane goes
on with its next session instead of waiting on the disk, and a row is never reported before its
checkpoint is written. A session that fails (an exception, or its time limit) is reported as a
``status="error"`` row with the reason, and its lane stops there: the agent's memory after a
broken session is not trusted, and ``--resume`` retries the lane from its last checkpoint. A
session wedged in code that never returns (no model call to stop it at) is given up after its time
limit plus a grace period: its row is reported, its thread is abandoned, and another thread takes
its place.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from agents.base import Agent, strip_oracle
from benchmarks import checkpoint
from benchmarks.checkpoint import LaneCheckpoint
from personalization_env.env import MultiSessionCollabEnv
from personalization_env.llm.base import BackendUnavailableError, ChatBackend, UsageMeter, call_context

logger = logging.getLogger(__name__)

#: extra seconds past a session's time limit before its thread is given up as wedged
WEDGE_GRACE_S = 30.0


@contextmanager
def single_threaded_math() -> Iterator[None]:
    """One thread for BLAS, OpenMP (FAISS) and torch inside the block: lanes and worker processes
    already keep the cores busy, and math libraries starting threads of their own on top only fight
    over them (small matrices, many callers). It also makes floating-point results independent of
    how a run is spread out: a torch reduction over two threads can differ from one in the last bit."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(1):
        if torch is not None:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch is not None and before is not None:
                torch.set_num_threads(before)


@dataclass(frozen=True)
class Lane:
    """One (method, user) pair; ``resume_from`` continues after the sessions of a checkpoint."""

    method: str
    user_id: str
    resume_from: LaneCheckpoint | None = None


def backends_of(env: MultiSessionCollabEnv, agent: Agent | None = None) -> dict[str, ChatBackend]:
    """The model backends a lane uses, by role (for health checks and per-session accounting)."""
    out: dict[str, ChatBackend] = {}
    for role, owner in (("agent", agent), ("user", env.simulator), ("judge", env.classifier)):
        b = getattr(owner, "backend", None)
        if isinstance(b, ChatBackend) and b.name != "scripted":
            out[role] = b
    return out


def run_session(env: MultiSessionCollabEnv, agent: Agent, user_id: str, session: int, *,
                seed: int | None = None, time_limit: float | None = None, transcript: bool = False) -> dict[str, Any]:
    """Run the user's next session; returns its row (``status`` ``"ok"`` or ``"error"`` with the reason).

    Args:
        env: the lane's env (``seed`` starts a fresh lifetime with this session).
        agent: the lane's agent.
        user_id: the user.
        session: the session's index (for the row when the session fails before it starts).
        seed: seed of a fresh lifetime (the lane's first session), else None.
        time_limit: seconds the session may take (model calls stop with ``DeadlineExceeded`` past it).
        transcript: also record the session's messages (``row["transcript"]``: [role, text] pairs).

    Raises:
        BackendUnavailableError: a model server is down (the run stops; the session is not recorded).
    """
    t0 = time.perf_counter()
    meter = UsageMeter()
    row: dict[str, Any] = {"user_id": user_id, "session": session}
    backends = backends_of(env, agent)
    try:
        with call_context(meter, time_limit):
            obs, info = env.reset(seed=seed, options={"user_id": user_id})
            row.update(session=info["session"], task_id=info["task_id"], dataset=info["dataset"])
            ret, labels = 0.0, []
            while True:
                reply = agent.act(obs)
                obs, reward, terminated, truncated, info = env.step(reply)
                labels.append(info["oracle"]["label"])
                agent.observe(obs, reward, terminated, truncated, strip_oracle(info))  # never the ground truth
                ret += reward
                if terminated or truncated:
                    break
        row.update(status="ok", **info["metrics"], **{"return": ret, "labels": labels})
        stats = agent.session_stats(user_id)
        if stats:
            row["agent_stats"] = stats
        if "sim_checker" in info:
            row["sim_checker"] = info["sim_checker"]
        if transcript:
            row["transcript"] = [[role, text] for role, text in env.transcript()]
    except BackendUnavailableError:
        agent.end_session(user_id)
        raise
    except Exception as e:  # noqa: BLE001 - a failed session is recorded with its reason, never lost
        logger.warning("session failed: user %s session %s: %s: %s", user_id, session, type(e).__name__, e)
        row.update(status="error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=5))
        agent.end_session(user_id)
    if backends:
        row["llm"] = {role: meter.counts(b) for role, b in backends.items()}
    row["seconds"] = round(time.perf_counter() - t0, 4)
    return row


class _Writer:
    """The pool's disk writer: one thread running the checkpoint writes lanes hand it, in order.

    Each job is a write (or None) and the events to report once it is done; the lanes collect the
    finished jobs' events (:meth:`take`, :meth:`drain`) and report them on their own threads. A write
    that fails turns its row into an error row, and the lane's later jobs are dropped (the lane stops:
    see :meth:`failed`)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[tuple[str, str], Callable[[], None] | None, list[tuple[str, Any]]]] = \
            queue.SimpleQueue()
        self._cv = threading.Condition()
        self._done: list[tuple[str, Any]] = []
        self._lanes: dict[tuple[str, str], int] = {}  # jobs not done yet, per lane with any
        self._failed: set[tuple[str, str]] = set()
        self._thread: threading.Thread | None = None

    def submit(self, key: tuple[str, str], write: Callable[[], None] | None, events: list[tuple[str, Any]]) -> None:
        with self._cv:
            self._lanes[key] = self._lanes.get(key, 0) + 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="msc-checkpoints", daemon=True)
                self._thread.start()
        self._jobs.put((key, write, events))

    def wait_lane(self, key: tuple[str, str]) -> None:
        """Wait until the lane's jobs handed in so far are done: a lane runs at most one session ahead
        of its checkpoints on disk (so a failed write stops it at once, and nothing piles up)."""
        with self._cv:
            self._cv.wait_for(lambda: key not in self._lanes)

    def failed(self, key: tuple[str, str]) -> bool:
        with self._cv:
            return key in self._failed

    def _loop(self) -> None:
        while True:
            key, write, events = self._jobs.get()
            try:
                if self.failed(key):
                    events = []
                elif write is not None:
                    write()
            except Exception as e:  # noqa: BLE001 - the session is reported failed, its lane stops
                logger.exception("checkpoint of lane %s/%s could not be written", *key)
                events = [(kind, {**row, "status": "error", "error": f"CheckpointError: {type(e).__name__}: {e}"})
                          for kind, row in events]
                with self._cv:
                    self._failed.add(key)
            finally:  # a job is always counted done, or every drain() would wait forever
                with self._cv:
                    self._done.extend(events)
                    self._lanes[key] -= 1
                    if not self._lanes[key]:
                        del self._lanes[key]
                    self._cv.notify_all()

    def take(self) -> list[tuple[str, Any]]:
        """The events of the jobs finished so far (each returned once)."""
        with self._cv:
            out, self._done = self._done, []
        return out

    def drain(self) -> list[tuple[str, Any]]:
        """Wait until every job handed in so far is done; returns the events not taken yet."""
        with self._cv:
            self._cv.wait_for(lambda: not self._lanes)
        return self.take()


class LanePool:
    """Runs lanes on up to ``threads`` threads of this process (see module docstring).

    Args:
        make_env: builds a lane's env.
        make_agent: builds a lane's agent from the method name.
        out: the run folder (checkpoints go under it).
        sessions: sessions per lane.
        seed: the world's seed (a lane's first session starts a fresh lifetime with it).
        threads: lanes in flight at once.
        session_timeout: seconds a session may take (None: no limit).
        transcripts: record each session's messages in its row.
    """

    def __init__(self, make_env: Callable[[], MultiSessionCollabEnv], make_agent: Callable[[str], Agent], out: Path,
                 sessions: int, seed: int, threads: int = 1, session_timeout: float | None = None,
                 transcripts: bool = False):
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
        self.make_env, self.make_agent, self.out = make_env, make_agent, Path(out)
        self.sessions, self.seed, self.threads, self.session_timeout = sessions, seed, threads, session_timeout
        self.transcripts = transcripts
        self.stop = threading.Event()
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._running: dict[int, tuple[Lane, int, float]] = {}  # thread serial -> (lane, session, start)
        self._abandoned: set[tuple[str, str]] = set()
        self._serials = 0
        self._emit: Callable[[str, Any], None] = lambda kind, payload: self._events.put((kind, payload))
        self._writer = _Writer()
        self._report_lock = threading.Lock()

    # ---- lane threads ------------------------------------------------------------------------------
    def _run_lane(self, lane: Lane, serial: int) -> None:
        env, agent = self.make_env(), self.make_agent(lane.method)
        rows: list[dict[str, Any]] = []
        writer = checkpoint.LaneWriter(self.out, lane.method, lane.user_id,
                                       lane.resume_from.side if lane.resume_from is not None else None)
        if lane.resume_from is not None:
            agent.load_state_dict(lane.resume_from.agent)
            env.restore(lane.resume_from.env)
            rows = list(lane.resume_from.rows)
        key = (lane.method, lane.user_id)
        for s in range(len(rows), self.sessions):
            if self.stop.is_set() or self._writer.failed(key):  # (a failed checkpoint write stops the lane)
                return
            with self._lock:
                self._running[serial] = (lane, s, time.monotonic())
            row = {"method": lane.method, **run_session(env, agent, lane.user_id, s,
                                                        seed=self.seed if s == 0 else None,
                                                        time_limit=self.session_timeout,
                                                        transcript=self.transcripts)}
            if row["status"] == "ok":  # the session's cached replies reach the disk before its checkpoint
                for b in backends_of(env, agent).values():
                    if hasattr(b, "flush"):
                        b.flush()
            self._writer.wait_lane(key)  # the previous session's checkpoint is written (or failed) first
            with self._lock:  # a wedged lane given up by the watchdog must not write anything more
                self._running.pop(serial, None)
                if key in self._abandoned or self.stop.is_set() or self._writer.failed(key):
                    return
                write = None
                if row["status"] == "ok":
                    rows.append(row)
                    write = writer.prepare(LaneCheckpoint(lane.method, lane.user_id, rows, agent.state_dict(),
                                                          env.snapshot()))
                self._writer.submit(key, write, [("row", row)])
            self._report(self._writer.take)
            if row["status"] != "ok":
                return  # the lane stops at its first failed session (see module docstring)

    def _report(self, events: Callable[[], list[tuple[str, Any]]]) -> None:
        """Report the events ``events()`` returns; taken and reported under one lock, so one lane's rows
        keep their order whichever lane thread reports them."""
        with self._report_lock:
            for kind, payload in events():
                self._emit(kind, payload)

    def _thread(self, serial: int, next_lane: Callable[[], Lane | None]) -> None:
        try:
            while not self.stop.is_set():
                lane = next_lane()
                if lane is None:
                    break
                try:
                    self._run_lane(lane, serial)
                except BackendUnavailableError as e:
                    self._emit("unavailable", str(e))
                    return
                except Exception as e:  # noqa: BLE001 - the lane could not be built or restored
                    logger.exception("lane %s/%s failed outside a session", lane.method, lane.user_id)
                    s = lane.resume_from.sessions_done if lane.resume_from else 0
                    self._report(self._writer.drain)
                    self._emit("row", {"method": lane.method, "user_id": lane.user_id, "session": s,
                                              "status": "error", "error": f"{type(e).__name__}: {e}",
                                              "traceback": traceback.format_exc(limit=5), "seconds": 0.0})
        finally:
            self._report(self._writer.drain)
            self._emit("done", serial)

    def _start_thread(self, next_lane: Callable[[], Lane | None]) -> int:
        self._serials += 1
        threading.Thread(target=self._thread, args=(self._serials, next_lane), name=f"msc-lane-{self._serials}",
                         daemon=True).start()
        return self._serials

    # ---- the caller's thread -----------------------------------------------------------------------
    def _wedged(self) -> list[tuple[int, Lane, int, float]]:
        if self.session_timeout is None:
            return []
        limit = self.session_timeout + WEDGE_GRACE_S
        now = time.monotonic()
        with self._lock:
            out = [(n, lane, s, now - t0) for n, (lane, s, t0) in self._running.items() if now - t0 > limit]
            for n, lane, _, _ in out:
                self._running.pop(n, None)
                self._abandoned.add((lane.method, lane.user_id))
        return out

    def run(self, next_lane: Callable[[], Lane | None], handle: Callable[[str, Any], None]) -> None:
        """Run lanes from ``next_lane`` (thread-safe; None when there are no more) until all are done.

        ``handle(kind, payload)`` is called on this thread for every ``("row", row)`` and for
        ``("unavailable", message)`` (a model server is down: the pool stops starting sessions; the
        caller decides whether to raise).
        """
        import gc

        gc.freeze()  # the long-lived objects made so far (modules, tasks, profiles) leave the collector's scans
        try:
            with single_threaded_math():  # also with one lane: the rows must not depend on the thread counts
                if self.threads == 1 and self.session_timeout is None:
                    self._run_inline(next_lane, handle)
                else:
                    self._run(next_lane, handle)
        finally:
            gc.unfreeze()

    def _run_inline(self, next_lane: Callable[[], Lane | None], handle: Callable[[str, Any], None]) -> None:
        """One lane at a time on this thread: no watchdog is needed, and code that keeps time limits
        with signals (math-verify's, which work on the main thread only) keeps them."""
        def emit(kind: str, payload: Any) -> None:
            if kind == "unavailable":
                self.stop.set()
            if kind != "done":
                handle(kind, payload)

        self._emit = emit
        try:
            self._thread(0, next_lane)
        finally:
            self.stop.set()

    def _run(self, next_lane: Callable[[], Lane | None], handle: Callable[[str, Any], None]) -> None:
        live = {self._start_thread(next_lane) for _ in range(self.threads)}
        try:
            while live:
                try:
                    kind, payload = self._events.get(timeout=1.0)
                except queue.Empty:
                    kind, payload = "tick", None
                if kind == "done":
                    live.discard(payload)
                elif kind == "unavailable":
                    self._halt()
                    handle(kind, payload)
                elif kind == "row":
                    handle(kind, payload)
                for serial, lane, s, age in self._wedged():
                    live.discard(serial)
                    logger.error("lane %s/%s session %d gave no sign of life for %.0f s; giving it up", lane.method,
                                 lane.user_id, s, age)
                    handle("row", {"method": lane.method, "user_id": lane.user_id, "session": s, "status": "error",
                                   "error": f"WedgedSession: no progress {age:.0f} s into the session (time limit "
                                            f"{self.session_timeout:g} s); the thread was given up", "seconds": age})
                    if not self.stop.is_set():
                        live.add(self._start_thread(next_lane))
        finally:
            self._halt()

    def _halt(self) -> None:
        """Stop the lanes; once this returns no lane thread writes a checkpoint or reports a row."""
        self.stop.set()
        with self._lock:  # waits for a checkpoint being handed to the writer
            pass
        self._writer.drain()  # and for the writes handed in
