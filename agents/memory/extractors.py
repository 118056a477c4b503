"""Extractors: turn a user's message into preference cards.

- :class:`RuleExtractor` (default, no model): finds the clauses that ask for a way of replying (read
  by the feedback classifier's clause reading: "I prefer...", "please don't...", "could you use bullet
  points?", "for math problems, show every step") and splits each into a condition and an action with
  the shared language facts (:mod:`personalization_env.language`), not with the simulator's wording.
- :class:`LLMExtractor`: asks any chat backend for JSON (``purpose="extract"``), validates it against
  the schema, retries once with a repair prompt on malformed output, and counts failures.
"""

from __future__ import annotations

import abc
import json
import logging
import re
from functools import lru_cache
from typing import Any, Sequence

from agents.memory.cards import Card
from personalization_env.feedback.classifiers import clause_kind, clauses
from personalization_env.language import (CONDITION_CLAUSE, CONDITION_TAIL, REQUEST_FRAME, TRAILER, PhraseSet,
                                          strip_openers)
from personalization_env.llm import ChatBackend, ChatRequest, make_backend
from personalization_env.naming import did_you_mean
from personalization_env.types import Message

logger = logging.getLogger(__name__)


class Extractor(abc.ABC):
    """Finds preference statements in a user message."""

    name = "extractor"

    @abc.abstractmethod
    def extract(self, message: str, *, session: int = 0, turn: int = 0) -> list[Card]:
        """Cards for the preferences stated in ``message``."""

    def extract_batch(self, messages: Sequence[str], sessions: Sequence[int], turns: Sequence[int]) -> list[list[Card]]:
        return [self.extract(m, session=s, turn=t) for m, s, t in zip(messages, sessions, turns)]


#: the extractor's own vocabulary beyond the shared language facts: words that make a wish explicit
_EXPLICIT = PhraseSet(("prefer", "like", "want", "rather", "always", "never", "please"))
#: every lexicon the rule extractor uses (a test checks none copies the simulator's wording); it finds wishes
#: with the feedback classifier's clause reading (personalization_env.feedback.classifiers.LEXICON)
LEXICON: dict[str, PhraseSet] = {"explicit": _EXPLICIT}


class RuleExtractor(Extractor):
    """Rule-based extractor (see module docstring). Keeps the user's own words as the action.

    Args:
        min_words: shortest action kept.
    """

    name = "rule"

    def __init__(self, min_words: int = 2):
        self.min_words = min_words

    def sentences(self, message: str) -> list[str]:
        """The clauses of ``message`` a wish can stand in (sentences, cut again at semicolons and dashes)."""
        return clauses(message)

    def extract(self, message: str, *, session: int = 0, turn: int = 0) -> list[Card]:
        out: list[Card] = []
        for sent in self.sentences(message):
            found = _stated_preference(sent, self.min_words)
            if found is not None:
                cond, action, confidence = found
                out.append(Card(condition=cond, action=action, confidence=confidence, session=session, turn=turn))
        return out


@lru_cache(maxsize=1 << 14)
def _stated_preference(sent: str, min_words: int) -> tuple[str, str, float] | None:
    """The (condition, action, confidence) one clause asks for, or None (cached: users restate their
    preferences in a few phrasings each).

    A clause states a wish when the feedback classifier reads it as a restatement (a request, a
    preference, a prohibition, a reminder or a condition around a style word); its condition is a
    leading or closing condition clause (:data:`~personalization_env.language.CONDITION_CLAUSE`,
    :data:`~personalization_env.language.CONDITION_TAIL`), its action the rest without openers,
    request frame and courtesy trailer."""
    if clause_kind(sent) not in ("neg_constraint_restate", "restate_weak"):
        return None
    core = strip_openers(sent)
    cond = "always"
    m = CONDITION_CLAUSE.match(core)
    if m and len(core) > m.end():
        cond, core = core[:m.end()].rstrip(" ,:;"), strip_openers(core[m.end():])
    core = TRAILER.sub("", core).strip()
    if cond == "always":
        t = CONDITION_TAIL.match(core)
        if t and len(t.group(1).split()) >= min_words:
            core, cond = t.group(1), t.group(2)
    action = TRAILER.sub("", REQUEST_FRAME.sub("", core)).strip().rstrip("?.!,;: ")
    if len(action.split()) < min_words or len(action) > 300:
        return None
    confidence = 0.9 if _EXPLICIT.search(sent) else 0.7
    return (cond.strip().lower() if cond != "always" else "always", action[:1].upper() + action[1:], confidence)


EXTRACT_SYSTEM = (
    "Extract the user's preferences about HOW the assistant should reply from the user's message. "
    'Answer with JSON only: {"preferences": [{"condition": "always" or when it applies, "action": what to do, '
    '"confidence": 0-1}]}. Return {"preferences": []} when the message states none.'
)
EXTRACT_SCHEMA = {
    "type": "object",
    "properties": {"preferences": {"type": "array", "items": {
        "type": "object",
        "properties": {"condition": {"type": "string"}, "action": {"type": "string"},
                       "confidence": {"type": "number"}},
        "required": ["condition", "action"]}}},
    "required": ["preferences"],
}


def parse_extraction(text: str) -> list[dict[str, Any]]:
    """Validate an extractor reply; raises ValueError naming what is wrong."""
    m = re.search(r"\{.*\}", text, re.DOTALL)
    if not m:
        raise ValueError(f"no JSON object in extractor output {text[:80]!r}")
    data = json.loads(m.group(0))
    prefs = data.get("preferences") if isinstance(data, dict) else None
    if not isinstance(prefs, list):
        raise ValueError("extractor JSON lacks a 'preferences' list")
    out = []
    for p in prefs:
        if not isinstance(p, dict) or not isinstance(p.get("action"), str) or not p["action"].strip():
            raise ValueError(f"bad preference entry {p!r:.80}")
        conf = p.get("confidence", 0.8)
        out.append({"condition": str(p.get("condition") or "always"), "action": p["action"].strip(),
                    "confidence": float(conf) if isinstance(conf, (int, float)) else 0.8})
    return out


class LLMExtractor(Extractor):
    """Asks a chat backend for preference JSON (see module docstring).

    Args:
        model: backend or spec (default the embedded scripted model).
        retries: repair attempts after malformed output.
        seed: request seed.
    """

    name = "llm"

    def __init__(self, model: str | ChatBackend = "scripted", retries: int = 1, seed: int = 0):
        self.backend = make_backend(model)
        self.retries = retries
        self.seed = seed
        self.failures = 0
        self.repairs = 0

    def _request(self, message: str, seed: int) -> ChatRequest:
        return ChatRequest((Message("system", EXTRACT_SYSTEM), Message("user", message)), purpose="extract",
                           temperature=0.0, seed=seed, response_format=EXTRACT_SCHEMA)

    def extract_batch(self, messages: Sequence[str], sessions: Sequence[int], turns: Sequence[int]) -> list[list[Card]]:
        reqs = [self._request(m, self.seed + 7919 * s + t) for m, s, t in zip(messages, sessions, turns)]
        texts = [r.text for r in self.backend.generate(reqs)]
        out = []
        for msg, text, s, t in zip(messages, texts, sessions, turns):
            prefs = None
            for attempt in range(self.retries + 1):
                try:
                    prefs = parse_extraction(text)
                    break
                except (ValueError, json.JSONDecodeError) as e:
                    if attempt == self.retries:
                        self.failures += 1
                        logger.warning("extractor output unusable after %d repair(s): %s", self.retries, e)
                        break
                    self.repairs += 1
                    repair = ChatRequest((Message("system", EXTRACT_SYSTEM), Message("user", msg),
                                          Message("assistant", text),
                                          Message("user", f"That was not valid ({e}). Reply with the JSON only.")),
                                         purpose="extract", temperature=0.0, seed=self.seed + attempt + 1)
                    text = self.backend.generate([repair])[0].text
            out.append([Card(condition=p["condition"], action=p["action"], confidence=p["confidence"], session=s,
                             turn=t) for p in (prefs or [])])
        return out

    def extract(self, message: str, *, session: int = 0, turn: int = 0) -> list[Card]:
        return self.extract_batch([message], [session], [turn])[0]


EXTRACTORS = {"rule": RuleExtractor, "llm": LLMExtractor}


def make_extractor(spec: str | Extractor, **kwargs: Any) -> Extractor:
    """``"rule"`` or ``"llm"`` (``"llm:<backend spec>"`` picks the model)."""
    if isinstance(spec, Extractor):
        return spec
    name, _, rest = str(spec).partition(":")
    if name not in EXTRACTORS:
        extra = did_you_mean(name, EXTRACTORS)
        raise ValueError(f"unknown extractor {spec!r}{extra} known: {sorted(EXTRACTORS)}")
    if rest:
        kwargs["model"] = rest
    return EXTRACTORS[name](**kwargs)
