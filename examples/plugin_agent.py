"""A plug-in agent defined outside the package: remembers every sentence the user asked for, verbatim.

Run it through the benchmark by its "module:Class" spec (from the repository root)::

    PYTHONPATH=examples msc run --methods vanilla,plugin_agent:VerbatimMemoryAgent --users 10 --sessions 5

and validate it with ``check_agent`` (this script does).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from agents.check import check_agent
from agents.llm_agent import LLMAgent

_ASK = re.compile(r"\b(please|could you|can you|i'd like|i prefer|i want|next time|always|never|don't)\b", re.I)


class VerbatimMemoryAgent(LLMAgent):
    """Keeps the user's request sentences per user and lists them in the system prompt."""

    name = "verbatim"

    def __init__(self, max_notes: int = 20, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_notes = max_notes
        self.notes: dict[str, list[str]] = {}

    def memory_prompt(self, user_id: str, obs: Mapping[str, Any]) -> str:
        notes = self.notes.setdefault(user_id, [])
        for sent in re.split(r"(?<=[.!?])\s+", str(obs["message"])):
            if _ASK.search(sent) and sent not in notes and len(sent) < 300:
                notes.append(sent)
        del notes[: -self.max_notes]
        return "The user asked for:\n" + "\n".join(f"- {n}" for n in notes) if notes else ""

    def state_dict(self) -> dict[str, Any]:
        return {"notes": {u: list(n) for u, n in self.notes.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.notes = {u: list(n) for u, n in state["notes"].items()}


if __name__ == "__main__":
    print(check_agent(VerbatimMemoryAgent(seed=0)))
