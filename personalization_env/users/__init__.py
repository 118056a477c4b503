"""User simulators: one protocol (open a session -> first message; respond to a reply -> UserTurn)."""

from __future__ import annotations

from personalization_env.users.base import UserSession, UserSimulator, UserTurn, make_user_simulator

__all__ = ["UserSession", "UserSimulator", "UserTurn", "make_user_simulator"]
