"""The scripted agent model: a deterministic stand-in for an agent LLM (DESIGN section 6).

It reads the prompt it is given the way a model would: it finds the task in the first user message,
recognises preference statements anywhere in the prompt by text similarity
(:mod:`personalization_env.llm.recognize`), and writes a reply with the style renderer
(:mod:`personalization_env.llm.render`). Its behaviour, all configurable in :class:`ScriptedConfig`:

- **Reading.** A statement is recognised as a preference when its similarity to a library type
  reaches ``recognition_threshold`` (0.45; statements under four content words are discounted).
  Measured on the rule user's wording: 94 % of restatements are recognised as the right type, and
  none of its openings, corrections, confusion, praise or progress messages is mistaken for one
  (at 0.35: 97 % and 12 %).
- **Instruction following at scale.** Each recognised preference is followed with probability
  ``p(n) = p_min + (p_max - p_min) / (1 + n / n_half)`` where ``n`` is the number of distinct
  preferences recognised in the prompt. Defaults ``p_max=0.98, p_min=0.5, n_half=300`` fit the
  published curve of frontier models in IFScale (Jaroslawicz et al., 2025, "How Many Instructions Can
  LLMs Follow at Once?"): near-perfect at a handful of instructions, about 0.92 at 50, about 0.68 at 500.
- **Conditions.** A recognised conditional preference is applied when its condition holds for the
  reply; when it does not, it is still applied with probability ``misapply_prob`` (models over-apply
  instructions; this is what makes stuffing every preference into the prompt costly when preferences
  conflict across conditions).
- **Task skill.** The answer is correct with a per-dataset probability (``skill``); a new attempt after
  the user pushes back is redrawn. Defaults approximate Llama-3.3-70B's published accuracy (MATH 77 %,
  MMLU 86 %) and are documented per dataset below; generated datasets use ``default_skill``.
- **Multi-turn solving.** With ``defer_prob`` > 0 a reply that would give the answer instead works
  one step further and checks in ("Shall I continue?"; the renderer places the question before a
  TL;DR or summary line and leaves it out when a followed preference rules out such questions), so
  the answer comes after a geometric number of partial replies, as chat models often do; 0 (the
  default) answers in the first reply.
- **Default style.** When no followed preference fixes an element, the renderer's habits decide it
  (a typical chatty LLM answer), so unknown preferences are violated at a realistic rate.
- **Other roles** (request ``purpose``): ``judge`` labels a user message (keyword heuristic with a
  ``judge_error`` rate), ``extract`` returns preference JSON for the statements it recognises in the
  last user message (missing each with ``extract_miss``), ``reflect`` writes notes from a transcript
  (dropping each with ``reflect_drop`` and blurring each with ``reflect_blur``), ``user`` plays the
  LLM user simulator by replaying the rule user (:func:`personalization_env.users.llm.scripted_user_reply`),
  ``grade`` grades an answer for the answer judge (the exact scorer, flipped with ``judge_error``).

Results on this model are simulated and labelled as such.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from personalization_env.feedback.classifiers import KeywordClassifier, is_correction
from personalization_env.feedback.labels import LABELS
from personalization_env.llm.base import ChatBackend, ChatRequest, ChatResponse, approx_tokens
from personalization_env.llm.blocks import find_block
from personalization_env.llm.recognize import PreferenceRecognizer, Recognition, statements
from personalization_env.llm.render import DEFAULT_HABITS, ReplyContent, directives_for, render
from personalization_env.preferences import load_catalogue
from personalization_env.tasks import answer_sentence, extract_answer, lookup_task, wrong_answer
from personalization_env.types import Message, ReplyContext, Task
from personalization_env.users.context import reply_context

#: Per-dataset answer accuracy of the default scripted model (approximating Llama-3.3-70B-Instruct:
#: MATH 77.0 % per its model card; MMLU 86.0 %; MATH level-5 ("math_hard") and LogiQA lower; MedQA
#: about 75 % for 70B-class Llama models in published evaluations). Documented assumptions, not tuned.
DEFAULT_SKILL: Mapping[str, float] = {
    "math_500": 0.77,
    "math_hard": 0.50,
    "logiqa": 0.55,
    "mmlu": 0.86,
    "medqa": 0.75,
}


@dataclass
class ScriptedConfig:
    """Parameters of the scripted agent model (see the module docstring for their sources)."""

    p_max: float = 0.98
    p_min: float = 0.5
    n_half: float = 300.0
    misapply_prob: float = 0.15
    recognition_threshold: float = 0.45
    skill: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SKILL))
    default_skill: float = 0.75
    habits: Mapping[str, float] | None = None
    judge_error: float = 0.10
    extract_miss: float = 0.10
    reflect_drop: float = 0.15
    reflect_blur: float = 0.15
    defer_prob: float = 0.0
    """chance that a reply which would give the answer works one step further instead and checks in
    (multi-turn solving: the answer comes after a geometric number of partial replies; 0 = the model
    answers in its first reply, the package default)"""

    def __post_init__(self) -> None:
        for name in ("p_max", "p_min", "misapply_prob", "default_skill", "judge_error", "extract_miss",
                     "reflect_drop", "reflect_blur", "defer_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {v!r}")
        if self.n_half <= 0:
            raise ValueError(f"n_half must be > 0, got {self.n_half!r}")

    def follow_prob(self, n: int) -> float:
        """Probability of following each of ``n`` recognised instructions."""
        return self.p_min + (self.p_max - self.p_min) / (1.0 + n / self.n_half)


def _seed_of(*parts: Any) -> int:
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little")


_GENERIC = {
    "math": ("The key principle is to translate each quantity into an equation and simplify one step at a time.",
             "For example, it is like balancing a scale: whatever you do to one side, you do to the other."),
    "logic": ("The key principle is to apply each constraint in turn and eliminate what cannot hold.",
              "For example, it works like a Sudoku: every rule removes possibilities until one remains."),
    "multiple_choice": ("The key principle is to recall the underlying fact and rule out options that contradict it.",
                        "For example, it is like a process of elimination in a lineup."),
    "code": ("The key principle is to trace the function line by line, tracking each variable.",
             "For example, it is like following a recipe and writing down what is in each bowl after every step."),
    "writing": ("The key principle is to know the audience before choosing the words.",
                "For example, a toast at a wedding and a lab report need very different tones."),
}
_ALTERNATIVES = [
    ("work through it step by step by hand", "slower, but every step is easy to check"),
    ("set it up as a single equation or rule and solve it directly", "faster, but mistakes are harder to spot"),
]


def _drop_assistant_lines(text: str) -> str:
    """Transcripts quoted in a prompt tag each message ``ROLE: text``; the model knows the assistant's
    own earlier words are not the user's instructions."""
    if "ASSISTANT:" not in text:
        return text
    return "\n".join(line for line in text.split("\n") if not line.lstrip().startswith("ASSISTANT:"))


@lru_cache(maxsize=256)
def _anticipated_context(kind: str, n_steps: int, label: str | None) -> ReplyContext:
    probe = Task(task_id="probe", dataset="probe", kind=kind, problem="probe", answer="x", steps=("s",) * n_steps)
    fake = "A. B." + ("```" if kind == "code" else "")
    ctx = reply_context(fake, probe, turn=0, previous_user_message="", previous_label=label, answer="x")
    return ctx


class ScriptedBackend(ChatBackend):
    """Deterministic stand-in for an agent LLM (see module docstring).

    Args:
        config: a :class:`ScriptedConfig` or a mapping of its fields.
        model: ignored label, so specs like ``"scripted:default"`` work.
    """

    name = "scripted"

    def __init__(self, config: ScriptedConfig | Mapping[str, Any] | None = None, model: str = "default"):
        super().__init__()
        if config is None:
            config = ScriptedConfig()
        elif not isinstance(config, ScriptedConfig):
            known = {f.name for f in fields(ScriptedConfig)}
            bad = sorted(set(config) - known)
            if bad:
                raise ValueError(f"unknown scripted-model parameter(s) {bad}; known: {sorted(known)}")
            config = ScriptedConfig(**config)
        self.config = config
        self.model = model
        self._recognizer: PreferenceRecognizer | None = None
        self._judge = KeywordClassifier()
        # memo tables (pure functions of their keys; bounded)
        self._tasks: dict[str, Task | None] = {}
        self._message_recs: dict[str, list[Recognition]] = {}
        self._line_recs: dict[str, tuple[Recognition, ...]] = {}
        self._answers: dict[tuple[str, str, int, int], str] = {}
        self._labels: dict[str, bool] = {}
        self._no_answer: dict[str, tuple[Task, bool]] = {}

    # ---- helpers -------------------------------------------------------------------------------
    @property
    def recognizer(self) -> PreferenceRecognizer:
        if self._recognizer is None:
            self._recognizer = PreferenceRecognizer(load_catalogue(), self.config.recognition_threshold)
        return self._recognizer

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_recognizer"] = None  # rebuilt lazily; keeps pickles small
        state["_tasks"], state["_message_recs"], state["_answers"], state["_labels"] = {}, {}, {}, {}
        state["_no_answer"], state["_line_recs"] = {}, {}
        return state

    @staticmethod
    def _remember(table: dict, key: Any, value: Any, limit: int = 50_000) -> Any:
        if len(table) >= limit:
            table.clear()
        table[key] = value
        return value

    @staticmethod
    def _find_task(text: str) -> Task | None:
        """The task a message asks about: exact matches of its trailing paragraphs first (cheap),
        then the registry's substring search over the whole message."""
        parts = text.split("\n\n")
        for i in range(1, len(parts)):
            task = lookup_task("\n\n".join(parts[i:]))
            if task is not None:
                return task
        return lookup_task(text)

    def _wrong(self, task: Task, attempt: int, variant: int) -> str:
        """A wrong answer: one of four distractors per (task, attempt), memoised (distractors are costly
        to verify as non-equivalent)."""
        key = (task.dataset, task.task_id, attempt, variant)
        hit = self._answers.get(key)
        if hit is None:
            hit = self._remember(self._answers, key, wrong_answer(task, np.random.default_rng(_seed_of(*key))))
        return hit

    def _gives_no_answer(self, task: Task, text: str) -> bool:
        """Whether an earlier reply states no answer to ``task`` (memoised: every turn re-reads the
        model's earlier replies; the task is stored with the verdict and must be the same object)."""
        hit = self._no_answer.get(text)
        if hit is None or hit[0] is not task:
            hit = self._remember(self._no_answer, text, (task, extract_answer(task, text) is None))
        return hit[1]

    def _is_correction(self, text: str) -> bool:
        """Whether the model reads a user message as "your answer is wrong" (memoised)."""
        hit = self._labels.get(text)
        return hit if hit is not None else self._remember(self._labels, text, is_correction(text))

    def _message_recognitions(self, text: str, problem: str) -> list[Recognition]:
        hit = self._message_recs.get(text)
        if hit is not None:
            return hit
        body = text.replace(problem, " ") if problem and problem in text else text
        body = _drop_assistant_lines(body)
        recs = [r for line in body.split("\n") for r in self._line_recognitions(line)]
        return self._remember(self._message_recs, text, recs)

    def _line_recognitions(self, line: str) -> tuple[Recognition, ...]:
        """The recognitions of one line's statements (memoised: a memory prompt changes by a few lines from
        one turn to the next, and no statement spans a line break)."""
        hit = self._line_recs.get(line)
        if hit is None:
            recs = tuple(r for r in map(self.recognizer.recognize, statements(line)) if r is not None)
            hit = self._remember(self._line_recs, line, recs)
        return hit

    def _recognised(self, messages: tuple[Message, ...], problem: str) -> dict[str, Recognition]:
        """Distinct preference types recognised in the prompt (system lines and user sentences)."""
        found: dict[str, Recognition] = {}
        for m in messages:
            if m.role == "assistant":
                continue
            for r in self._message_recognitions(m.content, problem):
                if r.type_id not in found or r.score > found[r.type_id].score:
                    found[r.type_id] = r
        return found

    # ---- roles ---------------------------------------------------------------------------------
    def _generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        out = []
        for r in requests:
            handler = {"reply": self._reply, "judge": self._judge_reply, "extract": self._extract,
                       "reflect": self._reflect, "user": self._user, "grade": self._grade}[r.purpose]
            text = handler(r)
            prompt = sum(approx_tokens(m.content) for m in r.messages)
            out.append(ChatResponse(text=text, prompt_tokens=prompt, completion_tokens=approx_tokens(text)))
        return out

    def _grade(self, req: ChatRequest) -> str:
        """Grade an answer (the answer judge): the exact scorer's verdict, flipped with ``judge_error``."""
        body = req.messages[-1].content
        problem = find_block(body, "PROBLEM")
        task = self._find_task(problem) if problem is not None else None
        answer = find_block(body, "ANSWER") or ""
        if task is None:
            return json.dumps({"correct": False, "reason": "I cannot tell which problem this is."})
        from personalization_env.tasks import is_correct

        ok = is_correct(task, answer)
        if np.random.default_rng(_seed_of("grade", req.seed, body)).random() < self.config.judge_error:
            ok = not ok
        return json.dumps({"correct": bool(ok), "reason": "matches the reference" if ok else "differs"})

    @staticmethod
    def _user(req: ChatRequest) -> str:
        from personalization_env.users.llm import scripted_user_reply  # the users package builds on this one

        return scripted_user_reply(req)

    def _reply(self, req: ChatRequest) -> str:
        msgs = req.messages
        users = [m for m in msgs if m.role == "user"]
        if not users:
            return "Hello! What can I help you with?"
        first = users[0].content
        task = self._tasks[first] if first in self._tasks else self._remember(self._tasks, first, self._find_task(first))
        rng = np.random.default_rng(_seed_of(req.seed, first, len(msgs)))
        if task is None:
            return "I'm not sure I have enough information to solve this. Could you share the full problem?"
        previous = [m.content for m in msgs if m.role == "assistant"]
        recognised = self._recognised(msgs, task.problem)
        p = self.config.follow_prob(len(recognised))

        # answer attempt: redrawn only when the user pushed back on correctness (not on style)
        attempt = sum(1 for m in users[1:] if self._is_correction(m.content))
        skill = self.config.skill.get(task.dataset, self.config.default_skill)
        correct = _seed_of("answer", first, attempt) / 2.0**64 < skill  # a uniform draw from the hash
        answer = task.answer if correct else self._wrong(task, attempt, _seed_of("variant", first) % 4)

        # reply situations as the model anticipates them (it knows whether it will give an answer)
        followed = []
        catalogue = self.recognizer.catalogue
        ctx_final = self._anticipated(task, msgs)
        for tid in sorted(recognised):
            rec = recognised[tid]
            t = catalogue[tid]
            cond = rec.condition if rec.condition.kind != "always" else t.condition
            if rng.random() >= p:
                continue
            if not (cond.applies(ctx_final) or rng.random() < self.config.misapply_prob):
                continue
            followed.append(t)
        directives = directives_for(followed)
        steps = list(task.steps) or ["Let's work through the problem carefully."]
        partial = False
        deferred = self.config.defer_prob > 0 and _seed_of("defer", first, len(msgs)) / 2.0**64 < self.config.defer_prob
        if deferred:
            # one more step, no answer yet; every earlier reply without an answer delivered one step, and
            # the last step (which states the answer) waits for the reply that answers
            k = sum(1 for a in previous if self._gives_no_answer(task, a))
            steps = steps[k:k + 1] if k < len(steps) - 1 else [_GENERIC.get(task.kind, _GENERIC["math"])[0]]
            partial = True
        elif directives.get("incremental") and len(steps) > 2:
            # two steps per reply; every earlier reply without an answer delivered a chunk
            k = 2 * sum(1 for a in previous if self._gives_no_answer(task, a))
            k = min(k, len(steps) - 1)
            partial = k + 2 < len(steps)
            steps = steps[k:k + 2]
        intuition, example = _GENERIC.get(task.kind, _GENERIC["math"])
        ack = ""
        if previous:
            last_user = users[-1].content.strip().split("\n")[0][:80].rstrip(".!?")
            ack = f"Now that you've said \"{last_user}\", let's pick up from there."
        content = ReplyContent(
            task_kind=task.kind,
            steps=steps,
            answer_text=None if partial else answer_sentence(task, answer),
            answer=None if partial else answer,
            intuition=intuition,
            example=example,
            code=task.meta.get("code") if task.kind == "code" else None,
            alternatives=list(_ALTERNATIVES),
            confidence=round(float(skill), 2),
            acknowledgement=ack,
            partial=partial,
            correcting="error_correction" in ctx_final.situations,
            check_in=deferred,
        )
        habits = self.config.habits if self.config.habits is not None else DEFAULT_HABITS
        return render(content, directives, rng, habits)

    def _anticipated(self, task: Task, msgs: tuple[Message, ...]) -> ReplyContext:
        """The context the model expects its reply to have (an explanation that gives an answer)."""
        last_user = next((m.content for m in reversed(msgs) if m.role == "user"), "")
        label = "neg_correction" if self._is_correction(last_user) else None
        return _anticipated_context(task.kind, len(task.steps), label)

    def _judge_reply(self, req: ChatRequest) -> str:
        """Label the last user message; JSON ``{"label": ..., "confidence": ...}``."""
        last = next((m.content for m in reversed(req.messages) if m.role == "user"), "")
        rng = np.random.default_rng(_seed_of("judge", req.seed, last))
        label = self._judge.classify(last)
        if rng.random() < self.config.judge_error:
            label = str(rng.choice([x for x in LABELS if x != label]))
        return json.dumps({"label": label, "confidence": round(float(0.6 + 0.4 * rng.random()), 2)})

    def _extract(self, req: ChatRequest) -> str:
        """Preferences stated in the last user message, as JSON ``{"preferences": [...]}``."""
        last = next((m.content for m in reversed(req.messages) if m.role == "user"), "")
        rng = np.random.default_rng(_seed_of("extract", req.seed, last))
        prefs = []
        for s in statements(last):
            r = self.recognizer.recognize(s)
            if r is None or rng.random() < self.config.extract_miss:
                continue
            t = self.recognizer.catalogue[r.type_id]
            cond = r.condition if r.condition.kind != "always" else t.condition
            prefs.append({"condition": cond.describe(), "action": t.action, "confidence": round(r.score, 2)})
        return json.dumps({"preferences": prefs})

    def _reflect(self, req: ChatRequest) -> str:
        """Notes about the user from a transcript: one line per preference it noticed."""
        rng = np.random.default_rng(_seed_of("reflect", req.seed, req.messages[-1].content))
        text = _drop_assistant_lines("\n".join(m.content for m in req.messages if m.role == "user"))
        seen: dict[str, Recognition] = {}
        for s in statements(text):
            r = self.recognizer.recognize(s)
            if r is not None:
                seen.setdefault(r.type_id, r)
        notes = []
        for tid in sorted(seen):
            if rng.random() < self.config.reflect_drop:
                continue
            t = self.recognizer.catalogue[tid]
            cond = seen[tid].condition if seen[tid].condition.kind != "always" else t.condition
            note = t.action if cond.kind == "always" else f"{cond.describe().capitalize()}, {t.action[0].lower()}{t.action[1:]}"
            if rng.random() < self.config.reflect_blur:
                words = note.split()
                note = " ".join(words[: max(3, len(words) // 2)]) + "..."
            notes.append(f"- {note}")
        return "\n".join(notes) if notes else "- No specific preferences noticed."


