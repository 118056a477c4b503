"""LLM user simulators: ``llm`` (the model plays the user) and ``hybrid`` (the model writes the words,
the checkers decide what is enforced).

**llm** (spec ``llm:<backend spec>``, e.g. ``llm:openai:meta-llama/Llama-3.3-70B-Instruct@http://node:8000/v1``).
The model gets the persona, every preference with its id, the problem, and the rules of the game; the
assistant's replies come to it as user messages, each followed by the explicit draft-answer state.
It answers with a JSON object (:data:`USER_TURN_SCHEMA`: message, label, enforced preference ids,
draft answer, done flag), validated and repaired by :mod:`personalization_env.llm.structured`; the
session ends on the ``done`` flag, never on a substring. Ids the model invents are dropped and
counted. For every reply the checkers of the applicable checkable preferences also run, so each
session reports how often the simulator agreed with them (``UserTurn.verdicts`` and the session's
``sim_checker`` counts: turns where "something checkable was violated" and "the simulator enforced a
checkable preference" agree, and enforced checkable ids the checkers confirm).

**hybrid** (spec ``hybrid:<backend spec>``). The rule simulator decides every turn (checkers wherever a
preference is checkable, so User Effort is reproducible); the model only rewrites the decided
message in the persona's voice, keeping every request in it. Its output is validated like the llm
simulator's; when the rewrite drops the message, the rule wording is kept (counted).

Both work with any chat backend. On the embedded ``scripted`` backend the ``user`` role replays the rule
simulator over the transcript (see :func:`scripted_user_reply`), so the whole LLM path — prompts,
JSON, validation, batching, caching, servers — runs and is tested without weights.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Mapping, Sequence

import numpy as np

from personalization_env.feedback.labels import LABELS
from personalization_env.llm.base import ChatBackend, ChatRequest, make_backend
from personalization_env.llm.blocks import block, find_block
from personalization_env.llm.structured import generate_json
from personalization_env.preferences.checkers import run_check
from personalization_env.tasks import extract_answer
from personalization_env.types import Message, Profile, Task
from personalization_env.users.base import UserSession, UserSimulator, UserTurn
from personalization_env.users.context import reply_context
from personalization_env.users.rule import DEFAULT_TRAITS, RuleUserSession

USER_TURN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "minLength": 1},
        "label": {"type": "string", "enum": list(LABELS)},
        "enforced_preferences": {"type": "array", "items": {"type": "string"}},
        "draft_answer": {"type": ["string", "null"]},
        "done": {"type": "boolean"},
    },
    "required": ["message", "label", "enforced_preferences", "draft_answer", "done"],
}

REWRITE_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"message": {"type": "string", "minLength": 1}}, "required": ["message"],
}

_SYSTEM = """You are role-playing a USER who asks an AI assistant for help with a problem. Stay in character.

## Persona
{persona}

## Your preferences (the assistant does not know them)
{preferences}

## Your problem
{problem}

## Rules
- You want a correct, final answer to the problem, and replies that follow every preference above that applies.
- When a reply breaks a preference that applies, restate it (one or two at a time) in your own words and say nothing
  else; list the ids of the preferences you restated in "enforced_preferences".
- When a reply that follows your preferences gives an answer you believe, adopt it as your draft answer and end
  the session ("done": true). When you think the answer is wrong, say so.
- Keep your own draft answer up to date ("draft_answer", null while you have none).
- "label" classifies your message: {labels}.
- Answer with one JSON object only: {{"message": ..., "label": ..., "enforced_preferences": [...],
  "draft_answer": ..., "done": ...}}."""

_OPEN = "Write your opening message: ask for help with your problem (quote it). Answer with the JSON object."
_REPLY = "The assistant replied:\n{reply}\nYour draft answer so far: {draft}. Turn {turn}. " \
         "Answer with the JSON object."


def _pref_lines(profile: Profile) -> str:
    return "\n".join(f"- [{p.id}] {p.statement()}" for p in profile.preferences) or "- (none)"


class _Stats:
    """Per-simulator counters of what the model got wrong (``simulator.stats.counts``; the llm
    simulator's per-session ``sim_checker`` counts also carry ``unknown_ids``)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {"turns": 0, "unknown_ids": 0, "done_without_draft": 0, "rewrite_kept": 0}

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


class LLMUserSession(UserSession):
    """One session of the llm simulator (see module docstring)."""

    def __init__(self, sim: "LLMUserSimulator", profile: Profile, task: Task, seed: int):
        self.sim, self.profile, self.task, self.seed = sim, profile, task, seed
        self.system = _SYSTEM.format(persona=profile.persona or "(none)", preferences=_pref_lines(profile),
                                     problem=block("PROBLEM", task.problem), labels=", ".join(LABELS))
        self.history: list[Message] = []
        self.draft: str | None = None
        self.turn = 0
        self.last_message, self.last_label = "", None
        self.done = False
        self.checkable = [p for p in profile.preferences if p.type.check is not None]
        self.known_ids = {p.id for p in profile.preferences}
        self.sim_checker = {"turns": 0, "agree": 0, "enforced_checkable": 0, "enforced_confirmed": 0, "unknown_ids": 0}

    def request(self, reply: str | None) -> ChatRequest:
        if reply is None:
            ask = _OPEN
        else:
            ask = _REPLY.format(reply=block("REPLY", reply), draft=json.dumps(self.draft), turn=self.turn)
        self.pending = Message("user", ask)
        return ChatRequest((Message("system", self.system), *self.history, self.pending), purpose="user",
                           temperature=self.sim.temperature, max_tokens=self.sim.max_tokens,
                           seed=self.seed * 1009 + self.turn, response_format=USER_TURN_SCHEMA)

    def _verdicts(self, reply: str) -> dict[str, bool]:
        answer = extract_answer(self.task, reply)
        ctx = reply_context(reply, self.task, turn=self.turn, previous_user_message=self.last_message,
                            previous_label=self.last_label, answer=answer)
        return {p.id: run_check(p.type.check, reply, ctx) for p in self.checkable if p.condition.applies(ctx)}

    def accept(self, reply: str | None, out: Mapping[str, Any]) -> UserTurn:
        """Turn the model's validated JSON into a :class:`UserTurn` and advance the session."""
        stats = self.sim.stats
        enforced = [i for i in dict.fromkeys(out["enforced_preferences"]) if i in self.known_ids]
        stats.add("unknown_ids", len(out["enforced_preferences"]) - len(enforced))
        self.sim_checker["unknown_ids"] += len(out["enforced_preferences"]) - len(enforced)
        label = str(out["label"])
        if enforced and label != "neg_constraint_restate":
            label = "neg_constraint_restate"  # restating is what the label means; the ids are the evidence
        draft = out["draft_answer"] if out["draft_answer"] not in ("", None) else self.draft
        done = bool(out["done"]) or self.turn + 1 >= self.sim.max_user_turns
        verdicts: dict[str, bool] = {}
        if reply is not None:
            verdicts = self._verdicts(reply)
            violated = {k for k, ok in verdicts.items() if not ok}
            enforced_checkable = [i for i in enforced if i in verdicts]
            sc = self.sim_checker
            sc["turns"] += 1
            sc["agree"] += int(bool(violated) == bool(enforced_checkable))
            sc["enforced_checkable"] += len(enforced_checkable)
            sc["enforced_confirmed"] += sum(1 for i in enforced_checkable if i in violated)
        if done and draft is None and out["done"]:
            stats.add("done_without_draft")
        outcome = None
        if done:
            outcome = "satisfied" if out["done"] and draft is not None else "gave_up"
        stats.add("turns")
        self.history += [self.pending, Message("assistant", json.dumps(dict(out)))]
        self.turn += 1
        self.draft, self.last_message, self.last_label, self.done = draft, str(out["message"]), label, done
        return UserTurn(message=str(out["message"]), label=label, enforced_ids=tuple(enforced), draft_answer=draft,
                        done=done, outcome=outcome, verdicts=verdicts)

    def respond(self, reply: str) -> UserTurn:
        return self.sim.respond_batch([self], [reply])[0]


class LLMUserSimulator(UserSimulator):
    """The llm simulator (see module docstring).

    Args:
        model: a chat backend or spec (``"openai:<model>@<url>"``, ``"hf:<path>"``, ``"scripted"``).
        temperature: sampling temperature of the user model.
        max_tokens: generation cap per user turn.
        max_repairs: re-asks per malformed reply before the session fails.
        max_user_turns: the simulator ends the session after this many messages (the env's max_turns
            also truncates).
        cache: a response-cache folder (see :mod:`personalization_env.llm.cache`).
    """

    name = "llm"

    def __init__(self, model: str | ChatBackend = "scripted", temperature: float = 0.7, max_tokens: int = 512,
                 max_repairs: int = 2, max_user_turns: int = 50, cache: str | None = None):
        self.backend = make_backend(model, cache=cache)
        self.temperature, self.max_tokens, self.max_repairs = temperature, max_tokens, max_repairs
        self.max_user_turns = max_user_turns
        self.stats = _Stats()

    def start(self, profile: Profile, task: Task, rng: np.random.Generator) -> tuple[UserSession, UserTurn]:
        return self.start_batch([profile], [task], [rng])[0]

    def start_batch(self, profiles: Sequence[Profile], tasks: Sequence[Task],
                    rngs: Sequence[np.random.Generator]) -> list[tuple[UserSession, UserTurn]]:
        sessions = [LLMUserSession(self, p, t, int(g.integers(2**31))) for p, t, g in zip(profiles, tasks, rngs)]
        outs = generate_json(self.backend, [s.request(None) for s in sessions], USER_TURN_SCHEMA, self.max_repairs)
        # an opening decides nothing
        return [(s, s.accept(None, {**o, "enforced_preferences": [], "done": False, "draft_answer": None}))
                for s, o in zip(sessions, outs)]

    def respond_batch(self, sessions: Sequence[UserSession], replies: Sequence[str]) -> list[UserTurn]:
        for s in sessions:
            if not isinstance(s, LLMUserSession):
                raise TypeError(f"the llm simulator cannot answer for a {type(s).__name__}")
            if s.done:
                raise RuntimeError("this user session has ended; start a new one")
        reqs = [s.request(r) for s, r in zip(sessions, replies)]  # type: ignore[union-attr]
        outs = generate_json(self.backend, reqs, USER_TURN_SCHEMA, self.max_repairs)
        return [s.accept(r, o) for s, r, o in zip(sessions, replies, outs)]  # type: ignore[union-attr]


_REWRITE_SYSTEM = """You write one message of a USER talking to an AI assistant, in the user's own voice.
## Persona
{persona}
Rewrite the message you are given so it sounds natural for this person. Keep every request, correction and
question in it, and add nothing new. Answer with one JSON object: {{"message": "..."}}."""


class HybridUserSession(UserSession):
    """A rule session whose messages the model rewrites."""

    def __init__(self, sim: "HybridUserSimulator", rule: RuleUserSession):
        self.sim, self.rule = sim, rule
        self.profile, self.task = rule.profile, rule.task
        # not drawn from the rule's generator: the hybrid user decides exactly as the rule user would
        h = hashlib.blake2b(f"{rule.profile.user_id}\x1f{rule.task.task_id}\x1f{rule.last_message}".encode(),
                            digest_size=4).digest()
        self.seed = int.from_bytes(h, "little") >> 1

    def request(self, turn: UserTurn, n: int) -> ChatRequest:
        system = _REWRITE_SYSTEM.format(persona=self.profile.persona or "(none)")
        ask = "## What to say\n" + block("SAY", turn.message)
        return ChatRequest((Message("system", system), Message("user", ask)), purpose="user",
                           temperature=self.sim.temperature, max_tokens=self.sim.max_tokens,
                           seed=self.seed * 1009 + n, response_format=REWRITE_SCHEMA)

    def respond(self, reply: str) -> UserTurn:
        return self.sim.respond_batch([self], [reply])[0]


class HybridUserSimulator(UserSimulator):
    """The hybrid simulator (see module docstring). Arguments as :class:`LLMUserSimulator`, plus
    ``traits`` of the deciding rule simulator."""

    name = "hybrid"

    def __init__(self, model: str | ChatBackend = "scripted", temperature: float = 0.7, max_tokens: int = 256,
                 max_repairs: int = 2, traits: Mapping[str, Any] | None = None, cache: str | None = None):
        from personalization_env.users.rule import RuleUserSimulator

        self.rule = RuleUserSimulator(traits)
        self.backend = make_backend(model, cache=cache)
        self.temperature, self.max_tokens, self.max_repairs = temperature, max_tokens, max_repairs
        self.stats = _Stats()

    def _rewrite(self, sessions: Sequence[HybridUserSession], turns: Sequence[UserTurn]) -> list[UserTurn]:
        reqs = [s.request(t, s.rule.user_turns) for s, t in zip(sessions, turns)]
        outs = generate_json(self.backend, reqs, REWRITE_SCHEMA, self.max_repairs)
        new = []
        for t, o in zip(turns, outs):
            msg = str(o["message"]).strip()
            if not msg:
                self.stats.add("rewrite_kept")
                msg = t.message
            self.stats.add("turns")
            new.append(UserTurn(message=msg, label=t.label, enforced_ids=t.enforced_ids, draft_answer=t.draft_answer,
                                done=t.done, outcome=t.outcome, verdicts=t.verdicts))
        return new

    def start(self, profile: Profile, task: Task, rng: np.random.Generator) -> tuple[UserSession, UserTurn]:
        return self.start_batch([profile], [task], [rng])[0]

    def start_batch(self, profiles: Sequence[Profile], tasks: Sequence[Task],
                    rngs: Sequence[np.random.Generator]) -> list[tuple[UserSession, UserTurn]]:
        opened = [self.rule.start(p, t, g) for p, t, g in zip(profiles, tasks, rngs)]
        sessions = [HybridUserSession(self, rule_session) for rule_session, _ in opened]
        return list(zip(sessions, self._rewrite(sessions, [first for _, first in opened])))

    def respond_batch(self, sessions: Sequence[UserSession], replies: Sequence[str]) -> list[UserTurn]:
        hs = []
        for s in sessions:
            if not isinstance(s, HybridUserSession):
                raise TypeError(f"the hybrid simulator cannot answer for a {type(s).__name__}")
            hs.append(s)
        turns = [s.rule.respond(r) for s, r in zip(hs, replies)]
        return self._rewrite(hs, turns)


# ---- the scripted backend's "user" role -----------------------------------------------------------
_PREF_LINE = re.compile(r"^- \[([^\]]+)\] ", re.M)


def scripted_user_reply(req: ChatRequest) -> str:
    """The embedded model playing the user: for a hybrid rewrite it returns the message unchanged; for
    the llm simulator it rebuilds the profile (preference ids) and task (problem text) from the prompt
    and replays the rule simulator (seeded by the session, so replays agree) over the assistant
    replies in the transcript, answering as the rule user would."""
    from personalization_env.profiles.io import parse_preference
    from personalization_env.tasks import lookup_task

    say = find_block(req.messages[-1].content, "SAY")
    if say is not None:
        return json.dumps({"message": say})
    system = req.messages[0].content
    problem = find_block(system, "PROBLEM")
    task = lookup_task(problem) if problem is not None else None
    if task is None:
        raise ValueError("the scripted user needs a registered task in the prompt (a <<<PROBLEM block)")
    persona = system.split("## Persona\n", 1)[1].split("\n", 1)[0] if "## Persona\n" in system else ""
    prefs = tuple(parse_preference(i) for i in _PREF_LINE.findall(system))
    profile = Profile("scripted-user", "" if persona == "(none)" else persona, prefs)
    seed = (req.seed or 0) // 1009
    session = RuleUserSession(profile, task, np.random.default_rng(seed), dict(DEFAULT_TRAITS))
    turn = session.opening()
    for m in req.messages[1:]:
        r = find_block(m.content, "REPLY") if m.role == "user" else None
        if r is not None:
            turn = session.respond(r)
    return json.dumps({"message": turn.message, "label": turn.label, "enforced_preferences": list(turn.enforced_ids),
                       "draft_answer": turn.draft_answer, "done": turn.done})
