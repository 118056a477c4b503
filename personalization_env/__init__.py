"""MultiSessionCollab-v0: a Gymnasium world for assistants that learn a user's preferences across sessions.

Importing the package registers ``MultiSessionCollab-v0`` and ``MultiSessionCollabRetrieval-v0`` (the
retrieval decision of the rag agent as a numeric env, for SB3; it lives in ``agents``) with Gymnasium
(lazy string entry points: nothing heavy is imported until ``gym.make``).
"""

from __future__ import annotations

__version__ = "0.1.0"

ENV_ID = "MultiSessionCollab-v0"
RETRIEVAL_ENV_ID = "MultiSessionCollabRetrieval-v0"


def register_envs() -> None:
    """Register the environment ids with Gymnasium (idempotent)."""
    import gymnasium as gym

    if ENV_ID not in gym.registry:
        gym.register(
            id=ENV_ID,
            entry_point="personalization_env.env:MultiSessionCollabEnv",
            vector_entry_point="personalization_env.vector:MultiSessionCollabVectorEnv",
            order_enforce=True,
        )
    if RETRIEVAL_ENV_ID not in gym.registry:  # a string: importing personalization_env still imports no agents
        gym.register(id=RETRIEVAL_ENV_ID, entry_point="agents.retrieval_env:RetrievalEnv", order_enforce=True)


register_envs()
