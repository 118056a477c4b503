"""Typed data model shared by every part of the world.

Everything here is a small frozen dataclass validated at construction, so a bad value fails where it
enters (a profile file, a CLI flag) rather than deep inside a session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

Role = Literal["system", "user", "assistant"]

#: Conversational situations a preference condition can name. A checker context says which hold.
SITUATIONS: tuple[str, ...] = (
    "final_answer",  # the reply states an answer to the task
    "explanation",  # the reply explains a solution or concept
    "multi_step",  # the task needs several steps
    "code",  # the reply contains code
    "error_correction",  # the user just said the previous reply was wrong
    "winding_down",  # the reply wraps the conversation up (final answer given)
)

#: Task kinds a preference condition can name.
TASK_KINDS: tuple[str, ...] = ("math", "logic", "multiple_choice", "code", "writing")


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in ("system", "user", "assistant"):
            raise ValueError(f"message role must be system, user or assistant, got {self.role!r}")
        if not isinstance(self.content, str):
            raise TypeError(f"message content must be str, got {type(self.content).__name__}")

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Condition:
    """When a preference applies.

    Args:
        kind: ``"always"``, ``"task_kinds"`` (only for the listed task kinds) or ``"situation"``
            (only in a conversational situation, see :data:`SITUATIONS`; optionally only for
            ``task_kinds`` too, e.g. "when giving an answer to math problems").
        task_kinds: the task kinds for ``kind="task_kinds"`` (or the restriction of a situation).
        situation: the situation for ``kind="situation"``.
    """

    kind: Literal["always", "task_kinds", "situation"] = "always"
    task_kinds: frozenset[str] = frozenset()
    situation: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("always", "task_kinds", "situation"):
            raise ValueError(f"condition kind must be always, task_kinds or situation, got {self.kind!r}")
        object.__setattr__(self, "task_kinds", frozenset(self.task_kinds))
        bad = sorted(set(self.task_kinds) - set(TASK_KINDS))
        if (self.kind == "task_kinds" and not self.task_kinds) or bad:
            raise ValueError(f"task_kinds condition needs kinds from {TASK_KINDS}, got {sorted(self.task_kinds)!r}")
        if self.kind == "always" and self.task_kinds:
            raise ValueError("an 'always' condition takes no task_kinds; use kind='task_kinds'")
        if self.kind == "situation" and self.situation not in SITUATIONS:
            raise ValueError(f"unknown situation {self.situation!r}; expected one of {SITUATIONS}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | str | None) -> "Condition":
        if d is None or d == "always":
            return cls()
        if isinstance(d, str):
            if d in SITUATIONS:
                return cls(kind="situation", situation=d)
            return cls(kind="task_kinds", task_kinds=frozenset(d.split("|")))
        return cls(kind=d.get("kind", "always"), task_kinds=frozenset(d.get("task_kinds", ())),
                   situation=d.get("situation"))

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "always":
            return {"kind": "always"}
        if self.kind == "task_kinds":
            return {"kind": "task_kinds", "task_kinds": sorted(self.task_kinds)}
        d: dict[str, Any] = {"kind": "situation", "situation": self.situation}
        if self.task_kinds:
            d["task_kinds"] = sorted(self.task_kinds)
        return d

    def applies(self, ctx: "ReplyContext") -> bool:
        """Whether the condition holds for a reply in context ``ctx``."""
        if self.kind == "always":
            return True
        if self.task_kinds and ctx.task_kind not in self.task_kinds:
            return False
        return self.kind == "task_kinds" or self.situation in ctx.situations

    def overlaps(self, other: "Condition") -> bool:
        """Whether some reply could fall under both conditions (conservative: True unless provably disjoint)."""
        if self.task_kinds and other.task_kinds:
            return bool(self.task_kinds & other.task_kinds)
        return True

    def describe(self) -> str:
        """The condition as words a user would say ("When ...")."""
        if self.kind == "always":
            return "always"
        names = {"math": "math problems", "logic": "logic puzzles", "multiple_choice": "multiple-choice questions",
                 "code": "coding questions", "writing": "writing tasks"}
        kinds = "for " + " and ".join(names[k] for k in sorted(self.task_kinds)) if self.task_kinds else ""
        if self.kind == "task_kinds":
            return kinds
        sit = {"final_answer": "when giving an answer", "explanation": "when explaining something",
               "multi_step": "on multi-step problems", "code": "when writing code",
               "error_correction": "after I point out a mistake",
               "winding_down": "when wrapping up"}[self.situation]  # type: ignore[index]
        return f"{sit} {kinds}" if kinds else sit


@dataclass(frozen=True)
class ReplyContext:
    """What a checker knows about the reply it judges.

    Args:
        task_kind: kind of the session's task.
        situations: situations that hold for this reply (see :data:`SITUATIONS`).
        turn: user turn index within the session (0 = the opening message).
        previous_user_message: what the user said just before this reply.
    """

    task_kind: str = "math"
    situations: frozenset[str] = frozenset()
    turn: int = 0
    previous_user_message: str = ""


@dataclass(frozen=True)
class Task:
    """A problem the user brings to a session.

    Args:
        task_id: stable id, unique within its dataset.
        dataset: dataset name (``"gen_math"``, ``"math_hard"``, ...).
        kind: one of :data:`TASK_KINDS`.
        problem: the text the user asks about.
        answer: the gold answer (a number/expression, an option letter, or option text).
        choices: option texts for multiple choice, in order.
        steps: a worked solution as short steps (the scripted agent explains with these).
        meta: free-form extras (difficulty, source, ...).
    """

    task_id: str
    dataset: str
    kind: str
    problem: str
    answer: str
    choices: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task kind must be one of {TASK_KINDS}, got {self.kind!r}")
        if not self.problem:
            raise ValueError(f"task {self.task_id!r} has an empty problem")
        object.__setattr__(self, "choices", tuple(self.choices))
        object.__setattr__(self, "steps", tuple(self.steps))


@dataclass(frozen=True)
class CheckSpec:
    """A programmatic checker: a name in the checker registry plus keyword parameters."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreferenceType:
    """One entry of the preference library (package data ``preferences/data/catalogue.jsonl``).

    Args:
        id: stable snake_case id, e.g. ``"bullets"``.
        category: one of the library's categories (``"habitual_strategies"``, ``"verbosity"``, ...).
        condition: the default condition (profiles may narrow it).
        action: what the user wants, as an imperative sentence ("Use bullet points.").
        phrasings: several natural ways a user states it; a ``{cond}`` placeholder, if present, is
            filled with the condition's words.
        check: the programmatic checker, or None when the preference is not checkable.
        conflict_group: ``"group"`` or ``"group:pole"``. Two types of the same group contradict each
            other unless both name the same pole (``"length:short"`` types agree with each other and
            contradict ``"length:long"``); see :func:`groups_conflict`.
        directive: how a compliant reply realises it (read by the scripted agent's renderer).
        families: which published profile families it covers (``"msc"``, ``"vars"``).
    """

    id: str
    category: str
    condition: Condition
    action: str
    phrasings: tuple[str, ...]
    check: CheckSpec | None = None
    conflict_group: str | None = None
    directive: Mapping[str, Any] = field(default_factory=dict)
    families: tuple[str, ...] = ()


def groups_conflict(a: str | None, b: str | None) -> bool:
    """Whether two conflict groups contradict: same group, and not the same pole."""
    if a is None or b is None:
        return False
    ga, _, pa = a.partition(":")
    gb, _, pb = b.partition(":")
    return ga == gb and not (pa and pa == pb)


@dataclass(frozen=True)
class Preference:
    """A preference held by one user: a library type under a (possibly narrowed) condition."""

    type: PreferenceType
    condition: Condition

    @property
    def id(self) -> str:
        """Unique within a profile: the type id, suffixed with the condition when it differs from the default."""
        if self.condition == self.type.condition:
            return self.type.id
        c = self.condition
        kinds = "+".join(sorted(c.task_kinds))
        if c.kind == "situation":
            sep = "/" if kinds or c.situation in TASK_KINDS else ""
            return f"{self.type.id}@{c.situation}{sep}{kinds}"
        return f"{self.type.id}@{kinds or 'always'}"

    @property
    def category(self) -> str:
        return self.type.category

    def statement(self) -> str:
        """Canonical sentence stating the preference with its condition (used in oracle prompts)."""
        cond = self.condition.describe()
        action = self.type.action
        if cond == "always":
            return action
        return f"{cond[0].upper()}{cond[1:]}, {action[0].lower()}{action[1:]}"

    def conflicts(self, other: "Preference") -> bool:
        """Whether the two contradict under overlapping conditions."""
        return (self.type.id != other.type.id and groups_conflict(self.type.conflict_group, other.type.conflict_group)
                and self.condition.overlaps(other.condition))


@dataclass(frozen=True)
class Profile:
    """A simulated user: persona plus preferences.

    Args:
        user_id: unique id.
        persona: a sentence describing who the user is (flavours their wording).
        preferences: what the user enforces.
        traits: simulator knobs of this user (``patience``, ``verify_prob``, ...); defaults apply when absent.
    """

    user_id: str
    persona: str
    preferences: tuple[Preference, ...]
    traits: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "preferences", tuple(self.preferences))
        ids = [p.id for p in self.preferences]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"profile {self.user_id!r} lists preference(s) {dup} more than once")
