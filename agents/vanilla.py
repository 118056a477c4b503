"""vanilla: no memory of the user at all (the lower bound)."""

from __future__ import annotations

from agents.llm_agent import LLMAgent


class VanillaAgent(LLMAgent):
    """Answers each session from scratch; nothing about the user enters the prompt."""

    name = "vanilla"
