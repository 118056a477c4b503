"""A trained SB3 policy as rag's retrieval decision inside the ordinary text agent.

Train a policy on ``MultiSessionCollabRetrieval-v0`` (:mod:`agents.retrieval_env`), save it, and run it
beside the other methods::

    msc run --methods vanilla,agents.ppo_retrieval:PPORetrievalAgent --agent-arg ppo_policy=runs/ppo.zip

The agent is rag in every other respect; only the choice among the candidates comes from the policy,
which sees the same observation the env gave it during training (:meth:`RetrievalRAGAgent.view`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from agents.llm_agent import request_seed
from agents.retrieval_env import RetrievalRAGAgent, chosen_slots


def policy_file(path: str | Path) -> Path:
    """The file SB3 saved for ``path`` (``model.save("x")`` writes ``x.zip``)."""
    p = Path(path)
    for cand in (p, p.with_name(p.name + ".zip")):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"no SB3 policy at {str(path)!r} (nor {str(path) + '.zip'!r}); train one with "
                            "examples/sb3_ppo_retrieval.py or python -m benchmarks.ppo_retrieval")


class PPORetrievalAgent(RetrievalRAGAgent):
    """rag whose retrieval decision is a trained SB3 PPO policy (``MultiBinary(K)`` over the candidates).

    Args:
        ppo_policy: path of the policy (``PPO.save``'s file, with or without ``.zip``), trained on
            ``MultiSessionCollabRetrieval-v0`` with the same ``K``. (Not named ``policy``: rag_vector
            has an argument of that name, and ``msc run`` hands an agent argument to every method
            that takes it.)
        deterministic: take every card whose probability is above 0.5 (the policy's mode, as SB3's
            ``predict(deterministic=True)``); False samples each bit, seeded by (seed, user, session, turn).
        **kwargs: see :class:`~agents.retrieval_env.RetrievalRAGAgent` (``K`` must match the policy;
            ``J`` is the prompt budget, 3 as rag; ``max_turns`` the world's, 10 by default).

    The policy is loaded on first use (``stable-baselines3``, torch), not in the constructor, which
    only checks that the file exists.
    """

    name = "ppo_retrieval"

    def __init__(self, ppo_policy: str | Path | None = None, deterministic: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        if ppo_policy is None:
            raise ValueError("PPORetrievalAgent needs ppo_policy=PATH (msc run: --agent-arg ppo_policy=PATH), the "
                             "file of a PPO policy trained on MultiSessionCollabRetrieval-v0")
        self.ppo_policy = str(policy_file(ppo_policy))
        self.deterministic = bool(deterministic)
        self._model: Any = None

    def model(self) -> Any:
        """The SB3 model (loaded once; checked against this agent's observation and action spaces)."""
        if self._model is None:
            from gymnasium import spaces
            from stable_baselines3 import PPO

            model = PPO.load(self.ppo_policy, device="cpu")
            want_obs, want_act = self.observation_space, spaces.MultiBinary(self.K)
            if model.observation_space != want_obs or model.action_space != want_act:
                raise ValueError(f"the policy at {self.ppo_policy!r} was trained on observation space "
                                 f"{model.observation_space} and action space {model.action_space}; this agent "
                                 f"(K={self.K}) needs {want_obs} and {want_act}: pass the K it was trained with")
            model.policy.set_training_mode(False)
            self._model = model
        return self._model

    def card_probabilities(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The policy's probability of taking each slot (``K`` values)."""
        import torch

        policy = self.model().policy
        tensor, _ = policy.obs_to_tensor({k: np.asarray(v) for k, v in obs.items()})
        with torch.no_grad():
            probs = policy.get_distribution(tensor).distribution.probs
        return probs.cpu().numpy().reshape(-1).astype(np.float64)

    def select(self, user_id: str, obs: Mapping[str, Any], ids: list[int], emb: np.ndarray, s0: np.ndarray,
               q: np.ndarray) -> list[int]:
        view = self.view(user_id, obs, ids, emb, s0, q)
        probs = self.card_probabilities(view.obs)
        if self.deterministic:
            action = probs > 0.5
        else:
            rng = np.random.default_rng(request_seed(self.seed, "ppo_retrieval", user_id, obs.get("session", 0),
                                                     obs.get("turn", 0)))
            action = rng.random(probs.shape[0]) < probs
        return [view.positions[s] for s in chosen_slots(action, view.obs["mask"], self.J)]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}  # reloaded from the file on first use
