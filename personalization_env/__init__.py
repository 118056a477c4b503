"""MultiSessionCollab-v0: a Gymnasium world for assistants that learn a user's preferences across sessions.

Importing the package registers ``MultiSessionCollab-v0`` with Gymnasium (a lazy string entry point: nothing
heavy is imported until ``gym.make``).
"""

from __future__ import annotations

__version__ = "0.1.0"

ENV_ID = "MultiSessionCollab-v0"


def register_envs() -> None:
    """Register the environment ids with Gymnasium (idempotent)."""
    import gymnasium as gym

    if ENV_ID in gym.registry:
        return
    gym.register(
        id=ENV_ID,
        entry_point="personalization_env.env:MultiSessionCollabEnv",
        vector_entry_point="personalization_env.vector:MultiSessionCollabVectorEnv",
        order_enforce=True,
    )


register_envs()
