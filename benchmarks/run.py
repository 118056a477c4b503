"""The experiment runner: methods x users x sessions on one world, one lane per (method, user).

Results go to ``<out>/metadata.json`` (configuration, run identity, totals) and
``<out>/sessions.jsonl`` (one row per session, written as soon as the session ends). Lanes run
concurrently (:mod:`benchmarks.lanes`: ``lanes`` threads in each of ``workers`` processes) and
checkpoint after every session (:mod:`benchmarks.checkpoint`), so a run killed at any moment
resumes where each lane stopped (``resume``), and a finished run extends to more sessions
(``continue_from``) with the same results as a longer run from scratch. A session that fails is a
``status="error"`` row with its reason, never a silent zero; its lane stops there.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
import os
import platform
import shutil
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from agents import make_agent
from agents.base import Agent
from benchmarks import checkpoint
from benchmarks.checkpoint import LaneCheckpoint, RunLock
from benchmarks.identity import difference, run_identity
from benchmarks.lanes import Lane, LanePool, backends_of
from benchmarks.progress import Progress
from personalization_env import __version__
from personalization_env.env import MultiSessionCollabEnv
from personalization_env.llm.base import BackendUnavailableError, ChatBackend, make_backend

logger = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("task_success", "user_effort", "turns", "timeout", "compliance")


@dataclass
class RunConfig:
    """Arguments of ``msc run``."""

    methods: list[str] = field(default_factory=lambda: ["vanilla", "oracle"])
    """agent names, registry names or "module:Class" specs"""
    profiles: str | None = None
    """profile set ("msc", "complex", "complex-<k>") or a file (None: the world's, else "msc")"""
    n_users: int | None = 50
    """first N users of the set (None = all)"""
    sessions: int = 10
    """sessions per user"""
    datasets: str | None = None
    """comma-separated task datasets (None: the world's, else "gen_math,gen_logic,gen_mc")"""
    data_dir: str | None = None
    """folder of MultiSessionCollab caches (for math_hard, mmlu, ...)"""
    max_turns: int | None = None
    """user turns per session before truncation (None: the world's, else 10)"""
    world: str = "default"
    """world preset (:mod:`personalization_env.worlds`): the defaults of the fields above left None, the
    rule user's traits and the scripted agent model's parameters"""
    feedback: str = "oracle"
    """feedback classifier for the env reward ("oracle", "keyword", "llm:<backend spec>", "llm_local:<model>")"""
    agent_model: str = "scripted"
    """chat backend spec of the agents ("scripted", "openai:<model>@<url>", "hf:<path>", "vllm:<model>")"""
    user: str = "rule"
    """user simulator ("rule", "llm:<backend spec>", "hybrid:<backend spec>", "human")"""
    user_args: dict[str, Any] = field(default_factory=dict)
    """extra constructor arguments of the user simulator (e.g. traits, show_profile)"""
    user_ids: list[str] | None = None
    """only these users of the profile set (None: the first ``n_users``)"""
    transcripts: bool = False
    """record each session's transcript in its row (``transcript``: [role, text] pairs)"""
    cache: str | None = None
    """response-cache folder for model backends (None: <out>/cache when any role uses a model server)"""
    resume: bool = False
    """continue the run in ``out``: every lane restarts at its first unfinished session (a folder
    without a run starts one)"""
    continue_from: str | None = None
    """a finished run's folder to extend to ``sessions`` sessions per user (into ``out``; the same
    folder extends it in place)"""
    overwrite: bool = False
    """replace a run already in ``out`` (otherwise that is an error)"""
    allow_code_change: bool = False
    """resume or continue a run made at another git revision of this package"""
    replay: bool = False
    """answer every model call from the cache (a miss is an error): no model calls at all"""
    agent_args: dict[str, Any] = field(default_factory=dict)
    """extra constructor arguments for every agent that takes them (e.g. embedder, reranker)"""
    seed: int = 0
    """seed of the world (tasks, users) and of the agents"""
    out: str = "runs/latest"
    """output folder"""
    progress: bool = True
    """show a progress bar"""
    tensorboard: bool = True
    """write TensorBoard curves to ``<out>/tensorboard`` (see :mod:`benchmarks.tensorboard`)"""
    workers: int = 1
    """worker processes (lanes are shared out among them; results are identical)"""
    lanes: int | None = None
    """lanes in flight per worker process (None: 1 on the embedded world, where CPU is the limit,
    else enough to keep model servers full: up to 256)"""
    session_timeout: float | None = None
    """seconds a session may take before it is recorded as failed (None: no limit)"""
    call_timeout: float | None = None
    """seconds per model request attempt (None: ``$MSC_LLM_TIMEOUT``, default 120)"""
    wait_for_servers: float = 0.0
    """seconds to wait for model servers to come up before giving up (0: they must be up)"""
    shard: str | None = None
    """``"i/N"``: run only the i-th of N contiguous blocks of the (method, user) lanes (SLURM arrays;
    ``msc merge`` joins the shards)"""

    def __post_init__(self) -> None:
        from personalization_env.worlds import get_world

        w = get_world(self.world)  # an unknown name fails here, in one line listing the names
        if self.profiles is None:
            self.profiles = w.setting("profiles", self.data_dir)
        if self.datasets is None:
            self.datasets = w.setting("datasets")
        if self.max_turns is None:
            self.max_turns = w.setting("max_turns")
        if not self.methods:
            raise ValueError("methods is empty; name at least one agent, e.g. --methods vanilla,oracle")
        if not isinstance(self.sessions, int) or self.sessions < 1:
            raise ValueError(f"sessions must be a positive int, got {self.sessions!r}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a positive int, got {self.workers!r}")
        if self.lanes is not None and (not isinstance(self.lanes, int) or self.lanes < 1):
            raise ValueError(f"lanes must be a positive int (or None for the default), got {self.lanes!r}")
        for name in ("session_timeout", "call_timeout"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, float)) or v <= 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {v!r}")
        if self.shard is not None:
            i, sep, n = str(self.shard).partition("/")
            if not (sep and i.isdigit() and n.isdigit() and 0 <= int(i) < int(n)):
                raise ValueError(f"shard must be 'i/N' with 0 <= i < N, got {self.shard!r}")
        if self.resume and self.continue_from:
            raise ValueError("resume and continue_from exclude each other: --resume continues the run in --out, "
                             "--continue-from RUN extends a finished run")
        if self.replay and self.cache is None:
            raise ValueError("replay needs the cache folder of the run to replay: pass --cache <folder>")
        if self.methods == ["all"]:
            from agents.registry import METHODS

            self.methods = [*METHODS, "oracle"]


def _agent_kwargs(name: str, cfg: RunConfig, env: MultiSessionCollabEnv,
                  model: ChatBackend | None = None) -> dict[str, Any]:
    """Constructor arguments of agent ``name`` (``model``: the backend to share; default a new one)."""
    from agents.registry import AGENTS, _resolve

    cls = _resolve(name if ":" in name else AGENTS[name]) if (":" in name or name in AGENTS) else None
    if cls is None:  # an installed plug-in: the registry builds it; only the seed is known to fit
        return {"seed": cfg.seed}
    params = _named_params(cls)
    kw: dict[str, Any] = {"seed": cfg.seed}
    if "model" in params:
        kw["model"] = model if model is not None else _backend(cfg.agent_model, cfg)
    if "profiles" in params and getattr(cls, "privileged", False):
        kw["profiles"] = env.profiles  # the users' true preferences: only for agents that declare it (the oracle)
    kw.update({k: v for k, v in cfg.agent_args.items() if k in params})
    return {k: v for k, v in kw.items() if k in params}


def _named_params(cls: type) -> set[str]:
    """The keyword arguments ``cls(...)`` can take by name: those named by the ``__init__`` of it and of
    its bases (a ``**kwargs`` that forwards to a base names nothing by itself)."""
    out: set[str] = set()
    for c in cls.__mro__:
        init = c.__dict__.get("__init__")
        if init is not None and c is not object:
            out |= {n for n, p in inspect.signature(init).parameters.items()
                    if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return out

def uses_models(cfg: RunConfig) -> bool:
    """Whether any role talks to a real model (then responses are cached by default)."""
    specs = [cfg.agent_model, cfg.user.partition(":")[2], cfg.feedback.partition(":")[2] if ":" in cfg.feedback else ""]
    return any(s and not s.startswith("scripted") for s in specs)


def cache_dir(cfg: RunConfig) -> str | None:
    if cfg.cache is not None:
        return cfg.cache
    return str(Path(cfg.out) / "cache") if uses_models(cfg) else None


def _backend(spec: str, cfg: RunConfig) -> ChatBackend:
    kw: dict[str, Any] = {"timeout": cfg.call_timeout} if cfg.call_timeout and spec.startswith("openai:") else {}
    if spec.partition(":")[0] == "scripted" and cfg.world != "default":
        from personalization_env.worlds import get_world

        kw["config"] = get_world(cfg.world).agent_config()  # the embedded model as the world calibrates it
    return make_backend(spec, cache=cache_dir(cfg), replay=cfg.replay, **kw)


def env_kwargs_of(cfg: RunConfig) -> dict[str, Any]:
    """The env's constructor arguments (the simulator and judge get the run's cache)."""
    from personalization_env.users import make_user_simulator

    from personalization_env.worlds import get_world

    family, _, rest = cfg.user.partition(":")
    user: Any = cfg.user
    user_args = dict(cfg.user_args)
    traits = get_world(cfg.world).user_traits
    if traits and family in ("rule", "llm", "hybrid") and "traits" in _named_params(_simulator_class(family)):
        user_args["traits"] = {**traits, **user_args.get("traits", {})}  # the run's own traits win
    if rest:
        user = make_user_simulator(family, model=_backend(rest, cfg), **user_args)
    elif user_args:
        user = make_user_simulator(family, **user_args)
    feedback: Any = cfg.feedback
    fam, _, frest = cfg.feedback.partition(":")
    if fam in ("llm", "llm_local"):
        from personalization_env.feedback.llm_judge import LLMJudgeClassifier, local_spec

        if fam == "llm_local" and not frest:
            raise ValueError("the 'llm_local' judge needs the served model: --feedback llm_local:<model>")
        spec = local_spec(frest) if fam == "llm_local" else (frest or "scripted")
        feedback = LLMJudgeClassifier(_backend(spec, cfg))
    return dict(profiles=cfg.profiles, n_users=cfg.n_users, datasets=cfg.datasets, data_dir=cfg.data_dir,
                max_turns=cfg.max_turns, feedback=feedback, user_simulator=user, oracle_info=True, world=cfg.world)


def _simulator_class(family: str) -> type:
    import importlib

    from personalization_env.users.base import SIMULATORS

    mod, _, attr = SIMULATORS[family].partition(":")
    return getattr(importlib.import_module(mod), attr)


def health_check(backends: dict[str, ChatBackend], wait: float = 0.0) -> None:
    """Every model server answers before any work starts (raises :class:`BackendUnavailableError`);
    ``wait`` seconds are given to servers still starting (checked every 5 s)."""
    deadline = time.monotonic() + wait
    seen = set()
    for role, b in backends.items():
        inner = getattr(b, "inner", b)
        if getattr(b, "replay", False) or id(inner) in seen or not hasattr(inner, "health"):
            continue
        seen.add(id(inner))
        while True:
            try:
                inner.health()
                break
            except BackendUnavailableError as e:
                if time.monotonic() + 5 > deadline:
                    raise BackendUnavailableError(f"{role} model: {e}") from None
                logger.warning("%s model server not up yet; waiting (%.0f s left)", role, deadline - time.monotonic())
                time.sleep(5)


class World:
    """What the lanes of one process share: profiles, tasks, simulator, classifier, model backends,
    and the memory components named in ``agent_args`` (an embedder model is loaded once, not per lane).
    Worker processes inherit it (fork); backends open their own connections there."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        env_kwargs = env_kwargs_of(cfg)
        self.probe = MultiSessionCollabEnv(**env_kwargs)
        self.env_kwargs = {**env_kwargs, "profiles": self.probe.profiles, "n_users": None,
                           "user_simulator": self.probe.simulator, "feedback": self.probe.classifier}
        self.agent_backend = _backend(cfg.agent_model, cfg)
        self._shared = _shared_components(cfg.agent_args)
        self._kwargs: dict[str, dict[str, Any]] = {}
        self.agents = {m: self.make_agent(m) for m in cfg.methods}  # bad names fail before any work

    @property
    def user_ids(self) -> list[str]:
        """The run's users, in profile order (``user_ids`` of the config, when given, picks them)."""
        known = [p.user_id for p in self.probe.profiles]
        if self.cfg.user_ids is None:
            return known
        from personalization_env.naming import did_you_mean

        for u in self.cfg.user_ids:
            if u not in known:
                raise ValueError(f"unknown user {u!r}{did_you_mean(u, known)} (the profile set has {len(known)} "
                                 f"users: {known[0]} ... {known[-1]})")
        return [u for u in known if u in set(self.cfg.user_ids)]

    def make_env(self) -> MultiSessionCollabEnv:
        return MultiSessionCollabEnv(**self.env_kwargs)

    def make_agent(self, method: str) -> Agent:
        kw = self._kwargs.get(method)
        if kw is None:
            kw = _agent_kwargs(method, self.cfg, self.probe, model=self.agent_backend)
            kw = self._kwargs[method] = {k: self._shared.get(k, v) if isinstance(v, str) else v for k, v in kw.items()}
        return make_agent(method, **kw)

    def backends(self) -> dict[str, ChatBackend]:
        """Every model backend of the run, by role."""
        out = backends_of(self.probe)
        for m, a in self.agents.items():
            out.update({f"{role} ({m})": b for role, b in backends_of(self.probe, a).items() if role == "agent"})
        return out

    def roles(self) -> dict[str, dict[str, Any]]:
        """Each role's model identity (for :func:`benchmarks.identity.run_identity`)."""
        out = {}
        for role, b in backends_of(self.probe, self.agents[self.cfg.methods[0]]).items():
            inner = getattr(b, "inner", b)
            out[role] = {"model": inner.cache_id, "served": getattr(inner, "served", None)}
        return out


def _shared_components(agent_args: dict[str, Any]) -> dict[str, Any]:
    """The embedder and reranker named in ``agent_args``, built once for every lane's agent."""
    from agents.memory import make_embedder, make_reranker

    out: dict[str, Any] = {}
    if isinstance(agent_args.get("embedder"), str):
        out["embedder"] = make_embedder(agent_args["embedder"])
    if isinstance(agent_args.get("reranker"), str):
        out["reranker"] = make_reranker(agent_args["reranker"])
    return out


class RunExistsError(FileExistsError):
    """A fresh run was pointed at a folder that holds a run."""


class RunMismatchError(ValueError):
    """``resume`` / ``continue_from`` met a run made with another version or configuration."""


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)


def _prepare(cfg: RunConfig, world: World, identity: dict[str, Any]) -> dict[tuple[str, str], LaneCheckpoint]:
    """Check the run that ``resume`` / ``continue_from`` continues and return its lane checkpoints
    (copied into ``out`` when the run extends into another folder); clear ``out`` for a fresh run."""
    out = Path(cfg.out)
    source = Path(cfg.continue_from) if cfg.continue_from else (out if cfg.resume else None)
    has_run = (out / "sessions.jsonl").exists() or (out / checkpoint.LANES_DIR).exists()
    if source is None:
        if has_run and not cfg.overwrite:
            raise RunExistsError(f"{out} already holds a run; continue it with --resume, extend it with "
                                 f"--continue-from {out} --sessions N, or replace it with --overwrite")
        if has_run:
            shutil.rmtree(out / checkpoint.LANES_DIR, ignore_errors=True)
            (out / "sessions.jsonl").unlink(missing_ok=True)
        return {}
    meta_path = source / "metadata.json"
    if not meta_path.exists():
        if cfg.continue_from:
            raise FileNotFoundError(f"--continue-from {source}: no run there (no metadata.json); pass the folder "
                                    f"'msc run --out' wrote")
        return {}  # --resume on a folder without a run: start it
    old = json.loads(meta_path.read_text())
    verb = "continue" if cfg.continue_from else "resume"
    if "identity" not in old:
        raise RunMismatchError(f"cannot {verb} {source}: it was made by an older version of this package "
                               f"(no run identity in its metadata.json); start a new run")
    diff = difference(old["identity"], identity, allow_code_change=cfg.allow_code_change)
    if diff:
        raise RunMismatchError(f"cannot {verb} {source}: {diff}")
    old_sessions = int(old["config"]["sessions"])
    if cfg.resume and old_sessions != cfg.sessions:
        raise RunMismatchError(f"cannot resume {source}: it runs {old_sessions} sessions per user, this run "
                               f"asks for {cfg.sessions}; extend a run with --continue-from {source} --sessions N")
    if cfg.continue_from and cfg.sessions < old_sessions:
        raise RunMismatchError(f"cannot continue {source} to {cfg.sessions} sessions per user: it already has "
                               f"{old_sessions}; pass --sessions {old_sessions} or more")
    found = checkpoint.load_all(source)
    if source.resolve() != out.resolve():
        if has_run and not cfg.overwrite:
            raise RunExistsError(f"{out} already holds a run; pick another --out or pass --overwrite")
        shutil.rmtree(out / checkpoint.LANES_DIR, ignore_errors=True)
        for ck in found.values():
            checkpoint.save(out, ck)
    return found


def run(cfg: RunConfig, *, on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run the experiment described by ``cfg``; returns all session rows (also written to disk), in
    method, user and session order.

    Every row is identical whatever ``workers`` and ``lanes`` are (only ``seconds`` and the order of
    the lines in ``sessions.jsonl`` differ), and a resumed or continued run's rows equal those of an
    uninterrupted run.

    Raises:
        BackendUnavailableError: a model server is down (before any work, from the health check, or
            mid-run; finished sessions stay on disk and ``resume`` continues).
        RunExistsError, RunMismatchError, RunLockedError: the output folder cannot take this run.
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        world = World(cfg)
        health_check(world.backends(), wait=cfg.wait_for_servers)
        identity = run_identity(dataclasses.asdict(cfg), world.probe.profiles, world.probe.tasks, world.roles())
        found = _prepare(cfg, world, identity)
        users, order = world.user_ids, {m: i for i, m in enumerate(cfg.methods)}
        canonical = {u: i for i, u in enumerate(users)}

        def sort_key(r: dict[str, Any]) -> tuple[int, int, int]:
            return order.get(r["method"], len(order)), canonical.get(r["user_id"], len(canonical)), r["session"]

        kept: list[dict[str, Any]] = []
        todo: list[Lane] = []
        for m, u in shard_lanes(cfg.methods, users, cfg.shard):
            ck = found.get((m, u))
            if ck is not None:
                kept.extend(ck.rows[: cfg.sessions])
            if ck is None or ck.sessions_done < cfg.sessions:
                todo.append(Lane(m, u, ck))
        kept.sort(key=sort_key)
        path = out / "sessions.jsonl"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:  # the kept rows, rebuilt from the checkpoints
            f.writelines(json.dumps(r) + "\n" for r in kept)
        tmp.replace(path)

        meta_path = out / "metadata.json"
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        meta: dict[str, Any] = {"config": dataclasses.asdict(cfg), "identity": identity, "version": __version__,
                                "python": platform.python_version(), "users": len(users), "user_ids": users,
                                "simulated": cfg.agent_model.startswith("scripted"), "cache": cache_dir(cfg),
                                "started": now}
        source_meta = Path(cfg.continue_from or cfg.out) / "metadata.json"
        if (cfg.resume or cfg.continue_from) and source_meta.exists():
            old = json.loads(source_meta.read_text())
            meta["started"] = old.get("started", now)
            meta["resumed"] = [*old.get("resumed", []), now]
        lanes = cfg.lanes or (min(256, max(1, math.ceil(len(todo) / cfg.workers))) if uses_models(cfg) else 1)
        meta["lanes_per_worker"] = lanes
        _write_json(meta_path, meta)

        rows: list[dict[str, Any]] = []
        curves = _Curves(out, cfg, len(users), kept)
        total = (len(kept) + sum(cfg.sessions - (ln.resume_from.sessions_done if ln.resume_from else 0) for ln in todo))
        bar = Progress(total, "msc run", "session", initial=len(kept), enabled=cfg.progress)
        t0 = time.perf_counter()
        try:
            with open(path, "a", encoding="utf-8") as f:
                def handle(kind: str, payload: Any) -> None:
                    if kind == "unavailable":
                        raise BackendUnavailableError(payload)
                    f.write(json.dumps(payload) + "\n")
                    f.flush()
                    rows.append(payload)
                    curves.add(payload)
                    if on_row:
                        on_row(payload)
                    bar.update(int(payload["status"] == "ok"))

                if cfg.workers > 1:
                    _run_workers(world, todo, lanes, handle)
                else:
                    queue_ = deque(todo)
                    lock = threading.Lock()

                    def next_lane() -> Lane | None:
                        with lock:
                            return queue_.popleft() if queue_ else None

                    _pool(world, lanes).run(next_lane, handle)
        finally:
            bar.close()
            curves.close()
        failed = [r for r in rows if r["status"] != "ok"]
        meta.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), seconds=round(time.perf_counter() - t0, 2),
                    sessions_kept=len(kept), sessions_run=len(rows) - len(failed), errors=len(failed),
                    failures=[{k: r.get(k) for k in ("method", "user_id", "session", "error")} for r in failed],
                    llm=llm_totals(kept + rows))
        _write_json(meta_path, meta)
    return sorted(kept + rows, key=sort_key)


class _Curves:
    """The run's TensorBoard curves, opened at the first row: the event writer runs a thread, and the
    run's worker processes are forked before that (a fork copies no thread, only its locks)."""

    def __init__(self, out: Path, cfg: RunConfig, users: int, kept: list[dict[str, Any]]):
        self.args, self.kept, self.on = (out, cfg.methods, users), kept, cfg.tensorboard
        self.curves: Any = None
        if self.on:  # the import now, before lanes run (a half-second import holds every lane up)
            from benchmarks.tensorboard import load_writer

            try:
                load_writer()
            except ImportError as e:
                logger.warning("no TensorBoard curves: %s", e)
                self.on = False

    def add(self, row: dict[str, Any] | None) -> None:
        if self.on and self.curves is None:
            self.on = False
            from benchmarks.tensorboard import RunCurves

            self.curves = RunCurves(*self.args)
            for r in self.kept:
                self.curves.add(r)
        if self.curves is not None and row is not None:
            self.curves.add(row)

    def close(self) -> None:
        self.add(None)  # a run with nothing left to do still gets the curves of its kept sessions
        if self.curves is not None:
            self.curves.close()


def shard_lanes(methods: list[str], users: list[str], shard: str | None) -> list[tuple[str, str]]:
    """The (method, user) lanes of ``shard`` (``"i/N"``: the i-th of N contiguous, nearly equal blocks of
    the lanes in method-then-user order; None: all)."""
    lanes = [(m, u) for m in methods for u in users]
    if shard is None:
        return lanes
    i, _, n = shard.partition("/")
    lo, hi = int(i) * len(lanes) // int(n), (int(i) + 1) * len(lanes) // int(n)
    return lanes[lo:hi]


def _pool(world: World, lanes: int) -> LanePool:
    cfg = world.cfg
    return LanePool(world.make_env, world.make_agent, Path(cfg.out), cfg.sessions, cfg.seed, threads=lanes,
                    session_timeout=cfg.session_timeout, transcripts=cfg.transcripts)


def _die_with_parent(parent: int) -> None:  # pragma: no cover - runs in worker processes
    """A worker ends when the run's process does (so no orphan writes to a folder another run resumes)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _worker(world: World, lanes: int, tasks: Any, results: Any, parent: int) -> None:  # pragma: no cover
    _die_with_parent(parent)
    os.environ["OMP_NUM_THREADS"] = "1"  # for OpenMP runtimes first loaded in this process
    lock, done = threading.Lock(), [False]

    def next_lane() -> Lane | None:
        with lock:
            if done[0]:
                return None
            lane = tasks.get()
            done[0] = lane is None
            return lane

    try:
        _pool(world, lanes).run(next_lane, lambda kind, payload: results.put((kind, payload)))
    except Exception:  # noqa: BLE001 - reported to the parent, which stops the run
        results.put(("fail", traceback.format_exc()))
    results.put(("exit", None))


def _run_workers(world: World, todo: list[Lane], lanes: int, handle: Callable[[str, Any], None]) -> None:
    import multiprocessing as mp
    import queue

    try:  # imported once here, not in every worker (math-verify's import takes about a second)
        import math_verify  # noqa: F401
    except ImportError:
        pass
    ctx = mp.get_context("fork")
    tasks, results = ctx.Queue(), ctx.Queue()
    for lane in todo:
        tasks.put(lane)
    workers = world.cfg.workers
    for _ in range(workers):
        tasks.put(None)
    procs = [ctx.Process(target=_worker, args=(world, lanes, tasks, results, os.getpid()), daemon=True)
             for _ in range(workers)]
    for p in procs:
        p.start()
    alive = len(procs)
    try:
        while alive:
            try:
                kind, payload = results.get(timeout=2.0)
            except queue.Empty:
                dead = [p for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
                if dead:
                    raise RuntimeError(f"a worker process died (exit code {dead[0].exitcode}); finished sessions "
                                       f"are checkpointed: continue with --resume") from None
                continue
            if kind == "exit":
                alive -= 1
            elif kind == "fail":
                raise RuntimeError(f"a worker failed:\n{payload}")
            else:
                handle(kind, payload)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)


def llm_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Model calls, tokens, latency, retries, repairs and faults per role, summed over sessions."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        for role, d in r.get("llm", {}).items():
            t = out.setdefault(role, {"faults": {}})
            for k, v in d.items():
                if k == "faults":
                    for fk, fv in v.items():
                        t["faults"][fk] = t["faults"].get(fk, 0) + fv
                else:
                    t[k] = round(t.get(k, 0) + v, 4)
    agree = [r["sim_checker"] for r in rows if r.get("sim_checker")]
    if agree:
        turns = sum(a["turns"] for a in agree)
        enf = sum(a["enforced_checkable"] for a in agree)
        out["sim_checker"] = {"turns": turns, "unknown_ids": sum(a.get("unknown_ids", 0) for a in agree),
                              "agreement": round(sum(a["agree"] for a in agree) / turns, 4) if turns else None,
                              "enforced_confirmed": round(sum(a["enforced_confirmed"] for a in agree) / enf, 4) if enf else None}
    return out
