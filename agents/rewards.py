"""Reward sources for learning agents: what rag_vector learns from after each reply.

- ``keyword``: the VARS heuristic on the user's next message. Negative phrases -> -1; positive phrases
  -> +0.5, +0.5 more when the next message stays on topic (cosine > 0.3), halved when it drifts
  (cosine < 0.2); clipped to [-1, 1]. ``match="word"`` (default) matches whole words and also reads a
  preference restatement as -1; ``match="substring"`` is the published behaviour, where "no" fires
  inside "know", "now" or "another" and restatements score 0.
- ``judge``: an LLM judge on any chat backend (``purpose="judge"``), returning a label and a confidence;
  the confidence becomes the gate, and low-confidence or topic-shift turns are skipped.
- ``env``: the environment's own reward for the step (its feedback term).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

from personalization_env.feedback import DEFAULT_REWARDS, KeywordClassifier
from personalization_env.feedback.llm_judge import judge_request
from personalization_env.llm import ChatBackend, make_backend
from personalization_env.llm.structured import extract_json

NEGATIVE = ("didn't", "that's not", "incorrect", "redo", "again", "explain more", "doesn't help", "wrong", "no",
            "not what i asked")
_CLASSIFIER = KeywordClassifier()  # stateless; built once instead of on every rewarded turn
POSITIVE = ("elaborate", "give an example", "continue", "what if", "based on that", "thanks", "good", "great", "cool")


@dataclass
class RewardSignal:
    """A reward with its gate override (None = use the retrieval gate) and whether to skip the update."""

    reward: float
    gate: float | None = None
    skip: bool = False
    label: str | None = None


def _has(text: str, phrase: str, match: str) -> bool:
    if match == "substring":
        return phrase in text
    return _whole_word(phrase).search(text) is not None


@lru_cache(maxsize=256)
def _whole_word(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w'])" + re.escape(phrase) + r"(?![\w'])")


def is_restatement(message: str) -> bool:
    """Whether a user message restates a preference (the deployable keyword classifier's reading)."""
    return _CLASSIFIER.classify(message) == "neg_constraint_restate"


def keyword_reward(next_message: str, topic_similarity: float, match: str = "word") -> float:
    """The VARS keyword reward of a user message (see module docstring)."""
    text = next_message.lower()
    if any(_has(text, p, match) for p in NEGATIVE):
        return -1.0
    if match == "word" and _CLASSIFIER.classify(next_message) in ("neg_constraint_restate",
                                                                         "neg_correction", "neg_confusion"):
        return -1.0
    r = 0.0
    if any(_has(text, p, match) for p in POSITIVE):
        r = 0.5 + (0.5 if topic_similarity > 0.3 else 0.0)
    if topic_similarity < 0.2:
        r *= 0.5
    return max(-1.0, min(1.0, r))


class RewardSource:
    """Computes the reward of a reply from what followed it.

    Args:
        kind: ``"keyword"``, ``"judge"`` or ``"env"``.
        match: keyword matching, ``"word"`` or ``"substring"`` (published).
        model: judge backend (for ``kind="judge"``).
        min_confidence: judge turns below this confidence are skipped.
    """

    def __init__(self, kind: str = "keyword", match: str = "word", model: str | ChatBackend = "scripted",
                 min_confidence: float = 0.6):
        if kind not in ("keyword", "judge", "env"):
            raise ValueError(f"unknown reward source {kind!r}; use 'keyword', 'judge' or 'env'")
        if match not in ("word", "substring"):
            raise ValueError(f"keyword match must be 'word' or 'substring', got {match!r}")
        self.kind, self.match, self.min_confidence = kind, match, min_confidence
        self._judge = make_backend(model) if kind == "judge" else None

    def __call__(self, previous_reply: str, next_message: str, topic_similarity: float, env_reward: float | None,
                 info: Mapping[str, Any] | None = None, seed: int = 0) -> RewardSignal:
        if self.kind == "env":
            terms = (info or {}).get("reward_terms", {})
            r = float(terms.get("feedback", env_reward if env_reward is not None else 0.0))
            return RewardSignal(max(-1.0, min(1.0, r)))
        if self.kind == "keyword":
            return RewardSignal(keyword_reward(next_message, topic_similarity, self.match))
        assert self._judge is not None
        text = self._judge.generate([judge_request(previous_reply, next_message, seed=seed)])[0].text
        try:
            data = extract_json(text)
            label, conf = str(data["label"]), float(data.get("confidence", 1.0))
        except (ValueError, KeyError, TypeError):  # no JSON object (StructuredOutputError) or a bad field
            return RewardSignal(0.0, skip=True)
        if label not in DEFAULT_REWARDS or conf < self.min_confidence or label == "topic_shift":
            return RewardSignal(0.0, skip=True, label=label)
        return RewardSignal(DEFAULT_REWARDS[label], gate=conf, label=label)
