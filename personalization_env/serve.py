"""MultiSessionCollab-v0 over the OpenEnv protocol (``msc serve``).

An `OpenEnv <https://github.com/meta-pytorch/OpenEnv>`_ server (``openenv-core``) for LLM-RL trainers
(TRL, SkyRL, NeMo-Gym, verifiers): the assistant's reply is the action, the simulated user's message
the observation. One *session* of the server holds one env instance, i.e. one lifetime of the users: a
reset starts the chosen user's next session (their first, or the one after the last), ``seed=`` starts
a fresh lifetime, ``user_id=`` / ``user_index=`` pick the user (see
:class:`~personalization_env.env.MultiSessionCollabEnv`).

Endpoints (all but ``/health`` need ``Authorization: Bearer <token>`` when ``$MSC_SERVE_TOKEN`` is set):

=================  ==============================================================================
``WS /ws``         OpenEnv's session socket (what :class:`MSCClient` and every OpenEnv client use):
                   the connection is the session; messages ``{"type": "reset", "data": {"seed": 0,
                   "user_id": "..."}}``, ``{"type": "step", "data": {"message": "..."}}``,
                   ``{"type": "state"}``, ``{"type": "close"}``; answers ``{"type": "observation",
                   "data": {"observation": {...}, "reward": r, "done": d}}`` or ``{"type": "error",
                   "data": {"message": "<one line>", "code": "..."}}`` (the session goes on).
``POST /reset``    ``{"seed"?, "episode_id"?, "user_id"? | "user_index"?}``: without ``episode_id``
                   opens a session (its id is ``observation.episode_id``); with it, starts that
                   session's user's next session. Answers ``{"observation", "reward", "done"}``.
``POST /step``     ``{"episode_id": "...", "action": {"message": "..."}}``
``GET /state``     ``?episode_id=...``: ``{"episode_id", "step_count", "user_id", "session", "turn", "done"}``
``POST /close``    ``{"episode_id": "..."}``: ends the session and frees its slot.
``GET /health``    ``{"status": "healthy"}`` (no token needed); ``GET /schema``, ``GET /metadata``.
=================  ==============================================================================

Observation: ``message`` (the user's words), ``user_id``, ``session``, ``turn``, ``episode_id``,
``terminated``, ``truncated``, ``info`` (``task_id``, ``dataset``, ``feedback_label``,
``reward_terms``) and, when the session ends, ``metrics`` (task_success, user_effort, turns, messages,
timeout, compliance); ``reward`` and ``done`` (= terminated or truncated) beside it. ``info["oracle"]``
never leaves the server. Refused HTTP requests get a 4xx and ``{"detail": "<one line>"}``: 400 bad
JSON, 401 token, 404 unknown or dropped episode, 409 step before reset or after the end, 413 reply
over ``--max-message-chars``, 422 wrong types or unknown user, 429 at ``--max-sessions``.

Bounds: ``--max-sessions`` sessions (sockets and HTTP episodes together); replies of at most
``--max-message-chars`` characters (bodies and socket messages beyond ~12 bytes a character are cut
off before parsing); a session that sends nothing for ``--idle-timeout`` seconds is dropped (its
socket closed with code 1001).

Threads: each session owns its env instance and runs it on its own single-thread executor (OpenEnv's
per-session executor), so an env is never entered by two threads and one session's requests run in
arrival order; the profiles, tasks, user simulator and feedback classifier are built once and shared,
as the benchmark runner's lanes share them.

openenv-core, fastapi and uvicorn are imported on first use (``pip install 'multisessioncollab[serve]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hmac
import ipaddress
import json
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from personalization_env.naming import json_error

logger = logging.getLogger(__name__)

TOKEN_ENV = "MSC_SERVE_TOKEN"
INSTALL_HINT = "pip install 'multisessioncollab[serve]'"
DEFAULT_PORT = 8000
DEFAULT_MAX_SESSIONS = 64
DEFAULT_MAX_MESSAGE_CHARS = 16000
DEFAULT_IDLE_TIMEOUT = 600.0
PUBLIC_INFO = ("task_id", "dataset", "feedback_label", "reward_terms")  # what of the env's info goes out
RESET_ARGS = ("seed", "episode_id", "user_id", "user_index", "options")
_LAZY = ("MSCAction", "MSCObservation", "MSCState", "MSCEnvironment", "MSCClient")
# OpenEnv's HTTPEnvServer internals the HTTP episodes share with its sockets (one registry, one bound)
_SERVER_API = ("_create_session", "_destroy_session", "_run_in_session_executor")


class ServeError(Exception):
    """A request the server refuses (4xx) or could not serve (5xx); ``str(e)`` is the one-line reason.

    Args:
        status: the HTTP status it is answered with (over ``/ws``: an error message, same text).
        reason: one line naming the bad value and the fix.
    """

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def frame_limit(max_message_chars: int) -> int:
    """Largest request body or socket message accepted: a reply of ``max_message_chars`` characters
    JSON-escaped (at most 12 bytes a character) plus 64 KiB of envelope."""
    return 12 * max_message_chars + 65536


def _require_serve_deps() -> None:
    try:
        import fastapi  # noqa: F401
        import openenv.core.env_server  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise ImportError(f"msc serve needs openenv-core, fastapi and uvicorn ({e}); "
                          f"install them: {INSTALL_HINT}") from e


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _one_line(e: Exception, what: str) -> str:
    """A pydantic ``ValidationError`` as one line: the first bad field and why."""
    errors = e.errors(include_url=False, include_input=False) if hasattr(e, "errors") else []
    if not errors:
        return f"{what}: {e}".splitlines()[0]
    first = errors[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or "(body)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{what}: {loc}: {first.get('msg', 'invalid')}{more}"


# ---- the shared part of every session -------------------------------------------------------------
@dataclass
class _World:
    """What every session's env is built from: the constructor arguments with the profiles, simulator,
    classifier and answer judge built once (as the benchmark runner's ``World`` does)."""

    env_kwargs: dict[str, Any]
    max_message_chars: int
    user_ids: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, env_kwargs: Mapping[str, Any] | None, max_message_chars: int) -> "_World":
        from personalization_env.env import MultiSessionCollabEnv

        kw = dict(env_kwargs or {})
        if kw.get("oracle_info"):
            raise ValueError("oracle_info=True cannot be served: info['oracle'] never leaves the server; drop it")
        if kw.get("render_mode") is not None:
            raise ValueError(f"render_mode={kw['render_mode']!r} cannot be served (it prints on the server); drop it")
        kw.update(oracle_info=False, render_mode=None, max_reply_chars=max_message_chars)
        probe = MultiSessionCollabEnv(**kw)  # bad options fail here, before the server listens
        kw.update(profiles=probe.profiles, n_users=None, user_simulator=probe.simulator,
                  feedback=probe.classifier, answer_judge=probe.answer_judge)
        return cls(env_kwargs=kw, max_message_chars=max_message_chars, user_ids=[p.user_id for p in probe.profiles])

    def make_env(self) -> Any:
        from personalization_env.env import MultiSessionCollabEnv

        return MultiSessionCollabEnv(**self.env_kwargs)

    def reset_options(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The env's reset options from a client's reset arguments (checked here, so that every
        error the env raises afterwards is the server's)."""
        from personalization_env.naming import did_you_mean

        unknown = sorted(set(args) - set(RESET_ARGS))
        if unknown:
            raise ServeError(422, f"unknown reset argument(s) {unknown}; supported: {list(RESET_ARGS)}")
        opts = args.get("options") or {}
        if not isinstance(opts, dict):
            raise ServeError(422, f"reset options must be an object, got {type(opts).__name__}")
        bad = sorted(set(opts) - {"user_id", "user_index"})
        if bad:
            raise ServeError(422, f"unknown reset option(s) {bad}; supported: user_id, user_index")
        opts = {**opts, **{k: args[k] for k in ("user_id", "user_index") if args.get(k) is not None}}
        if len(opts) > 1:
            raise ServeError(422, "give either user_id or user_index, not both")
        if "user_id" in opts:
            uid = opts["user_id"]
            if not isinstance(uid, str) or uid not in self.user_ids:
                raise ServeError(422, f"unknown user_id {str(uid)[:80]!r}{did_you_mean(uid, self.user_ids)} "
                                      f"({len(self.user_ids)} users served: see GET /metadata)")
        if "user_index" in opts:
            i = opts["user_index"]
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self.user_ids):
                raise ServeError(422, f"user_index must be an int in [0, {len(self.user_ids)}), got {str(i)[:40]!r}")
        return opts


# ---- the OpenEnv types, server environment and client (defined on first use) -----------------------
@functools.lru_cache(maxsize=None)
def _binding() -> dict[str, type]:
    """Define the classes that subclass openenv-core's (imported here, not at module import)."""
    _require_serve_deps()
    from openenv.core.client_types import StepResult
    from openenv.core.env_client import EnvClient
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State
    from pydantic import Field
    from websockets.asyncio.client import connect as ws_connect

    import personalization_env

    class MSCAction(Action):
        """The assistant's reply."""

        message: str = Field(..., description="the assistant's reply text")

    class MSCObservation(Observation):
        """The simulated user's message and where the session stands (``reward``/``done`` inherited;
        ``metadata`` holds ``metrics`` at the end in process, but OpenEnv does not send ``metadata``
        over the wire: read ``metrics``)."""

        message: str = Field("", description="the user's latest message")
        user_id: str = Field("", description="the user of this session")
        session: int = Field(0, description="the user's session index (0 = first)")
        turn: int = Field(0, description="the user-turn index in the session")
        episode_id: str = Field("", description="the server session (HTTP: pass it back on /step)")
        terminated: bool = Field(False, description="the user ended the session")
        truncated: bool = Field(False, description="the session hit max_turns")
        metrics: dict[str, float] | None = Field(None, description="session metrics, on its last step")
        info: dict[str, Any] = Field(default_factory=dict,
                                     description="task_id, dataset, feedback_label, reward_terms")

    class MSCState(State):
        """Where a server session stands."""

        user_id: str | None = None
        session: int | None = None
        turn: int | None = None
        done: bool = False

    class MSCEnvironment(Environment[MSCAction, MSCObservation, MSCState]):
        """One server session: one MultiSessionCollab-v0 env (one lifetime of the users), built on the
        first reset. Not thread-safe; OpenEnv runs each session on its own single-thread executor.

        Args:
            world: the shared build of every session (default: the env's defaults).
        """

        SUPPORTS_CONCURRENT_SESSIONS = True  # sessions share only read-only or thread-safe parts

        def __init__(self, world: _World | None = None):
            super().__init__()
            self._world = world if world is not None else _World.build(None, DEFAULT_MAX_MESSAGE_CHARS)
            self._env: Any = None
            self._episode_id = uuid.uuid4().hex
            self._started = False
            self._done = False
            self._closed = False
            self._state = MSCState(episode_id=self._episode_id)

        def reset(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any) -> MSCObservation:
            self._check_open()
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
                raise ServeError(422, f"seed must be an int >= 0, got {str(seed)[:40]!r}")
            if episode_id is not None and (not isinstance(episode_id, str) or not 0 < len(episode_id) <= 255):
                raise ServeError(422, f"episode_id must be a string of 1-255 characters, got {str(episode_id)[:40]!r}")
            options = self._world.reset_options(kwargs)
            if episode_id is not None:
                self._episode_id = episode_id
            self._started, self._done = False, False
            try:
                if self._env is None:
                    self._env = self._world.make_env()
                obs, info = self._env.reset(seed=seed, options=options)
            except Exception as e:
                raise self._failed(e, "reset()") from e
            self._started = True
            return self._observation(obs, None, False, False, info, steps=0)

        def step(self, action: MSCAction | str, timeout_s: float | None = None, **kwargs: Any) -> MSCObservation:
            self._check_open()
            text = action if isinstance(action, str) else getattr(action, "message", None)
            if not isinstance(text, str):
                raise ServeError(422, f"the action must be {{'message': <reply text>}}, got {type(action).__name__}")
            limit = self._world.max_message_chars
            if len(text) > limit:
                raise ServeError(413, f"the reply has {len(text)} characters, over the server's "
                                      f"--max-message-chars={limit}; shorten it")
            if not text.strip():
                raise ServeError(422, "the reply is empty; send the assistant's text")
            if not self._started:
                raise ServeError(409, "step before reset: reset first (it starts the user's next session)")
            if self._done:
                st = self._state
                raise ServeError(409, f"session {st.session} of user {st.user_id} has ended (done=true); "
                                      "reset to start this user's next session")
            try:
                obs, reward, terminated, truncated, info = self._env.step(text)
            except Exception as e:
                self._done = True  # the env's session is in an unknown state: it ends here
                raise self._failed(e, "step()") from e
            return self._observation(obs, reward, terminated, truncated, info, steps=self._state.step_count + 1)

        @property
        def state(self) -> MSCState:
            return self._state

        def get_metadata(self) -> EnvironmentMetadata:
            ids = self._world.user_ids
            shown = ", ".join(ids[:20]) + (f", ... ({len(ids)} in all)" if len(ids) > 20 else "")
            return EnvironmentMetadata(
                name="MultiSessionCollab-v0", version=personalization_env.__version__,
                description=("A simulated user with persistent preferences; one episode is one session. "
                             "reset(seed?, user_id? | user_index?) starts the user's next session; "
                             f"step({{'message': reply}}). Users: {shown}."))

        def close(self) -> None:
            self._closed = True
            if self._env is not None:
                self._env.close()
                self._env = None

        def _failed(self, e: Exception, where: str) -> ServeError:
            # the client learns that the server failed, not how (the details may name internal hosts)
            logger.error("episode %s: the env failed in %s", self._episode_id, where, exc_info=e)
            return ServeError(503 if type(e).__name__ == "BackendUnavailableError" else 500,
                              f"the env failed in {where} ({type(e).__name__}, logged on the server); "
                              "reset to start the user's next session")

        def _check_open(self) -> None:
            if self._closed:
                raise ServeError(404, "this session was closed (idle longer than --idle-timeout, or the "
                                      "server shut it); start a new one")

        def _observation(self, obs: Mapping[str, Any], reward: float | None, terminated: bool,
                         truncated: bool, info: Mapping[str, Any], steps: int) -> MSCObservation:
            done = bool(terminated or truncated)
            self._done = done
            metrics = info.get("metrics")
            self._state = MSCState(episode_id=self._episode_id, step_count=steps, user_id=str(obs["user_id"]),
                                   session=int(info["session"]), turn=int(info["turn"]), done=done)
            return MSCObservation(
                message=str(obs["message"]), user_id=str(obs["user_id"]), session=int(info["session"]),
                turn=int(info["turn"]), episode_id=self._episode_id, terminated=bool(terminated),
                truncated=bool(truncated), reward=None if reward is None else float(reward), done=done,
                metrics=None if metrics is None else {k: float(v) for k, v in metrics.items()},
                info={k: info[k] for k in PUBLIC_INFO if k in info},  # a whitelist: never info["oracle"]
                metadata={"metrics": dict(metrics)} if metrics is not None else {})

    class MSCClient(EnvClient[MSCAction, MSCObservation, MSCState]):
        """OpenEnv client of ``msc serve`` (async; ``.sync()`` for the blocking form).

        ``step`` takes an :class:`MSCAction` or the reply text; ``reset(seed=..., user_id=...)``.
        Server refusals raise ``RuntimeError("Server error: <reason> (code: ...)")`` (OpenEnv's).

        Args:
            base_url: ``http://host:port`` (or ``ws://``).
            token: the server's bearer token (default: ``$MSC_SERVE_TOKEN``, if set).
            **kwargs: :class:`openenv.core.EnvClient` options (``message_timeout_s``, ...).
        """

        def __init__(self, base_url: str, token: str | None = None, **kwargs: Any):
            super().__init__(base_url, **kwargs)
            self._token = token if token is not None else (os.environ.get(TOKEN_ENV) or None)

        def __repr__(self) -> str:  # never the token
            return f"MSCClient({self._ws_url!r}, token={'set' if self._token else 'none'})"

        async def connect(self) -> "MSCClient":
            # EnvClient.connect sends no headers; the same connection with the bearer token
            if self._ws is not None:
                return self
            from urllib.parse import urlsplit

            headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
            try:
                self._ws = await ws_connect(
                    self._ws_url, open_timeout=self._connect_timeout, max_size=self._max_message_size,
                    additional_headers=headers, proxy=None if _is_loopback(urlsplit(self._ws_url).hostname) else True,
                    logger=_client_ws_logger())
            except Exception as e:
                raise ConnectionError(f"could not connect to {self._ws_url}: {e}") from e
            return self

        def _step_payload(self, action: MSCAction | str) -> dict[str, Any]:
            return {"message": action if isinstance(action, str) else action.message}

        def _parse_result(self, payload: dict[str, Any]) -> StepResult[MSCObservation]:
            data = payload.get("observation", {})
            known = {k: v for k, v in data.items() if k in MSCObservation.model_fields}
            obs = MSCObservation(**known, reward=payload.get("reward"), done=bool(payload.get("done", False)))
            if obs.metrics is not None:
                obs.metadata = {"metrics": dict(obs.metrics)}
            return StepResult(observation=obs, reward=payload.get("reward"), done=obs.done)

        def _parse_state(self, payload: dict[str, Any]) -> MSCState:
            return MSCState.model_validate(payload)

    classes = {c.__name__: c for c in (MSCAction, MSCObservation, MSCState, MSCEnvironment, MSCClient)}
    for c in classes.values():
        c.__module__, c.__qualname__ = __name__, c.__name__
    return classes


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return _binding()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---- ASGI guard: token, sizes, capacity at the handshake, idle sockets ----------------------------
class _Guard:
    """ASGI middleware in front of the app: the bearer token (all but ``/health``), request-body and
    socket-message sizes, the session bound at the WebSocket handshake (a 429 instead of an accepted
    socket that is closed at once) and the idle timeout of sockets."""

    def __init__(self, app: Any, *, token: str | None, max_bytes: int, idle_timeout: float,
                 capacity: Callable[[], tuple[int, int]]):
        self.app = app
        self.token = token.encode() if token else None
        self.max_bytes = max_bytes
        self.idle_timeout = idle_timeout
        self.capacity = capacity

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _authorized(self, scope: dict) -> bool:
        if self.token is None:
            return True
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)
        return False

    _NO_TOKEN = (f"missing or wrong bearer token: send 'Authorization: Bearer <token>' with the token the "
                 f"server read from ${TOKEN_ENV}")

    @staticmethod
    async def _answer(send: Callable, status: int, reason: str, prefix: str = "http.response",
                      headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        body = json.dumps({"detail": reason}).encode()
        await send({"type": f"{prefix}.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": f"{prefix}.body", "body": body})

    async def _http(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["path"] != "/health" and not self._authorized(scope):
            await self._answer(send, 401, self._NO_TOKEN, headers=[(b"www-authenticate", b"Bearer")])
            return
        too_big = (f"request body over {self.max_bytes} bytes (the server's --max-message-chars bounds it); "
                   "send a shorter reply")
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._answer(send, 413, too_big)
                return
        body = bytearray()
        while True:  # read the (bounded) body here, so an oversize one is refused before it is parsed
            msg = await receive()
            if msg["type"] != "http.request":
                return  # the client went away
            body += msg.get("body", b"")
            if len(body) > self.max_bytes:
                await self._answer(send, 413, too_big)
                return
            if not msg.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _deny(self, scope: dict, receive: Callable, send: Callable, status: int, reason: str) -> None:
        await receive()  # websocket.connect
        logger.info("refused a socket with %d: %s", status, reason.split(":")[0])
        if "websocket.http.response" in scope.get("extensions", {}):
            await self._answer(send, status, reason, prefix="websocket.http.response")
        else:  # servers without the denial extension answer 403
            await send({"type": "websocket.close", "code": 1008})

    async def _websocket(self, scope: dict, receive: Callable, send: Callable) -> None:
        if not self._authorized(scope):
            await self._deny(scope, receive, send, 401, self._NO_TOKEN)
            return
        active, limit = self.capacity()
        if active >= limit:
            await self._deny(scope, receive, send, 429, f"server at capacity: {active}/{limit} sessions "
                                                        "(--max-sessions); close one or retry later")
            return
        pending: asyncio.Future | None = None
        closed = False

        async def close(code: int, reason: str) -> dict:
            nonlocal closed
            if not closed:
                closed = True
                await send({"type": "websocket.close", "code": code, "reason": reason[:120]})
            return {"type": "websocket.disconnect", "code": code}

        async def guarded_send(msg: dict) -> None:
            nonlocal closed
            if msg["type"] != "websocket.close":
                await send(msg)
                return
            if closed:
                return  # the guard closed it already
            closed = True
            try:
                await send(msg)
            except OSError:  # the client closed first (OpenEnv's client closes right after "close")
                pass

        async def guarded_receive() -> dict:
            nonlocal pending
            if pending is None:
                pending = asyncio.ensure_future(receive())
            done, _ = await asyncio.wait({pending}, timeout=self.idle_timeout)
            if not done:
                pending.cancel()
                pending = None
                logger.info("dropped a socket session idle for more than %g s", self.idle_timeout)
                return await close(1001, f"idle for more than --idle-timeout={self.idle_timeout:g} s")
            msg, pending = pending.result(), None
            if msg["type"] == "websocket.receive":
                size = len(msg.get("text") or "") or len(msg.get("bytes") or b"")
                if size > self.max_bytes:
                    return await close(1009, f"message over {self.max_bytes} characters (--max-message-chars)")
            return msg

        try:
            await self.app(scope, guarded_receive, guarded_send)
        finally:
            if pending is not None:
                pending.cancel()


# ---- the app ----------------------------------------------------------------------------------------
@dataclass
class _Episode:
    """An HTTP episode's bookkeeping (its env lives in OpenEnv's session registry)."""

    last: float
    busy: int = 0


def build_app(env_kwargs: Mapping[str, Any] | None = None, *, max_sessions: int = DEFAULT_MAX_SESSIONS,
              max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
              token: str | None = None) -> Any:
    """The ASGI app of ``msc serve`` (a FastAPI app behind the guard middleware).

    Args:
        env_kwargs: :class:`~personalization_env.env.MultiSessionCollabEnv` arguments (profiles, n_users,
            datasets, feedback, user_simulator, max_turns, ...); built and checked here, once.
        max_sessions: sessions at once (sockets and HTTP episodes together).
        max_message_chars: longest reply accepted.
        idle_timeout: seconds a session may send nothing before it is dropped.
        token: bearer token every request but ``/health`` must carry (None: no token).

    Returns:
        the app; ``app.state.msc`` holds its limits (:func:`make_server` reads them).
    """
    if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1:
        raise ValueError(f"max_sessions must be an int >= 1, got {max_sessions!r}")
    if isinstance(max_message_chars, bool) or not isinstance(max_message_chars, int) or max_message_chars < 1:
        raise ValueError(f"max_message_chars must be an int >= 1, got {max_message_chars!r}")
    if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, (int, float)) or not idle_timeout > 0:
        raise ValueError(f"idle_timeout must be a number of seconds > 0, got {idle_timeout!r}")
    if token is not None:
        _check_token(token)
    classes = _binding()
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from openenv.core.env_server.exceptions import SessionCapacityError
    from openenv.core.env_server.http_server import HTTPEnvServer
    from openenv.core.env_server.serialization import serialize_observation
    from openenv.core.env_server.types import ResetRequest, ResetResponse, ServerMode, StepRequest, StepResponse
    from pydantic import ValidationError

    missing = [n for n in _SERVER_API if not hasattr(HTTPEnvServer, n)]
    if missing:
        raise ImportError(f"this openenv-core lacks HTTPEnvServer.{', '.join(missing)} (msc serve was built on "
                          f"openenv-core 0.3); install it: pip install 'openenv-core>=0.3,<0.4'")
    MSCAction, MSCObservation = classes["MSCAction"], classes["MSCObservation"]
    world = _World.build(env_kwargs, max_message_chars)
    server = HTTPEnvServer(functools.partial(classes["MSCEnvironment"], world), MSCAction, MSCObservation,
                           max_concurrent_envs=max_sessions)
    if not isinstance(getattr(server, "_sessions", None), dict):
        raise ImportError("this openenv-core keeps no HTTPEnvServer._sessions registry (msc serve was built on "
                          "openenv-core 0.3); install it: pip install 'openenv-core>=0.3,<0.4'")
    app = FastAPI(title="MultiSessionCollab-v0 (OpenEnv)", version=_version())
    episodes: dict[str, _Episode] = {}
    reaper: list[asyncio.Task] = []

    async def drop(eid: str, why: str) -> None:
        episodes.pop(eid, None)
        await server._destroy_session(eid)
        logger.info("episode %s %s (%d sessions open)", eid, why, server.active_sessions)

    async def reap() -> None:
        # HTTP episodes idle past the timeout are dropped (sockets: the guard); OpenEnv's own reaper
        # is not used: it polls every 5 s at best and closes a socket session's env under a slow step
        interval = min(1.0, idle_timeout / 4)
        try:
            while episodes:
                await asyncio.sleep(interval)
                now = time.monotonic()
                for eid in [e for e, ep in episodes.items() if not ep.busy and now - ep.last > idle_timeout]:
                    await drop(eid, f"dropped after {idle_timeout:g} s idle")
        finally:
            reaper.clear()

    def episode(eid: Any) -> _Episode:
        if not isinstance(eid, str) or not eid:
            raise ServeError(422, "episode_id is required: the observation.episode_id that POST /reset returned")
        ep = episodes.get(eid)
        if ep is None or (not ep.busy and time.monotonic() - ep.last > idle_timeout):
            raise ServeError(404, f"unknown episode_id {eid[:80]!r}: never opened, closed, or dropped after "
                                  f"--idle-timeout={idle_timeout:g} s idle; POST /reset without episode_id opens one")
        return ep

    async def run(eid: str, ep: _Episode, method: str, *args: Any, **kwargs: Any) -> Any:
        env = server._sessions.get(eid)
        if env is None:
            raise ServeError(409, f"episode {eid[:80]!r} is still starting; retry")
        ep.busy += 1
        ep.last = time.monotonic()
        try:
            return await server._run_in_session_executor(eid, getattr(env, method), *args, **kwargs)
        finally:
            ep.busy -= 1
            ep.last = time.monotonic()

    async def body_of(request: Any) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ServeError(400, f"the body is not valid JSON ({json_error(e)}); "
                                  "send a JSON object") from e
        except UnicodeDecodeError as e:
            raise ServeError(400, "the body is not UTF-8 text; send a JSON object") from e
        if not isinstance(data, dict):
            raise ServeError(400, f"the body must be a JSON object, got {type(data).__name__}")
        return data

    async def serve_error(request: Any, e: ServeError) -> Any:
        return JSONResponse({"detail": str(e)}, status_code=e.status)

    # plain Starlette routes: they read their own bodies, to answer bad ones in one line
    async def http_reset(request: Any) -> Any:
        """Open an episode (no ``episode_id``), or start the next session of an open one."""
        data = await body_of(request)
        try:
            req = ResetRequest.model_validate(data)
        except ValidationError as e:
            raise ServeError(422, _one_line(e, "reset")) from e
        args = {k: v for k, v in data.items() if k not in ("seed", "episode_id")}
        world.reset_options(args)  # a bad user is refused before a session is opened
        created = req.episode_id is None
        if created:
            try:
                eid, _ = await server._create_session()
            except SessionCapacityError as e:
                raise ServeError(429, f"server at capacity: {e.active_sessions}/{e.max_sessions} sessions "
                                      "(--max-sessions); close one (POST /close) or retry later") from e
            episodes[eid] = _Episode(last=time.monotonic())
            logger.info("episode %s opened (%d sessions open)", eid, server.active_sessions)
            if not reaper:
                reaper.append(asyncio.create_task(reap()))
        else:
            eid = req.episode_id
        ep = episode(eid)
        try:
            obs = await run(eid, ep, "reset", seed=req.seed, episode_id=eid, **args)
        except BaseException:
            if created:
                await drop(eid, "closed: its first reset failed")
            raise
        return JSONResponse(ResetResponse(**serialize_observation(obs)).model_dump())

    async def http_step(request: Any) -> Any:
        """The assistant's reply in an open episode: ``{"episode_id", "action": {"message"}}``."""
        data = await body_of(request)
        ep = episode(data.get("episode_id"))
        try:
            req = StepRequest.model_validate(data)
            action = MSCAction.model_validate(req.action)
        except ValidationError as e:
            raise ServeError(422, _one_line(e, "step")) from e
        obs = await run(data["episode_id"], ep, "step", action)
        return JSONResponse(StepResponse(**serialize_observation(obs)).model_dump())

    async def http_state(request: Any) -> Any:
        """Where an open episode stands (``?episode_id=``)."""
        eid = request.query_params.get("episode_id")
        ep = episode(eid)
        ep.last = time.monotonic()
        return JSONResponse(server._sessions[eid].state.model_dump())

    async def http_close(request: Any) -> Any:
        """End an episode and free its slot."""
        eid = (await body_of(request)).get("episode_id")
        episode(eid)
        await drop(eid, "closed by the client")
        return JSONResponse({"episode_id": eid, "closed": True})

    app.add_exception_handler(ServeError, serve_error)
    for path, endpoint, method in (("/reset", http_reset, "POST"), ("/step", http_step, "POST"),
                                   ("/state", http_state, "GET"), ("/close", http_close, "POST")):
        app.router.add_route(path, endpoint, methods=[method])

    async def shutdown() -> None:
        for eid in list(episodes):
            await drop(eid, "closed: server shutting down")

    app.router.on_shutdown.append(shutdown)
    # PRODUCTION mode: OpenEnv's own /reset, /step and /state build a fresh env for every request (a
    # multi-turn env cannot be played through them); the stateful ones above take their place
    server.register_routes(app, mode=ServerMode.PRODUCTION)
    # this env has no MCP tools: drop the /mcp endpoints (each request would build a throwaway env)
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) != "/mcp"]
    app.state.msc = {"max_sessions": max_sessions, "max_message_chars": max_message_chars,
                     "idle_timeout": float(idle_timeout), "frame_limit": frame_limit(max_message_chars),
                     "users": len(world.user_ids), "token": token is not None}
    guarded = _Guard(app, token=token, max_bytes=frame_limit(max_message_chars), idle_timeout=float(idle_timeout),
                     capacity=lambda: (server.active_sessions, max_sessions))
    guarded.state = app.state  # type: ignore[attr-defined]
    return guarded


def _version() -> str:
    import personalization_env

    return personalization_env.__version__


def _check_token(token: str) -> None:
    if not isinstance(token, str) or not token.strip():
        raise ValueError(f"${TOKEN_ENV} is set but empty; unset it (no token) or give it a value")
    if not token.isascii() or not token.isprintable() or " " in token:
        raise ValueError(f"${TOKEN_ENV} must be printable ASCII without spaces (it travels in an HTTP header)")


def make_server(app: Any, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, log_level: str = "info",
                access_log: bool = False, log_config: Any = "default") -> Any:
    """A ``uvicorn.Server`` for ``app`` (from :func:`build_app`), with its socket-message bound.

    Args:
        app: the app.
        host: address to bind (loopback by default).
        port: port (0: a free one; ``server.servers[0].sockets[0].getsockname()`` after start).
        log_level: uvicorn's log level.
        access_log: one log line per request (paths only: never headers, so never the token).
        log_config: uvicorn's logging config (``None``: leave logging as configured).
    """
    import uvicorn

    limits = app.state.msc
    kw = {} if log_config == "default" else {"log_config": log_config}
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                            ws_max_size=limits["frame_limit"],
                            limit_concurrency=limits["max_sessions"] + 64, timeout_graceful_shutdown=5, **kw)
    logging.getLogger("uvicorn.error").addFilter(_log_filter)  # the websockets handshake logs there
    return uvicorn.Server(config)


def _log_filter(record: logging.LogRecord) -> bool:
    """Redact the token from the websockets library's debug lines of handshake headers (``"< %s: %s"``),
    and drop the error uvicorn's websockets-sansio protocol logs after every handshake refused with an
    HTTP status (the guard's 401 and 429: the refusal went out whole; the guard logs its own line)."""
    if record.msg == "ASGI callable returned without completing handshake.":
        return False
    args = record.args
    if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() in ("authorization", "proxy-authorization"):
        record.args = (args[0], "[redacted]")
    return True


def _client_ws_logger() -> logging.Logger:
    log = logging.getLogger(f"{__name__}.client")
    log.addFilter(_log_filter)  # idempotent
    return log


# ---- command line -------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    from personalization_env.profiles import PROFILE_SETS

    p = argparse.ArgumentParser(
        prog="msc serve", description="Serve MultiSessionCollab-v0 over the OpenEnv protocol (HTTP and "
        f"WebSocket) for RL trainers. A bearer token is required when ${TOKEN_ENV} is set.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)")
    p.add_argument("--max-sessions", type=int, default=DEFAULT_MAX_SESSIONS,
                   help="sessions at once, sockets and HTTP episodes together (default: %(default)s)")
    p.add_argument("--max-message-chars", type=int, default=DEFAULT_MAX_MESSAGE_CHARS,
                   help="longest reply accepted, in characters (default: %(default)s)")
    p.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT, metavar="S",
                   help="drop a session that sends nothing for S seconds (default: %(default)s)")
    p.add_argument("--allow-remote-without-token", action="store_true",
                   help=f"bind a non-loopback --host without ${TOKEN_ENV} (anyone who reaches it can use it)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    g = p.add_argument_group("environment")
    g.add_argument("--profiles", default="msc",
                   help=f"profile set: {', '.join(PROFILE_SETS)}, complex-<k>, or a .jsonl/.json file "
                        "(default: %(default)s)")
    g.add_argument("--users", type=int, default=0, help="first N users of the set (default: 0 = all)")
    g.add_argument("--datasets", default="gen_math,gen_logic,gen_mc",
                   help="comma-separated datasets (default: %(default)s)")
    g.add_argument("--data-dir", default=None, help="folder of MultiSessionCollab *_test20.json caches")
    g.add_argument("--max-turns", type=int, default=10, help="user turns per session (default: %(default)s)")
    g.add_argument("--feedback", default="oracle",
                   help="reward classifier: oracle, keyword, llm:<backend spec> or llm_local:<model> "
                        "(default: %(default)s)")
    g.add_argument("--user", default="rule",
                   help="user simulator: rule, llm:<backend spec> or hybrid:<backend spec> (default: %(default)s)")
    return p


def serve_main(argv: Sequence[str] | None = None) -> int:
    """``msc serve``: parse ``argv``, build the app and serve until interrupted.

    Returns:
        0 after a clean shutdown, 2 for bad options or a missing dependency (the reason on stderr).
    """
    args = _parser().parse_args(argv)
    token = os.environ.get(TOKEN_ENV)
    try:
        if not 0 <= args.port <= 65535:
            raise ValueError(f"--port must be in [0, 65535], got {args.port}")
        if args.users < 0:
            raise ValueError(f"--users must be >= 0 (0 = all), got {args.users}")
        if token is None and not _is_loopback(args.host) and not args.allow_remote_without_token:
            raise ValueError(f"--host {args.host} is reachable from other machines and ${TOKEN_ENV} is not set; "
                             f"set ${TOKEN_ENV} (clients send it as a bearer token) or pass "
                             "--allow-remote-without-token")
        env_kwargs = {"profiles": args.profiles, "n_users": args.users or None, "datasets": args.datasets,
                      "data_dir": args.data_dir, "max_turns": args.max_turns, "feedback": args.feedback,
                      "user_simulator": args.user}
        app = build_app(env_kwargs, max_sessions=args.max_sessions, max_message_chars=args.max_message_chars,
                        idle_timeout=args.idle_timeout, token=token)
        server = make_server(app, args.host, args.port, log_level=args.log_level)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
        print(f"msc serve: error: {e}".splitlines()[0], file=sys.stderr)
        return 2
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")  # a no-op under msc's own setup
    logger.setLevel(args.log_level.upper())
    lim = app.state.msc
    print(f"msc serve: MultiSessionCollab-v0 ({lim['users']} users) on http://{args.host}:{args.port} "
          f"(OpenEnv socket: /ws); token {'required' if token else 'not required'}; "
          f"at most {args.max_sessions} sessions, replies of {args.max_message_chars} characters, "
          f"idle timeout {args.idle_timeout:g} s", file=sys.stderr, flush=True)
    server.run()
    return 0


if __name__ == "__main__":  # python -m personalization_env.serve: run the importable module's copy
    from personalization_env.serve import serve_main as _serve_main

    sys.exit(_serve_main())
