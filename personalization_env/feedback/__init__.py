"""Feedback labels, their rewards, and classifiers that label a user's message."""

from __future__ import annotations

from personalization_env.feedback.classifiers import (
    CLASSIFIERS,
    FeedbackClassifier,
    KeywordClassifier,
    OracleClassifier,
    make_classifier,
)
from personalization_env.feedback.labels import DEFAULT_REWARDS, LABELS, reward_of

__all__ = [
    "CLASSIFIERS",
    "DEFAULT_REWARDS",
    "LABELS",
    "FeedbackClassifier",
    "KeywordClassifier",
    "OracleClassifier",
    "make_classifier",
    "reward_of",
]
