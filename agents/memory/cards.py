"""Preference cards: what a memory method knows about a user, one preference per card."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterator, Mapping

_COND_HEAD = re.compile(r"^(for|when|on|after|in|whenever|if)\b", re.IGNORECASE)


@dataclass
class Card:
    """A remembered preference.

    Args:
        condition: when it applies, in words ("always", "for math problems", "when giving an answer").
        action: what the user wants, in the user's words ("use bullet points").
        confidence: the extractor's confidence (0-1).
        session: the session the card was (last) confirmed in.
        turn: the turn it was (last) confirmed in.
        confirmations: how many times the user stated it.
    """

    condition: str
    action: str
    confidence: float = 1.0
    session: int = 0
    turn: int = 0
    confirmations: int = 1

    @property
    def is_global(self) -> bool:
        """Applies always (goes straight into the prompt in the tiered methods)."""
        return _is_global(self.condition)

    @property
    def note(self) -> str:
        """The card as one sentence for a prompt: "When {condition}, {action}." or just the action."""
        return _note(self.condition, self.action)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))  # (asdict would deep-copy; every field is a str or a number)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Card":
        return cls(**dict(d))


# cached: retrieval reads the notes of dozens of cards on every turn
@lru_cache(maxsize=1 << 16)
def _is_global(condition: str) -> bool:
    return condition.strip().lower() in ("", "always")


@lru_cache(maxsize=1 << 16)
def _note(condition: str, action: str) -> str:
    action = action.strip().rstrip(".!?")
    if _is_global(condition):
        return action[:1].upper() + action[1:] + "."
    cond = condition.strip().rstrip(",")
    head = cond if _COND_HEAD.match(cond) else f"when {cond}"
    return f"{head[:1].upper()}{head[1:]}, {action[:1].lower()}{action[1:]}."


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


@dataclass
class CardStore:
    """One user's cards, de-duplicated by note text (case and punctuation ignored)."""

    cards: list[Card] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_key = {_key(c.note): i for i, c in enumerate(self.cards)}
        self._globals = [i for i, c in enumerate(self.cards) if c.is_global]  # kept so turns need not scan

    def __len__(self) -> int:
        return len(self.cards)

    def __iter__(self) -> Iterator[Card]:
        return iter(self.cards)

    def add(self, card: Card) -> tuple[int, bool]:
        """Add ``card``; a card with the same note is confirmed instead. Returns (index, is_new)."""
        k = _key(card.note)
        i = self._by_key.get(k)
        if i is not None:
            old = self.cards[i]
            old.confirmations += 1
            old.confidence = max(old.confidence, card.confidence)
            old.session, old.turn = card.session, card.turn
            return i, False
        self.cards.append(card)
        self._by_key[k] = len(self.cards) - 1
        if card.is_global:
            self._globals.append(len(self.cards) - 1)
        return len(self.cards) - 1, True

    def global_cards(self, cap: int | None = None) -> list[Card]:
        """Global cards, most recently confirmed first (at most ``cap``)."""
        out = sorted((self.cards[i] for i in self._globals), key=lambda c: (c.session, c.turn), reverse=True)
        return out if cap is None else out[:cap]

    def to_list(self) -> list[dict[str, Any]]:
        return [c.to_dict() for c in self.cards]

    @classmethod
    def from_list(cls, items: list[Mapping[str, Any]]) -> "CardStore":
        return cls([Card.from_dict(d) for d in items])
