"""Plug-in agents for the runner's tests, run by their "tests.benchmarks.plugins:Class" specs.

They are reflection agents (a model call at every session's end, notes carried across sessions)
with one test behaviour each, switched on by environment variables so worker processes see it too:

- ``MSC_TEST_FAIL_AT="<user_id>/<session>"``: :class:`FailingAgent` raises in that session.
- ``MSC_TEST_WEDGE_AT="<user_id>/<session>"``: :class:`WedgedAgent` blocks (60 s) in that session.
- ``MSC_TEST_START_LOG=<file>``: :class:`StartLogAgent` appends "<user_id> <session>" to the file
  whenever it starts a session.
- :class:`OracleSpyAgent` overrides the public ``observe`` (so the base class cannot strip anything for
  it) and fails if ``info`` ever holds the ground truth.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Mapping

from agents.reflection import ReflectionAgent


def _at(var: str, obs: Mapping[str, Any]) -> bool:
    return os.environ.get(var) == f"{obs['user_id']}/{obs['session']}"


class FailingAgent(ReflectionAgent):
    name = "failing"

    def _act_batch(self, observations: list[Mapping[str, Any]]) -> list[str]:
        if any(_at("MSC_TEST_FAIL_AT", o) for o in observations):
            raise ValueError("injected failure")
        return super()._act_batch(observations)


class WedgedAgent(ReflectionAgent):
    name = "wedged"

    def _act_batch(self, observations: list[Mapping[str, Any]]) -> list[str]:
        if any(_at("MSC_TEST_WEDGE_AT", o) for o in observations):
            threading.Event().wait(60)  # stuck in code that makes no model call
        return super()._act_batch(observations)


class StartLogAgent(ReflectionAgent):
    name = "start_log"

    def _act_batch(self, observations: list[Mapping[str, Any]]) -> list[str]:
        log = os.environ.get("MSC_TEST_START_LOG")
        for o in observations:
            if log and int(o.get("turn", 0)) == 0:
                fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, f"{o['user_id']} {o['session']}\n".encode())
                finally:
                    os.close(fd)
        return super()._act_batch(observations)


class OracleSpyAgent(ReflectionAgent):
    name = "oracle_spy"

    def observe(self, obs: Mapping[str, Any], reward: float, terminated: bool, truncated: bool,
                info: Mapping[str, Any]) -> None:
        if "oracle" in info:
            raise ValueError("the agent was handed info['oracle']")
        super().observe(obs, reward, terminated, truncated, info)


class ProfileReader(ReflectionAgent):
    """Takes a ``profiles`` argument without declaring itself privileged: the runner must not fill it."""

    name = "profile_reader"

    def __init__(self, profiles: Any = (), **kwargs: Any):
        super().__init__(**kwargs)
        self.profiles = profiles
