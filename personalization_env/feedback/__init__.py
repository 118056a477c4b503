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
from personalization_env.feedback.learned import LearnedClassifier

CLASSIFIERS["learned"] = LearnedClassifier  # registered here: learned.py builds on classifiers.py

__all__ = [
    "CLASSIFIERS",
    "DEFAULT_REWARDS",
    "LABELS",
    "FeedbackClassifier",
    "KeywordClassifier",
    "LearnedClassifier",
    "OracleClassifier",
    "make_classifier",
    "reward_of",
]
