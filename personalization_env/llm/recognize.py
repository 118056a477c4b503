"""How the scripted agent model "reads" preference statements: by text similarity, not by id.

Each library type is represented by its action sentence and its phrasings. A statement in a prompt
(a memory note, a line of a system prompt, a sentence a user said) is matched to the most similar
type by IDF-weighted cosine over content-word stems; below ``threshold`` nothing is recognised, so a
vague, truncated or garbled note may be missed, as a real model may misread it. Conditions are read
from the words of the statement ("for math problems", "when giving an answer").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

from personalization_env.language import (CONDITION_OPENERS, STOP_WORDS, SITUATION_WORDS, TASK_KIND_WORDS,  # noqa: F401
                                          content_words, statements)
from personalization_env.types import Condition, PreferenceType

#: the recogniser's own vocabulary (a test checks none copies the simulator's wording). What it matches
#: statements against is the catalogue it is given, phrasings included: they serve as paraphrases of each
#: type (without them it reads fewer of the hand-written statements in benchmarks/data as well)
LEXICON: dict[str, tuple[str, ...]] = {"stop_words": tuple(sorted(STOP_WORDS))}


def read_condition(statement: str) -> Condition:
    """The condition a statement expresses, read from its words (default: always)."""
    s = statement.lower()
    head = re.split(r"[,:;]", s, maxsplit=1)[0] if _CONDITION_HEAD.match(s) else ""
    if head:
        kinds = frozenset(k for k, ws in TASK_KIND_WORDS.items() if any(w in head for w in ws))
        if kinds:
            return Condition(kind="task_kinds", task_kinds=kinds)
        for sit, ws in SITUATION_WORDS.items():
            if any(w in head for w in ws):
                return Condition(kind="situation", situation=sit)
    return Condition()


# the shared condition openers (language.CONDITION_OPENERS) but "if": a leading "if" clause is read as no
# condition, as the scripted model always has ("If I say something's wrong, admit it" applies always);
# reading it would change which wishes the scripted model applies, and so every world's results
_CONDITION_HEAD = re.compile(r"\s*(?:" + "|".join(w for w in CONDITION_OPENERS if w != "if") + r")\b")


@dataclass(frozen=True)
class Recognition:
    """A statement read as a library type."""

    type_id: str
    score: float
    condition: Condition


class PreferenceRecognizer:
    """Matches free-text statements to library preference types.

    Args:
        catalogue: the preference library (id -> type).
        threshold: minimum similarity for a statement to be recognised.
        min_words: statements with fewer distinct content words have their similarity scaled down
            proportionally ("Next step?" is not an instruction to label steps).
    """

    def __init__(self, catalogue: dict[str, PreferenceType], threshold: float = 0.35, min_words: int = 4):
        self.catalogue = catalogue
        self.threshold = threshold
        self.min_words = min_words
        refs: list[tuple[str, tuple[str, ...]]] = []
        for t in catalogue.values():
            for text in (t.action, *t.phrasings):
                refs.append((t.id, content_words(text)))
        df: dict[str, int] = {}
        for _, ws in refs:
            for w in set(ws):
                df[w] = df.get(w, 0) + 1
        n = len(refs)
        self._idf = {w: math.log(1 + n / c) for w, c in df.items()}
        self._default_idf = math.log(1 + n)
        self._ref_ids: list[str] = []
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for tid, ws in refs:
            if not ws:
                continue
            j = len(self._ref_ids)
            self._ref_ids.append(tid)
            for w, x in self._vec(ws).items():
                self._postings.setdefault(w, []).append((j, x))
        self._cache: dict[str, Recognition | None] = {}
        # statements that differ only in case, punctuation or stop words match alike
        self._by_words: dict[tuple[str, ...], tuple[str | None, float]] = {}

    def _vec(self, words: Iterable[str]) -> dict[str, float]:
        v: dict[str, float] = {}
        for w in words:
            v[w] = v.get(w, 0.0) + self._idf.get(w, self._default_idf)
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        return {w: x / norm for w, x in v.items()}

    def _best_match(self, words: tuple[str, ...]) -> tuple[str | None, float]:
        """The most similar type of a statement's content words and the (discounted) similarity."""
        q = self._vec(words)
        best_id, best = None, 0.0
        scores: dict[int, float] = {}
        for w, x in q.items():
            for j, y in self._postings.get(w, ()):
                scores[j] = scores.get(j, 0.0) + x * y
        for j in sorted(scores):  # ties go to the earliest reference, as a linear scan would
            if scores[j] > best:
                best_id, best = self._ref_ids[j], scores[j]
        # a statement of one or two content words matches anything that shares them: discount it
        best *= min(1.0, len(set(words)) / self.min_words)
        return best_id, best

    def recognize(self, statement: str) -> Recognition | None:
        """The best-matching type of ``statement``, or None when nothing is similar enough."""
        hit = self._cache.get(statement)
        if hit is not None or statement in self._cache:
            return hit
        words = content_words(statement)
        match = self._by_words.get(words)
        if match is None:
            match = self._best_match(words)
            if len(self._by_words) < 100_000:
                self._by_words[words] = match
        best_id, best = match
        out = None
        if best_id is not None and best >= self.threshold:
            out = Recognition(best_id, best, read_condition(statement))
        if len(self._cache) < 100_000:
            self._cache[statement] = out
        return out
