"""The rule-based user simulator: the embedded, deterministic, programmatically verifiable default.

Per assistant reply the user:

1. runs the checker of every preference that applies to the reply (condition + situation);
2. if any fails, restates one or more of them in natural, varied wording and does nothing else that
   turn (label ``neg_constraint_restate``; each such turn is one unit of User Effort); with trait
   ``notice_prob`` < 1 the user notices each violation only with that probability (an inattentive
   reader; 1, every violation, by default);
3. otherwise, if the reply states an answer: a correct one becomes the draft answer and the user ends
   satisfied (``pos_praise``); a wrong one is caught with probability ``verify_prob`` (``neg_correction``,
   draft unchanged), else adopted as the draft and the user ends satisfied (the task then fails);
4. a compliant reply without an answer is progress when it checks in with a question
   (``pos_progress``), confusion otherwise (``neg_confusion``);
5. the user gives up when its turn budget (trait ``patience``, user turns) is spent.

The draft answer starts as None ("I don't know") and changes only after a helpful, compliant reply,
as in MultiSessionCollab. Preferences without a checker are never enforced by this simulator.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Mapping

import numpy as np

from personalization_env.preferences import phrase
from personalization_env.preferences.checkers import run_check
from personalization_env.tasks import extract_answer, is_correct
from personalization_env.types import Profile, Task
from personalization_env.users.base import UserSession, UserSimulator, UserTurn
from personalization_env.users.context import reply_context

#: Default user traits; a profile's ``traits`` override them.
DEFAULT_TRAITS: Mapping[str, Any] = {
    "patience": None,  # user turns before giving up; None = only the env's max_turns ends the session
    "verify_prob": 0.3,  # chance the user notices a wrong answer (assumption; MSC users do not see the solution)
    "max_restate": 2,  # preferences restated in one enforcing turn at most
    "persona_intro_prob": 0.3,  # chance the opening message mentions the persona
    "recheck_prob": 0.0,  # chance the user checks an adopted answer and comes back before ending (0 = never)
    "notice_prob": 1.0,  # chance the user notices each violated preference in a reply (1 = every violation)
}

#: traits that are probabilities (checked to lie in [0, 1])
_PROBABILITY_TRAITS = ("verify_prob", "persona_intro_prob", "recheck_prob", "notice_prob")


@cache
def _phrases() -> dict[str, Any]:
    with resources.files("personalization_env.users").joinpath("data/phrases.json").open(encoding="utf-8") as f:
        return json.load(f)


def _pick(rng: np.random.Generator, items: list[str]) -> str:
    return items[int(rng.integers(len(items)))]


def _persona_intro(persona: str) -> str:
    p = persona.strip().rstrip(".")
    if p[:2].lower() in ("a ", "an"):
        return f"For context, I'm {p[0].lower()}{p[1:]}."
    return f"For context: {p}."


class RuleUserSession(UserSession):
    """One session of the rule-based user."""

    def __init__(self, profile: Profile, task: Task, rng: np.random.Generator, traits: Mapping[str, Any]):
        self.profile = profile
        self.task = task
        self.rng = rng
        self.traits = traits
        self.draft: str | None = None
        self.user_turns = 0  # messages sent so far
        self.last_message = ""
        self.last_label: str | None = None
        self.done = False
        self.checking = False  # the user adopted an answer and will come back with the result of checking it
        self.checkable = [p for p in profile.preferences if p.type.check is not None]
        # what every reply is checked against: the checkable preferences whose condition can hold for
        # this task, with their ids (Preference.id is derived on every access)
        self._checks = [(p, p.id, p.condition, p.type.check) for p in self.checkable
                        if not p.condition.task_kinds or task.kind in p.condition.task_kinds]

    def opening(self) -> UserTurn:
        ph = _phrases()
        msg = _pick(self.rng, ph["opening"]).format(problem=self.task.problem)
        if self.profile.persona and self.rng.random() < self.traits["persona_intro_prob"]:
            msg = f"{_persona_intro(self.profile.persona)} {msg}"
        return self._emit(msg, "neutral")

    def _emit(self, message: str, label: str, **kw: Any) -> UserTurn:
        self.user_turns += 1
        self.last_message, self.last_label = message, label
        if kw.get("done"):
            self.done = True
        return UserTurn(message=message, label=label, draft_answer=self.draft, **kw)

    def respond(self, reply: str) -> UserTurn:
        if self.done:
            raise RuntimeError("this user session has ended; start a new one")
        message, label, kw = self._react(reply)
        patience = self.traits["patience"]
        if not kw.get("done") and patience is not None and self.user_turns + 1 >= patience:
            message, label = _pick(self.rng, _phrases()["give_up"]), "neutral"
            kw = {**kw, "done": True, "outcome": "gave_up", "enforced_ids": ()}
        return self._emit(message, label, **kw)

    def _react(self, reply: str) -> tuple[str, str, dict[str, Any]]:
        """Decide the next message, its true label and bookkeeping (no state change but the draft)."""
        ph = _phrases()
        answer = extract_answer(self.task, reply)
        ctx = reply_context(reply, self.task, turn=self.user_turns, previous_user_message=self.last_message,
                            previous_label=self.last_label, answer=answer)
        verdicts = {pid: run_check(check, reply, ctx) for _, pid, cond, check in self._checks if cond.applies(ctx)}
        violated = [p for p, pid, _, _ in self._checks if verdicts.get(pid) is False]
        notice = self.traits["notice_prob"]
        if violated and notice < 1.0:  # an inattentive user misses some violations (the verdicts still record them)
            violated = [p for p in violated if self.rng.random() < notice]
        if violated:
            order = self.rng.permutation(len(violated))
            k = min(len(violated), int(self.traits["max_restate"]))
            k = 1 if k <= 1 or self.rng.random() < 0.5 else k
            chosen = [violated[int(i)] for i in order[:k]]
            parts = [phrase(p, self.rng, persona=self.profile.persona) for p in chosen]
            msg = _pick(self.rng, ph["restate_openers"]) + parts[0]
            for extra in parts[1:]:
                msg += _pick(self.rng, ph["restate_joiners"]) + (extra if extra[:2] == "I " else extra[0].lower() + extra[1:])
            return msg, "neg_constraint_restate", {"enforced_ids": tuple(p.id for p in chosen), "verdicts": verdicts}
        if self.checking:  # back from checking the adopted draft; the reply in between was only read
            self.checking = False
            # the check finds a wrong draft as often as the user notices a wrong answer (verify_prob)
            if is_correct(self.task, self.draft) or self.rng.random() >= self.traits["verify_prob"]:
                return _pick(self.rng, ph["recheck_ok"]), "pos_praise", {"done": True, "outcome": "satisfied",
                                                                    "verdicts": verdicts}
            return (_pick(self.rng, ph["recheck_fail_prefix"]) + _pick(self.rng, ph["correction"]), "neg_correction",
                    {"verdicts": verdicts})
        if answer is not None:
            if is_correct(self.task, answer) or self.rng.random() >= self.traits["verify_prob"]:
                self.draft = answer
                recheck = self.traits["recheck_prob"]
                if recheck and self.rng.random() < recheck:
                    self.checking = True
                    return _pick(self.rng, ph["recheck_later"]), "pos_praise", {"verdicts": verdicts}
                return _pick(self.rng, ph["praise"]), "pos_praise", {"done": True, "outcome": "satisfied",
                                                                     "verdicts": verdicts}
            return _pick(self.rng, ph["correction"]), "neg_correction", {"verdicts": verdicts}
        if "?" in reply:  # a partial reply that checks in ("Does this make sense so far?")
            return _pick(self.rng, ph["progress"]), "pos_progress", {"verdicts": verdicts}
        return _pick(self.rng, ph["confusion"]), "neg_confusion", {"verdicts": verdicts}


class RuleUserSimulator(UserSimulator):
    """The rule-based simulator (see module docstring).

    Args:
        traits: overrides of :data:`DEFAULT_TRAITS` for every user (a profile's own traits win).
    """

    name = "rule"

    def __init__(self, traits: Mapping[str, Any] | None = None):
        bad = sorted(set(traits or {}) - set(DEFAULT_TRAITS))
        if bad:
            raise ValueError(f"unknown user trait(s) {bad}; known: {sorted(DEFAULT_TRAITS)}")
        for name in _PROBABILITY_TRAITS:
            v = (traits or {}).get(name, DEFAULT_TRAITS[name])
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ValueError(f"user trait {name} must be a probability in [0, 1], got {v!r}")
        self.traits = {**DEFAULT_TRAITS, **(traits or {})}

    def start(self, profile: Profile, task: Task, rng: np.random.Generator) -> tuple[RuleUserSession, UserTurn]:
        traits = {**self.traits, **{k: v for k, v in profile.traits.items() if k in DEFAULT_TRAITS}}
        session = RuleUserSession(profile, task, rng, traits)
        return session, session.opening()
