"""The user-simulator protocol shared by the rule, LLM, hybrid and human simulators."""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from personalization_env.naming import did_you_mean
from personalization_env.types import Profile, Task


@dataclass(frozen=True)
class UserTurn:
    """What the simulated user did in one turn.

    Args:
        message: the user's words.
        label: the true feedback label of this message (ground truth for classifiers).
        enforced_ids: preference ids the user restated this turn (User Effort counts such turns).
        draft_answer: the user's current draft answer (None = "I don't know").
        done: the user ended the session with this message.
        outcome: on the last turn, ``"satisfied"`` or ``"gave_up"``.
        verdicts: checker verdict per applicable, checkable preference id for the reply answered
            (True = complied).
    """

    message: str
    label: str
    enforced_ids: tuple[str, ...] = ()
    draft_answer: str | None = None
    done: bool = False
    outcome: str | None = None
    verdicts: Mapping[str, bool] = field(default_factory=dict)


class UserSession(abc.ABC):
    """One session of one simulated user. Created by :meth:`UserSimulator.start`."""

    profile: Profile
    task: Task

    @abc.abstractmethod
    def respond(self, reply: str) -> UserTurn:
        """React to the assistant's ``reply``."""


class UserSimulator(abc.ABC):
    """Makes user sessions; stateless between sessions (what persists lives in the agent)."""

    name: str = "simulator"

    @abc.abstractmethod
    def start(self, profile: Profile, task: Task, rng: np.random.Generator) -> tuple[UserSession, UserTurn]:
        """Open a session: returns the session and the user's first message."""

    def start_batch(self, profiles: Sequence[Profile], tasks: Sequence[Task],
                    rngs: Sequence[np.random.Generator]) -> list[tuple[UserSession, UserTurn]]:
        """Open several sessions at once (LLM simulators send their opening requests together)."""
        return [self.start(p, t, g) for p, t, g in zip(profiles, tasks, rngs)]

    def respond_batch(self, sessions: Sequence[UserSession], replies: Sequence[str]) -> list[UserTurn]:
        """React to several replies at once (LLM simulators batch this into one model call)."""
        return [s.respond(r) for s, r in zip(sessions, replies)]


SIMULATORS: dict[str, str] = {
    "rule": "personalization_env.users.rule:RuleUserSimulator",
    "llm": "personalization_env.users.llm:LLMUserSimulator",
    "hybrid": "personalization_env.users.llm:HybridUserSimulator",
    "human": "personalization_env.users.human:HumanUserSimulator",
}


def _simulator_class(spec: str) -> type:
    family = str(spec).partition(":")[0]
    if family not in SIMULATORS:
        raise ValueError(f"unknown user simulator {spec!r}{did_you_mean(family, SIMULATORS)} "
                         f"known: {sorted(SIMULATORS)}")
    mod, _, attr = SIMULATORS[family].partition(":")
    return getattr(importlib.import_module(mod), attr)


def takes_traits(spec: str) -> bool:
    """Whether the simulator ``spec`` names (``"rule"``, ``"hybrid:<backend>"``, ...) has rule-user
    ``traits`` (the rule and hybrid simulators do; the LLM and human ones do not)."""
    import inspect

    return "traits" in inspect.signature(_simulator_class(spec)).parameters


def make_user_simulator(spec: str | UserSimulator, **kwargs: Any) -> UserSimulator:
    """Build a simulator from ``"rule"``, ``"llm:<backend spec>"`` or ``"hybrid:<backend spec>"``
    (e.g. ``"llm:openai:meta-llama/Llama-3.3-70B-Instruct@http://node:8000/v1"``); ``kwargs`` go to its
    constructor."""
    if isinstance(spec, UserSimulator):
        return spec
    cls = _simulator_class(spec)
    rest = str(spec).partition(":")[2]
    if rest:
        kwargs.setdefault("model", rest)
    return cls(**kwargs)
