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

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("methods is empty; name at least one agent, e.g. --methods vanilla,oracle")
        if not isinstance(self.sessions, int) or self.sessions < 1:
            raise ValueError(f"sessions must be a positive int, got {self.sessions!r}")


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


def run(cfg: RunConfig, *, on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run the experiment described by ``cfg``; returns all session rows (also written to disk)."""
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
    with open(out / "sessions.jsonl", "w", encoding="utf-8") as f:
        for method in cfg.methods:
            env = MultiSessionCollabEnv(**env_kwargs)
            agent = agents[method]
            for i, uid in enumerate(users):
                for row in run_lane(env, agent, uid, cfg.sessions, seed=cfg.seed if i == 0 else None):
                    row = {"method": method, **row}
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
