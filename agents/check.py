"""``check_agent``: validate a plug-in agent on the embedded world before benchmarking it."""

from __future__ import annotations

import json
import pickle
from typing import Any

from agents.base import Agent
from agents.registry import make_agent


class AgentCheckError(AssertionError):
    """A plug-in agent broke the Agent contract (the message says how)."""


def check_agent(agent: Agent | str, *, users: int = 3, sessions: int = 2, seed: int = 0, **agent_kwargs: Any) -> dict[str, Any]:
    """Run ``agent`` on a small embedded world and check the contract.

    Checks: replies are non-empty strings for every observation; several users are served by one
    instance (act_batch over users in one call); sessions end cleanly; ``state_dict`` is picklable and
    ``load_state_dict`` accepts it. Reports (does not require) whether a copy restored from the state
    gives the same first reply of the next session as the original (``resume_identical``), which
    holds for agents that are deterministic given their seed.

    Args:
        agent: an :class:`~agents.base.Agent`, or a name / ``"module:Class"`` spec.
        users, sessions, seed: size of the trial.
        **agent_kwargs: passed to :func:`~agents.registry.make_agent` when ``agent`` is a spec.

    Returns:
        A report with the sessions run and their mean user effort.

    Raises:
        AgentCheckError: naming the broken rule.
    """
    from personalization_env.env import MultiSessionCollabEnv

    spec = agent if isinstance(agent, str) else None
    if spec is not None:
        agent = make_agent(spec, **agent_kwargs)
    if not isinstance(agent, Agent):
        raise AgentCheckError(f"{type(agent).__name__} is not an agents.Agent subclass")
    try:
        fresh = pickle.loads(pickle.dumps(agent))  # an untrained copy, to restore the state into later
    except Exception as e:  # noqa: BLE001
        raise AgentCheckError(f"the agent cannot be pickled (needed to run it in worker processes): {e}") from e
    envs = [MultiSessionCollabEnv(n_users=users, tasks_per_dataset=20) for _ in range(users)]
    efforts = []
    for s in range(sessions):
        obs = []
        for i, env in enumerate(envs):
            o, _ = env.reset(seed=seed + i if s == 0 else None, options={"user_index": i})
            obs.append(o)
        live = list(range(users))
        while live:
            try:
                replies = agent.act_batch([obs[i] for i in live])
            except Exception as e:  # noqa: BLE001 - report any failure of the plug-in
                raise AgentCheckError(f"act_batch raised {type(e).__name__}: {e}") from e
            nxt = []
            for i, reply in zip(live, replies):
                if not isinstance(reply, str) or not reply.strip():
                    raise AgentCheckError(f"reply for user {obs[i]['user_id']!r} is {reply!r}; replies must be non-empty str")
                o, r, te, tr, info = envs[i].step(reply)
                agent.observe(o, r, te, tr, info)
                obs[i] = o
                if te or tr:
                    efforts.append(info["metrics"]["user_effort"])
                else:
                    nxt.append(i)
            live = nxt
    try:
        state = agent.state_dict()
        blob = pickle.dumps(state)
    except Exception as e:  # noqa: BLE001
        raise AgentCheckError(f"state_dict() is not picklable: {e}") from e
    try:
        json.dumps(state)
        json_ok = True
    except (TypeError, ValueError):
        json_ok = False
    clone = fresh
    try:
        clone.load_state_dict(pickle.loads(blob))
    except Exception as e:  # noqa: BLE001
        raise AgentCheckError(f"load_state_dict(state_dict()) raised {type(e).__name__}: {e}") from e
    o1, _ = envs[0].reset(options={"user_index": 0})
    o2 = dict(o1)
    same = agent.act(o1) == clone.act(o2)
    return {"agent": type(agent).__name__, "sessions": len(efforts), "mean_user_effort": sum(efforts) / len(efforts),
            "state_json_serialisable": json_ok, "resume_identical": same}
