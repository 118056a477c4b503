"""A person is the user (``msc play``): they read the assistant's replies in the terminal and type theirs.

At the start of a session the person sees the task (and, with ``show_profile``, the preferences of
the profile to act out) and writes the opening message (the task's text is appended to it, as a
user pasting the problem would). After each reply they write their next
message, then say what kind of message it was (the feedback label; the keyword classifier's guess is
the default) and, when they restated a preference, which one (with a shown profile) — that is what
counts as user effort. ``/done`` ends the session satisfied (the person then gives the final answer
they took from the conversation, scored like any draft answer), ``/quit`` ends it unsatisfied.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, TextIO

import numpy as np

from personalization_env.feedback.labels import LABELS
from personalization_env.types import Profile, Task
from personalization_env.users.base import UserSession, UserSimulator, UserTurn

#: one key per label, in the order the menu shows them
KEYS: dict[str, str] = {"r": "neg_constraint_restate", "c": "neg_correction", "f": "neg_confusion", "p": "pos_praise",
                        "g": "pos_progress", "n": "neutral", "t": "topic_shift"}
assert set(KEYS.values()) == set(LABELS)
RESTATED = "restated"  # the enforced id of a restating turn when no profile is shown


class HumanUserSession(UserSession):
    """One session typed by a person (see module docstring)."""

    def __init__(self, sim: "HumanUserSimulator", profile: Profile, task: Task):
        self.sim, self.profile, self.task = sim, profile, task
        self.draft: str | None = None

    def opening(self) -> UserTurn:
        sim = self.sim
        sim.say("\n" + "=" * 72)
        sim.say(f"New session with the assistant. Your task:\n\n{self.task.problem}\n")
        if self.task.choices and self.task.choices[0] not in self.task.problem:
            sim.say("\n".join(f"  {chr(65 + i)}. {c}" for i, c in enumerate(self.task.choices)) + "\n")
        if sim.show_profile:
            sim.say("Act out this user (the assistant does not know these):")
            if self.profile.persona:
                sim.say(f"  persona: {self.profile.persona}")
            for i, p in enumerate(self.profile.preferences, 1):
                sim.say(f"  [{i}] {p.statement()}")
        sim.say("Write your first message to the assistant (the task's text is added to it).")
        return UserTurn(message=f"{sim.ask_text('you> ')}\n\n{self.task.problem}", label="neutral")

    def respond(self, reply: str) -> UserTurn:
        sim = self.sim
        sim.say(f"\nassistant> {reply}\n")
        sim.say("Your reply (/done when you have your answer, /quit to give up):")
        message = sim.ask_text("you> ")
        if message.strip().lower() in ("/done", "/quit"):
            done_ok = message.strip().lower() == "/done"
            if done_ok:
                answer = sim.ask("Your final answer (what you took from the conversation; empty: none)> ").strip()
                self.draft = answer or self.draft
            text = "Thanks, that is all I needed." if done_ok else "I'll stop here."
            return UserTurn(message=text, label="pos_praise" if done_ok else "neutral", draft_answer=self.draft,
                            done=True, outcome="satisfied" if done_ok and self.draft else "gave_up")
        guess = sim.guess(message, reply)
        menu = "  ".join(f"[{k}] {v}" for k, v in KEYS.items())
        sim.say(f"What was that message? {menu}")
        while True:
            key = sim.ask(f"label (Enter: {guess})> ").strip().lower()
            label = guess if not key else KEYS.get(key)
            if label is not None:
                break
            sim.say(f"one of {', '.join(KEYS)} or Enter")
        enforced: tuple[str, ...] = ()
        if label == "neg_constraint_restate":
            enforced = self._restated()
        return UserTurn(message=message, label=label, enforced_ids=enforced, draft_answer=self.draft)

    def _restated(self) -> tuple[str, ...]:
        prefs = self.profile.preferences
        if not self.sim.show_profile or not prefs:
            return (RESTATED,)
        while True:
            raw = self.sim.ask("which preference(s) did you restate? numbers, comma-separated> ").replace(",", " ")
            try:
                picks = sorted({int(x) for x in raw.split()})
            except ValueError:
                picks = []
            if picks and all(1 <= i <= len(prefs) for i in picks):
                return tuple(prefs[i - 1].id for i in picks)
            self.sim.say(f"numbers from 1 to {len(prefs)}")


class HumanUserSimulator(UserSimulator):
    """A person at a terminal plays the user (see module docstring).

    Args:
        show_profile: show the profile's persona and preferences to act out.
        stdin, stdout: where to read and write (default: the process's).
    """

    name = "human"

    def __init__(self, show_profile: bool = True, stdin: TextIO | None = None, stdout: TextIO | None = None):
        self.show_profile = show_profile
        self.stdin, self.stdout = stdin, stdout
        self._classifier: Callable[[str, Any], str] | None = None

    def say(self, text: str) -> None:
        print(text, file=self.stdout or sys.stdout, flush=True)

    def ask(self, prompt: str) -> str:
        out, inp = self.stdout or sys.stdout, self.stdin or sys.stdin
        print(prompt, end="", file=out, flush=True)
        line = inp.readline()
        if not line:
            raise EOFError("the person closed the input; the session is not recorded")
        return line.rstrip("\n")

    def ask_text(self, prompt: str) -> str:
        while True:
            text = self.ask(prompt)
            if text.strip():
                return text
            self.say("(an empty message; type something)")

    def guess(self, message: str, reply: str) -> str:
        if self._classifier is None:
            from personalization_env.feedback import make_classifier

            self._classifier = make_classifier("keyword").classify
        return self._classifier(message, {"previous_reply": reply})

    def start(self, profile: Profile, task: Task, rng: np.random.Generator) -> tuple[UserSession, UserTurn]:
        session = HumanUserSession(self, profile, task)
        return session, session.opening()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "stdin": None, "stdout": None, "_classifier": None}
