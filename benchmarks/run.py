"""The experiment runner: methods x users x sessions on one world, one lane per (method, user).

Results go to ``<out>/metadata.json`` (the configuration) and ``<out>/sessions.jsonl`` (one row per
session, written as soon as the session ends, so nothing finished is lost on a crash). A session
that raises is recorded as a ``status="error"`` row, never as a silent zero.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import platform
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from agents import make_agent
from agents.base import Agent
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
    profiles: str = "msc"
    """profile set ("msc", "complex", "complex-<k>") or a file"""
    n_users: int | None = 50
    """first N users of the set (None = all)"""
    sessions: int = 10
    """sessions per user"""
    datasets: str = "gen_math,gen_logic,gen_mc"
    """comma-separated task datasets"""
    data_dir: str | None = None
    """folder of MultiSessionCollab caches (for math_hard, mmlu, ...)"""
    max_turns: int = 10
    """user turns per session before truncation"""
    feedback: str = "oracle"
    """feedback classifier for the env reward ("oracle", "keyword", "llm:<backend spec>", "llm_local:<model>")"""
    agent_model: str = "scripted"
    """chat backend spec of the agents ("scripted", "openai:<model>@<url>", "hf:<path>", "vllm:<model>")"""
    user: str = "rule"
    """user simulator ("rule", "llm:<backend spec>", "hybrid:<backend spec>")"""
    cache: str | None = None
    """response-cache folder for model backends (None: <out>/cache when any role uses a model server)"""
    resume: bool = False
    """keep the finished (method, user) lanes of an earlier run in ``out`` and run the rest"""
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
    workers: int = 1
    """worker processes (lanes of (method, users) run in parallel; results are identical)"""

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("methods is empty; name at least one agent, e.g. --methods vanilla,oracle")
        if not isinstance(self.sessions, int) or self.sessions < 1:
            raise ValueError(f"sessions must be a positive int, got {self.sessions!r}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a positive int, got {self.workers!r}")
        if self.replay and self.cache is None:
            raise ValueError("replay needs the cache folder of the run to replay: pass --cache <folder>")
        if self.methods == ["all"]:
            from agents.registry import METHODS

            self.methods = [*METHODS, "oracle"]


def _agent_kwargs(name: str, cfg: RunConfig, env: MultiSessionCollabEnv) -> dict[str, Any]:
    from agents.registry import AGENTS, _resolve

    cls = _resolve(name if ":" in name else AGENTS[name]) if (":" in name or name in AGENTS) else None
    kw: dict[str, Any] = {"seed": cfg.seed}
    params = inspect.signature(cls.__init__).parameters if cls else {}
    accepts_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if "model" in params or accepts_all:
        kw["model"] = _backend(cfg.agent_model, cfg)
    if "profiles" in params:
        kw["profiles"] = env.profiles
    for k, v in cfg.agent_args.items():
        if k in params or accepts_all:
            kw[k] = v
    if cls is not None and not accepts_all:
        kw = {k: v for k, v in kw.items() if k in params}
    return kw


def uses_models(cfg: RunConfig) -> bool:
    """Whether any role talks to a real model (then responses are cached by default)."""
    specs = [cfg.agent_model, cfg.user.partition(":")[2], cfg.feedback.partition(":")[2] if ":" in cfg.feedback else ""]
    return any(s and not s.startswith("scripted") for s in specs)


def cache_dir(cfg: RunConfig) -> str | None:
    if cfg.cache is not None:
        return cfg.cache
    return str(Path(cfg.out) / "cache") if uses_models(cfg) else None


def _backend(spec: str, cfg: RunConfig) -> ChatBackend:
    return make_backend(spec, cache=cache_dir(cfg), replay=cfg.replay)


def env_kwargs_of(cfg: RunConfig) -> dict[str, Any]:
    """The env's constructor arguments (the simulator and judge get the run's cache)."""
    from personalization_env.users import make_user_simulator

    family, _, rest = cfg.user.partition(":")
    user: Any = cfg.user
    if rest:
        user = make_user_simulator(family, model=_backend(rest, cfg))
    feedback: Any = cfg.feedback
    fam, _, frest = cfg.feedback.partition(":")
    if fam in ("llm", "llm_local"):
        from personalization_env.feedback.llm_judge import LLMJudgeClassifier, local_spec

        if fam == "llm_local" and not frest:
            raise ValueError("the 'llm_local' judge needs the served model: --feedback llm_local:<model>")
        spec = local_spec(frest) if fam == "llm_local" else (frest or "scripted")
        feedback = LLMJudgeClassifier(_backend(spec, cfg))
    return dict(profiles=cfg.profiles, n_users=cfg.n_users, datasets=cfg.datasets, data_dir=cfg.data_dir,
                max_turns=cfg.max_turns, feedback=feedback, user_simulator=user)


def backends_of(env: MultiSessionCollabEnv, agent: Agent | None = None) -> dict[str, ChatBackend]:
    """The model backends a lane uses, by role (for health checks and per-session accounting)."""
    out: dict[str, ChatBackend] = {}
    for role, owner in (("agent", agent), ("user", env.simulator), ("judge", env.classifier)):
        b = getattr(owner, "backend", None)
        if isinstance(b, ChatBackend) and b.name != "scripted":
            out[role] = b
    return out


def health_check(backends: dict[str, ChatBackend]) -> None:
    """Every model server answers before any work starts (raises :class:`BackendUnavailableError`)."""
    seen = set()
    for role, b in backends.items():
        inner = getattr(b, "inner", b)
        if getattr(b, "replay", False) or id(inner) in seen or not hasattr(inner, "health"):
            continue
        seen.add(id(inner))
        try:
            inner.health()
        except BackendUnavailableError as e:
            raise BackendUnavailableError(f"{role} model: {e}") from None


def _llm_counts(backends: dict[str, ChatBackend]) -> dict[str, dict[str, Any]]:
    out = {}
    for role, b in backends.items():
        st = b.stats
        calls = sum(int(u["calls"]) for u in getattr(b, "usage", {}).values())
        tokens = sum(int(u["prompt_tokens"]) + int(u["completion_tokens"]) for u in getattr(b, "usage", {}).values())
        latency = sum(float(u.get("latency_s", 0.0)) for u in getattr(b, "usage", {}).values())
        out[role] = {"calls": calls, "tokens": tokens, "latency_s": latency, "retries": int(st.get("retries", 0)),
                     "repairs": int(st.get("repairs", 0)), "faults": dict(st.get("faults", {})),
                     "cache_hits": int(getattr(b, "hits", 0))}
    return out


def _delta(after: dict[str, dict[str, Any]], before: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for role, a in after.items():
        b = before.get(role, {})
        d = {k: (round(v - b.get(k, 0), 4) if isinstance(v, float) else v - b.get(k, 0))
             for k, v in a.items() if k != "faults"}
        d["faults"] = {k: v - b.get("faults", {}).get(k, 0) for k, v in a["faults"].items()
                       if v - b.get("faults", {}).get(k, 0)}
        out[role] = d
    return out


def run_lane(env: MultiSessionCollabEnv, agent: Agent, user_id: str, sessions: int,
             seed: int | None = None) -> Iterator[dict[str, Any]]:
    """Run ``sessions`` sessions of one user; yields one row per session.

    ``seed``, when given, starts a fresh lifetime of the world with the lane's first session.
    """
    backends = backends_of(env, agent)
    for k in range(sessions):
        t0 = time.perf_counter()
        before = _llm_counts(backends) if backends else {}
        obs, info = env.reset(seed=seed if k == 0 else None, options={"user_id": user_id})
        row: dict[str, Any] = {"user_id": user_id, "session": info["session"], "task_id": info["task_id"],
                               "dataset": info["dataset"]}
        try:
            ret, labels = 0.0, []
            while True:
                reply = agent.act(obs)
                obs, reward, terminated, truncated, info = env.step(reply)
                agent.observe(obs, reward, terminated, truncated, info)
                ret += reward
                labels.append(info["oracle"]["label"])
                if terminated or truncated:
                    break
            row.update(status="ok", **info["metrics"], **{"return": ret, "labels": labels})
            stats = agent.session_stats(user_id)
            if stats:
                row["agent_stats"] = stats
            if "sim_checker" in info:
                row["sim_checker"] = info["sim_checker"]
            if backends:
                row["llm"] = _delta(_llm_counts(backends), before)
        except BackendUnavailableError:
            agent.end_session(user_id)
            raise  # the server is down: stop the run; the session is not recorded and reruns on --resume
        except Exception as e:  # noqa: BLE001 - a failed session is recorded, never lost
            logger.exception("session failed: user %s session %s", user_id, row["session"])
            row.update(status="error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=5))
            agent.end_session(user_id)
        row["seconds"] = round(time.perf_counter() - t0, 4)
        yield row


def _lane_rows(cfg: RunConfig, env_kwargs: dict[str, Any], method: str, users: list[str],
               agent: Agent | None = None, env: MultiSessionCollabEnv | None = None) -> Iterator[dict[str, Any]]:
    """Rows of ``method`` for a chunk of users (one agent, one env; the world is seeded per chunk, so
    a user's sessions do not depend on how users are chunked)."""
    env = env or MultiSessionCollabEnv(**env_kwargs)
    agent = agent or make_agent(method, **_agent_kwargs(method, cfg, env))
    for i, uid in enumerate(users):
        for row in run_lane(env, agent, uid, cfg.sessions, seed=cfg.seed if i == 0 else None):
            yield {"method": method, **row}


def _worker(tasks: Any, results: Any, cfg: RunConfig, env_kwargs: dict[str, Any]) -> None:  # pragma: no cover
    import os
    import sys

    os.environ["OMP_NUM_THREADS"] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    while True:
        task = tasks.get()
        if task is None:
            results.put(("exit", None))
            return
        method, users = task
        try:
            for row in _lane_rows(cfg, env_kwargs, method, users):
                results.put(("row", row))
        except BackendUnavailableError as e:
            results.put(("unavailable", str(e)))
        except Exception:  # noqa: BLE001 - reported to the parent, which stops the run
            results.put(("fail", traceback.format_exc()))


def _parallel_rows(cfg: RunConfig, env_kwargs: dict[str, Any], todo: dict[str, list[str]]) -> Iterator[dict[str, Any]]:
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    tasks, results = ctx.Queue(), ctx.Queue()
    for method, users in todo.items():
        n_chunks = max(1, min(len(users), 2 * cfg.workers))
        for i in range(n_chunks):
            if users[i::n_chunks]:
                tasks.put((method, users[i::n_chunks]))
    for _ in range(cfg.workers):
        tasks.put(None)
    procs = [ctx.Process(target=_worker, args=(tasks, results, cfg, env_kwargs), daemon=True)
             for _ in range(cfg.workers)]
    for p in procs:
        p.start()
    alive = len(procs)
    try:
        while alive:
            kind, payload = results.get()
            if kind == "row":
                yield payload
            elif kind == "exit":
                alive -= 1
            elif kind == "unavailable":
                raise BackendUnavailableError(payload)
            else:
                raise RuntimeError(f"a worker failed:\n{payload}")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)


def _finished_lanes(path: Path, sessions: int) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
    """Rows of an earlier run whose (method, user) lane finished every session, and those lanes."""
    by_lane: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if path.exists():
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash: its lane reruns
                by_lane.setdefault((row["method"], row["user_id"]), []).append(row)
    done = {lane for lane, rows in by_lane.items() if len({r["session"] for r in rows}) >= sessions}
    return [r for lane in sorted(done) for r in sorted(by_lane[lane], key=lambda r: r["session"])], done


def run(cfg: RunConfig, *, on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run the experiment described by ``cfg``; returns all session rows (also written to disk).

    With ``cfg.workers > 1`` the (method, users) lanes run in worker processes; every session's row
    is identical to a one-process run (only the order of the rows in the file differs). With
    ``cfg.resume`` the finished lanes of the run in ``cfg.out`` are kept and the others run again
    from their first session (their model calls come back from the response cache).

    Raises:
        BackendUnavailableError: a model server is down (before any work, from the health check, or
            mid-run; finished sessions stay on disk and ``resume`` continues).
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    env_kwargs = env_kwargs_of(cfg)
    probe = MultiSessionCollabEnv(**env_kwargs)
    users = [p.user_id for p in probe.profiles]
    agents = {m: make_agent(m, **_agent_kwargs(m, cfg, probe)) for m in cfg.methods}  # bad names fail before any work
    backends = backends_of(probe)
    for m, a in agents.items():
        backends.update({f"{role} ({m})": b for role, b in backends_of(probe, a).items() if role == "agent"})
    health_check(backends)
    path = out / "sessions.jsonl"
    kept, done = _finished_lanes(path, cfg.sessions) if cfg.resume else ([], set())
    todo = {m: [u for u in users if (m, u) not in done] for m in cfg.methods}
    todo = {m: us for m, us in todo.items() if us}
    meta_path = out / "metadata.json"
    meta = {"config": dataclasses.asdict(cfg), "version": __version__, "python": platform.python_version(),
            "users": len(users), "simulated": cfg.agent_model.startswith("scripted"),
            "cache": cache_dir(cfg), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if cfg.resume and meta_path.exists():
        old = json.loads(meta_path.read_text())
        meta["started"] = old.get("started", meta["started"])
        meta["resumed"] = [*old.get("resumed", []), time.strftime("%Y-%m-%dT%H:%M:%S%z")]
    meta_path.write_text(json.dumps(meta, indent=2))
    rows: list[dict[str, Any]] = list(kept)
    total = len(cfg.methods) * len(users) * cfg.sessions
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=len(kept), unit="session", desc="msc run", leave=False)
    if cfg.workers > 1:
        source = _parallel_rows(cfg, env_kwargs, todo)
    else:
        source = (row for m, us in todo.items() for row in _lane_rows(cfg, env_kwargs, m, us, agent=agents[m]))
    tmp = path.with_suffix(".jsonl.tmp")
    if cfg.resume:  # rewrite the file with the finished lanes only, atomically
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        tmp.replace(path)
    try:
        with open(path, "a" if cfg.resume else "w", encoding="utf-8") as f:
            for row in source:
                f.write(json.dumps(row) + "\n")
                f.flush()
                rows.append(row)
                if on_row:
                    on_row(row)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    meta["errors"] = sum(1 for r in rows if r["status"] != "ok")
    meta["llm"] = llm_totals(rows)
    meta_path.write_text(json.dumps(meta, indent=2))
    return rows


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
