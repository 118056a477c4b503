"""Agents: the Agent contract, the registry and the memory methods."""

from __future__ import annotations

from agents.base import Agent
from agents.loop import run_vector
from agents.registry import AGENTS, make_agent

__all__ = ["AGENTS", "Agent", "make_agent", "run_vector"]
