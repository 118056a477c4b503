"""Extractors: turn a user's message into preference cards.

- :class:`RuleExtractor` (default, no model): finds sentences that ask for a way of replying ("I
  prefer...", "please don't...", "always...", "could you use bullet points?", "for math problems,
  show every step") and splits each into a condition and an action.
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
from personalization_env.feedback import KeywordClassifier
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


_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+|\s+(?:Also|And|Plus|One more thing)[,:]\s+")
_CUE = re.compile(
    r"\b(please|could you|can you|would you|i'd prefer|i prefer|i'd like|i would like|i want|i'd rather|"
    r"i would rather|i like|i find|i'd appreciate|next time|from now on|always|never|don't|do not|no need|"
    r"stop|avoid|without|skip|keep|make sure|instead|rather than|would help|helps me|matters to me|"
    r"works best|easier for me|less|more|shorter|longer|too long|too short|no more|let's|need|needs|"
    r"should|goes in|go in|would be nice|i'd love|i need)\b",
    re.IGNORECASE,
)
_IMPERATIVE = re.compile(
    r"^(tell|give|show|write|use|put|keep|add|include|start|begin|end|finish|list|label|bold|summari[sz]e|"
    r"verify|state|explain|break|number|highlight|mention|set|offer|avoid|skip|drop|cut|answer|define|check|"
    r"lead|open|close|lay|walk|stick|be|try|make|name|format|structure|wrap|spell|point|cover|get|respond|"
    r"reply|no|less|more|don't|do not|never|always|introduce|annotate|include|note|double|mark|acknowledge|"
    r"apologi[sz]e|re-derive|rederive|redo|split|comment|type|box|plug|eliminate|rule|round|quote|cite)\b",
    re.IGNORECASE,
)
_OPENERS = re.compile(
    r"^(?:(?:hmm|wait|ok|okay|also|and|plus|again|one (?:more )?thing|quick (?:request|note)|before we go on|"
    r"just so you know|as (?:a|an) [a-z -]+?|for context|so|oh|btw|by the way|one more thing)[.,:!]?\s+)+",
    re.IGNORECASE,
)
_REQUEST = re.compile(
    r"^(?:(?:could|can|would|will) you(?: please)?|please|i'd (?:like|prefer|rather)(?: (?:it )?if you| you to| to)?|"
    r"i (?:would )?(?:like|prefer|want)(?: (?:it )?if you| you to| to)?|i'd appreciate (?:it )?if you|"
    r"make sure (?:to|you)|remember to|next time,?|from now on,?)\s+",
    re.IGNORECASE,
)
_TRAILERS = re.compile(
    r"(?:,?\s*(?:please|thanks|thank you|next time|from now on|if you can|if possible))+\s*[.!?]*$|"
    r"\s*(?:it really matters to me|that would help a lot|that would help|i'd appreciate it)[.!]*$",
    re.IGNORECASE,
)
_COND_LEAD = re.compile(
    r"^((?:for|when|on|after|whenever|if)\s+[^,:]{3,150}?)\s*[,:]\s+(.+)$", re.IGNORECASE)
_COND_TAIL = re.compile(
    r"^(.+?)\s+((?:for|when|on|after)\s+(?:math problems|logic puzzles|multiple-choice questions|coding questions|"
    r"writing tasks|giving an answer|explaining something|multi-step problems|writing code|wrapping up|"
    r"i point out a mistake)(?:\s+(?:and|for)\s+[a-z -]+?)*)\s*[.!?]*$",
    re.IGNORECASE,
)


class RuleExtractor(Extractor):
    """Rule-based extractor (see module docstring). Keeps the user's own words as the action.

    Args:
        min_words: shortest action kept.
    """

    name = "rule"

    def __init__(self, min_words: int = 2):
        self.min_words = min_words

    def sentences(self, message: str) -> list[str]:
        return [s.strip() for s in _SPLIT.split(message) if s and s.strip()]

    def extract(self, message: str, *, session: int = 0, turn: int = 0) -> list[Card]:
        out: list[Card] = []
        for sent in self.sentences(message):
            found = _stated_preference(sent, self.min_words)
            if found is not None:
                cond, action, confidence = found
                out.append(Card(condition=cond, action=action, confidence=confidence, session=session, turn=turn))
        return out


_FEEDBACK = KeywordClassifier()  # stateless


@lru_cache(maxsize=1 << 14)
def _stated_preference(sent: str, min_words: int) -> tuple[str, str, float] | None:
    """The (condition, action, confidence) one sentence asks for, or None (cached: users restate their
    preferences in a few phrasings each)."""
    core = _OPENERS.sub("", sent).strip()
    # corrections, confusion, praise and progress are feedback, not preferences
    if not core or _FEEDBACK.classify(core) not in ("neg_constraint_restate", "neutral"):
        return None
    cond = "always"
    m = _COND_LEAD.match(core)
    if m:
        cond, core = m.group(1), m.group(2)
        core = _OPENERS.sub("", core).strip()
    if not (_CUE.search(core) or _IMPERATIVE.match(_REQUEST.sub("", core))):
        return None
    if cond == "always":
        t = _COND_TAIL.match(core)
        if t:
            core, cond = t.group(1), t.group(2)
    action = _TRAILERS.sub("", _REQUEST.sub("", core)).strip().rstrip("?.!,;: ")
    if len(action.split()) < min_words or len(action) > 300:
        return None
    explicit = bool(re.search(r"\b(prefer|like|want|rather|always|never|please)\b", sent, re.I))
    return (cond.strip().lower() if cond != "always" else "always", action[:1].upper() + action[1:],
            0.9 if explicit else 0.7)


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
