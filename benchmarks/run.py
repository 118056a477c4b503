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
    """feedback classifier for the env reward ("oracle" or "keyword")"""
    agent_model: str = "scripted"
    """chat backend spec of the agents"""
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
        kw["model"] = cfg.agent_model
    if "profiles" in params:
        kw["profiles"] = env.profiles
    if cls is not None and not accepts_all:
        kw = {k: v for k, v in kw.items() if k in params}
    return kw


def run_lane(env: MultiSessionCollabEnv, agent: Agent, user_id: str, sessions: int,
             seed: int | None = None) -> Iterator[dict[str, Any]]:
    """Run ``sessions`` sessions of one user; yields one row per session.

    ``seed``, when given, starts a fresh lifetime of the world with the lane's first session.
    """
    for k in range(sessions):
        t0 = time.perf_counter()
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
        except Exception:  # noqa: BLE001 - reported to the parent, which stops the run
            results.put(("fail", traceback.format_exc()))


def _parallel_rows(cfg: RunConfig, env_kwargs: dict[str, Any], users: list[str]) -> Iterator[dict[str, Any]]:
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    tasks, results = ctx.Queue(), ctx.Queue()
    n_chunks = max(1, min(len(users), 2 * cfg.workers))
    chunks = [users[i::n_chunks] for i in range(n_chunks)]
    for method in cfg.methods:
        for chunk in chunks:
            tasks.put((method, chunk))
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
            else:
                raise RuntimeError(f"a worker failed:\n{payload}")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)


def run(cfg: RunConfig, *, on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run the experiment described by ``cfg``; returns all session rows (also written to disk).

    With ``cfg.workers > 1`` the (method, users) lanes run in worker processes; every session's row
    is identical to a one-process run (only the order of the rows in the file differs).
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    env_kwargs = dict(profiles=cfg.profiles, n_users=cfg.n_users, datasets=cfg.datasets, data_dir=cfg.data_dir,
                      max_turns=cfg.max_turns, feedback=cfg.feedback)
    probe = MultiSessionCollabEnv(**env_kwargs)
    users = [p.user_id for p in probe.profiles]
    agents = {m: make_agent(m, **_agent_kwargs(m, cfg, probe)) for m in cfg.methods}  # bad names fail before any work
    meta = {"config": dataclasses.asdict(cfg), "version": __version__, "python": platform.python_version(),
            "users": len(users), "simulated": cfg.agent_model.startswith("scripted"),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (out / "metadata.json").write_text(json.dumps(meta, indent=2))
    rows: list[dict[str, Any]] = []
    total = len(cfg.methods) * len(users) * cfg.sessions
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="session", desc="msc run", leave=False)
    if cfg.workers > 1:
        source = _parallel_rows(cfg, env_kwargs, users)
    else:
        source = (row for m in cfg.methods for row in _lane_rows(cfg, env_kwargs, m, users, agent=agents[m]))
    with open(out / "sessions.jsonl", "w", encoding="utf-8") as f:
        for row in source:
            f.write(json.dumps(row) + "\n")
            f.flush()
            rows.append(row)
            if on_row:
                on_row(row)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    meta["errors"] = sum(1 for r in rows if r["status"] != "ok")
    (out / "metadata.json").write_text(json.dumps(meta, indent=2))
    return rows
