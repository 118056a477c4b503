"""Classifiers that turn a user's message into a feedback label.

- ``oracle``: the simulator's own (true) label, passed in by the env.
- ``keyword``: a whole-word lexical heuristic that also recognises preference restatements
  ("could you use bullet points", "please keep it short", "no need for ..."). The published VARS
  heuristic matched phrases as substrings, so "no" fired inside "know" or "another"; this one does not.

Accuracy against the rule simulator's true labels is measured by ``benchmarks/feedback_accuracy.py``.
"""

from __future__ import annotations

import abc
import re
from typing import Any, Mapping, Sequence

from personalization_env.naming import did_you_mean


class FeedbackClassifier(abc.ABC):
    """Labels a user message (see :data:`~personalization_env.feedback.labels.LABELS`)."""

    name: str = "classifier"

    @abc.abstractmethod
    def classify(self, message: str, context: Mapping[str, Any] | None = None) -> str:
        """Label of ``message``. ``context`` may carry ``oracle_label`` and ``previous_reply``."""

    def classify_batch(self, messages: Sequence[str], contexts: Sequence[Mapping[str, Any] | None] | None = None) -> list[str]:
        """Labels of several messages (default: one at a time)."""
        contexts = contexts if contexts is not None else [None] * len(messages)
        return [self.classify(m, c) for m, c in zip(messages, contexts)]


class OracleClassifier(FeedbackClassifier):
    """Returns the simulator's true label from ``context["oracle_label"]``."""

    name = "oracle"

    def classify(self, message: str, context: Mapping[str, Any] | None = None) -> str:
        if not context or "oracle_label" not in context:
            raise ValueError("the oracle classifier needs context['oracle_label'] (only the env has it); use 'keyword' elsewhere")
        return str(context["oracle_label"])


_WORDS = re.compile(r"[a-z]+")


class _Lexicon:
    """Phrases matched as whole words, case-insensitively, with a first-word pre-filter (a phrase can
    only match where its first letter-run is a whole token of the text, so most texts skip the regex)."""

    def __init__(self, *items: str):
        alts = sorted((re.escape(i).replace(r"\ ", r"\s+") for i in items), key=len, reverse=True)
        self.pattern = re.compile(r"(?<![\w'])(?:" + "|".join(alts) + r")(?![\w'])", re.IGNORECASE)
        self.firsts = frozenset(_WORDS.match(i.lower()).group(0) for i in items)  # type: ignore[union-attr]
        # For ASCII text: the same alternation, case-sensitive on the lower-cased text and without the
        # leading look-behind (checked by hand), so the engine can skip ahead by the phrases' first
        # characters instead of running the case-insensitive look-behind at every character.
        self.ascii_pattern = None
        if all(i.isascii() for i in items):
            low_alts = sorted((re.escape(i.lower()).replace(r"\ ", r"\s+") for i in items), key=len, reverse=True)
            self.ascii_pattern = re.compile(r"(?:" + "|".join(low_alts) + r")(?![\w'])")

    def search(self, text: str, tokens: frozenset[str]) -> bool:
        if self.firsts.isdisjoint(tokens):
            return False
        if self.ascii_pattern is None or not text.isascii():
            return self.pattern.search(text) is not None
        low = text.lower()
        pos = 0
        while (m := self.ascii_pattern.search(low, pos)) is not None:
            i = m.start()
            if i == 0 or not (low[i - 1].isalnum() or low[i - 1] in "_'"):
                return True
            pos = i + 1
        return False

    def count(self, text: str, tokens: frozenset[str]) -> int:
        return 0 if self.firsts.isdisjoint(tokens) else len(self.pattern.findall(text))


def _phrases(*items: str) -> _Lexicon:
    return _Lexicon(*items)


def is_correction(text: str) -> bool:
    """Whether ``text`` says the previous answer was wrong (the correction cue alone)."""
    return _CORRECTION.search(text, frozenset(_WORDS.findall(text.lower())))


# A correction says the answer (that/it/this) is wrong; bare "wrong"/"mistake" also occur in style
# requests ("tell me why the other options are wrong"), so they need a subject here.
_CORRECTION = _phrases(
    "not right", "isn't right", "is not right", "doesn't look right", "does not look right", "that's wrong",
    "that is wrong", "it's wrong", "this is wrong", "answer is wrong", "you're wrong", "that's incorrect",
    "that is incorrect", "is incorrect", "pretty sure that's", "not correct", "a mistake somewhere",
    "made a mistake", "there's a mistake", "there is a mistake", "an error somewhere", "check for an error",
    "can you double-check", "could you double-check", "please double-check the", "can you recheck",
    "could you recheck", "check it again", "go over it again", "i got something different",
    "i get something different", "different answer", "doesn't add up", "does not add up", "don't think that's",
    "do not think that's", "are you sure", "not quite", "that can't be", "cannot be right", "miscalculated",
)
_CONFUSION = _phrases(
    "i'm confused", "i am confused", "a bit confused", "confusing", "don't follow", "do not follow",
    "not following", "lost me", "i'm lost", "unclear to me", "that's unclear", "what do you mean",
    "not sure i understand", "i don't understand", "i do not understand", "doesn't make sense",
    "does not make sense", "what's the answer", "what is the answer", "what's the final answer",
    "what is the final answer", "so what is it", "which one is it", "can you clarify what",
)
_PRAISE = _phrases(
    "thanks", "thank you", "perfect", "great", "awesome", "excellent", "exactly what i needed", "that helps",
    "very helpful", "helpful", "got it", "makes total sense", "appreciate it", "nice", "wonderful", "brilliant",
)
_PROGRESS = _phrases(
    "yes", "yep", "yeah", "ok", "okay", "sure", "continue", "go on", "go ahead", "keep going", "next step",
    "makes sense", "that makes sense", "proceed", "carry on", "let's continue", "sounds good", "next",
)
# Cues of a user asking for a change in *how* the assistant replies: request forms, preference verbs,
# conditions ("for math problems", "when giving an answer") and imperatives at the start of a clause.
_RESTATE = _phrases(
    "please", "could you", "can you", "would you", "i'd prefer", "i prefer", "i'd like", "i would like",
    "i want", "i'd rather", "i would rather", "prefer", "next time", "from now on", "remember", "as i said",
    "i asked", "i mentioned", "i told you", "again", "instead", "don't", "do not", "no need", "stop", "avoid",
    "without", "skip", "keep it", "make sure", "always", "never", "rather than", "i like", "i find", "i'd appreciate",
    "format", "shorter", "longer", "too long", "too short", "too much", "let's", "would help", "helps me",
    "matters to me", "works best for me", "easier for me", "for math problems", "for logic puzzles",
    "for multiple-choice questions", "for coding questions", "for writing tasks", "when giving an answer",
    "when explaining", "on multi-step problems", "when writing code", "after i point out", "when wrapping up",
    "no markdown", "no latex", "plain text", "bullet points", "numbered", "headings", "tl;dr",
)
_IMPERATIVE = re.compile(
    r"(?:^|[.:;!?,]\s+|\n)\s*(?:also,?\s+|and\s+|just\s+|then\s+)?(?:tell|give|show|write|use|put|keep|add|include|"
    r"start|begin|end|finish|list|label|bold|summari[sz]e|verify|state|explain|break|number|highlight|mention|"
    r"set|offer|avoid|skip|drop|cut|answer|define|check|lead|open|close|lay|walk|stick|be|try|make|name|"
    r"format|structure|wrap|spell|point|cover|go|get|respond|reply)\b",
    re.IGNORECASE,
)
_TOPIC = _phrases("different question", "something else", "new question", "change of topic", "unrelated")


class KeywordClassifier(FeedbackClassifier):
    """Whole-word keyword heuristic with preference-restatement recognition.

    Precedence: correction > confusion > restatement > praise > progress > topic shift > neutral.
    Praise/progress lose to a restatement cue ("Thanks, but please use bullets" is a restatement).
    """

    name = "keyword"

    def classify(self, message: str, context: Mapping[str, Any] | None = None) -> str:
        text = message or ""
        tokens = frozenset(_WORDS.findall(text.lower()))
        if _CORRECTION.search(text, tokens):
            return "neg_correction"
        if _CONFUSION.search(text, tokens):
            return "neg_confusion"
        restate = _RESTATE.count(text, tokens) + len(_IMPERATIVE.findall(text))
        praise = _PRAISE.search(text, tokens)
        progress = _PROGRESS.search(text, tokens)
        # "please continue" / "yes, go on" are progress, not a style request
        if restate and progress and not praise and restate <= 1 and len(text) < 60:
            return "pos_progress"
        if restate:
            return "neg_constraint_restate"
        if praise:
            return "pos_praise"
        if progress:
            return "pos_progress"
        if _TOPIC.search(text, tokens):
            return "topic_shift"
        return "neutral"


CLASSIFIERS: dict[str, type[FeedbackClassifier]] = {"oracle": OracleClassifier, "keyword": KeywordClassifier}


def make_classifier(name: str | FeedbackClassifier, **kwargs: Any) -> FeedbackClassifier:
    """Build a classifier: ``oracle``, ``keyword``, ``llm:<backend spec>`` or ``llm_local:<model>``
    (see :mod:`personalization_env.feedback.llm_judge`)."""
    if isinstance(name, FeedbackClassifier):
        return name
    family, _, rest = str(name).partition(":")
    if family in ("llm", "llm_local"):
        from personalization_env.feedback.llm_judge import LLMJudgeClassifier

        if family == "llm_local" and not rest:
            raise ValueError("the 'llm_local' judge needs the served model: 'llm_local:<model>'")
        return LLMJudgeClassifier(rest or "scripted", local=family == "llm_local", **kwargs)
    if name not in CLASSIFIERS:
        extra = did_you_mean(str(name), [*CLASSIFIERS, "llm", "llm_local"])
        raise ValueError(f"unknown feedback classifier {name!r}{extra} known: {sorted(CLASSIFIERS)}, "
                         f"'llm:<backend spec>', 'llm_local:<model>'")
    return CLASSIFIERS[name](**kwargs)
