"""The seven feedback labels and their default reward values (DESIGN section 7)."""

from __future__ import annotations

from typing import Mapping

#: label -> default reward. ``topic_shift`` means "no learning signal" (no update).
DEFAULT_REWARDS: Mapping[str, float] = {
    "neg_constraint_restate": -1.0,
    "neg_correction": -0.8,
    "neg_confusion": -0.6,
    "pos_praise": 0.8,
    "pos_progress": 0.1,
    "neutral": 0.0,
    "topic_shift": 0.0,
}

LABELS: tuple[str, ...] = tuple(DEFAULT_REWARDS)


def reward_of(label: str, rewards: Mapping[str, float] | None = None) -> float:
    """Reward value of ``label`` under ``rewards`` (defaults to :data:`DEFAULT_REWARDS`)."""
    table = DEFAULT_REWARDS if rewards is None else rewards
    try:
        return float(table[label])
    except KeyError:
        raise ValueError(f"unknown feedback label {label!r}; expected one of {LABELS}") from None


def validate_rewards(rewards: Mapping[str, float]) -> dict[str, float]:
    """Merge user overrides into the defaults, rejecting unknown labels."""
    bad = sorted(set(rewards) - set(LABELS))
    if bad:
        raise ValueError(f"unknown feedback label(s) {bad} in rewards; expected labels from {LABELS}")
    return {**DEFAULT_REWARDS, **{k: float(v) for k, v in rewards.items()}}
