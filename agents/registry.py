"""Agent registry: built-in names, ``"module:Class"`` specs and an entry-point group for plug-ins."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from agents.base import Agent
from personalization_env.naming import did_you_mean

#: built-in agents (name -> "module:Class"); imported lazily
AGENTS: dict[str, str] = {
    "vanilla": "agents.vanilla:VanillaAgent",
    "contextual": "agents.contextual:ContextualAgent",
    "reflection": "agents.reflection:ReflectionAgent",
    "all_memory": "agents.memory_agent:AllMemoryAgent",
    "rag": "agents.rag:RAGAgent",
    "rag_vector": "agents.rag_vector:RAGVectorAgent",
    "oracle": "agents.oracle:OracleAgent",
}
#: the six methods of the benchmark, in table order
METHODS: tuple[str, ...] = ("vanilla", "contextual", "reflection", "all_memory", "rag", "rag_vector")
ENTRY_POINT_GROUP = "multisessioncollab.agents"


def _resolve(target: str) -> type[Agent]:
    mod, _, attr = target.partition(":")
    try:
        module = importlib.import_module(mod)
    except ModuleNotFoundError as e:
        if e.name is not None and mod.split(".")[0] == e.name.split(".")[0]:
            raise ValueError(f"cannot load agent {target!r}: no module named {e.name!r} on the Python path; run from "
                             f"the folder that holds {mod.split('.')[0]}.py with PYTHONPATH=. (PYTHONPATH=. msc run "
                             f"...) or pip install the package that provides it") from e
        raise ValueError(f"cannot load agent {target!r}: {e}") from e
    except ImportError as e:
        raise ValueError(f"cannot load agent {target!r}: {e}") from e
    try:
        obj = getattr(module, attr)
    except AttributeError:
        extra = did_you_mean(attr, [n for n in vars(module) if not n.startswith("_")])
        raise ValueError(f"cannot load agent {target!r}: module {mod!r} has no {attr!r}{extra}") from None
    if not (isinstance(obj, type) and issubclass(obj, Agent)):
        raise ValueError(f"{target!r} is not an Agent subclass")
    return obj


def available_agents() -> list[str]:
    """Built-in names plus installed plug-ins."""
    return sorted(set(AGENTS) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def make_agent(name: str, **kwargs: Any) -> Agent:
    """Build an agent from a registry name, an installed plug-in name, or ``"module:Class"``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"agent name must be a non-empty string, got {name!r}")
    if ":" in name:
        return _resolve(name)(**kwargs)
    if name in AGENTS:
        return _resolve(AGENTS[name])(**kwargs)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Agent)):
                raise ValueError(f"entry point {name!r} does not name an Agent subclass")
            return cls(**kwargs)
    extra = did_you_mean(name, available_agents())
    raise ValueError(f"unknown agent {name!r}{extra} known: {available_agents()} (or pass 'module:Class')")
