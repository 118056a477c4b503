"""The model-backed memory parts, through the real sentence-transformers loading code, on tiny models
built offline."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("sentence_transformers", reason="needs the [hf] extra")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from agents import make_agent  # noqa: E402
from agents.memory import make_embedder, make_reranker  # noqa: E402
from personalization_env.env import MultiSessionCollabEnv  # noqa: E402
from tests.tiny_models import build_bi_encoder, build_cross_encoder  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_hf")
    return build_bi_encoder(root), build_cross_encoder(root)


def test_sentence_transformer_embedder(models):
    emb = make_embedder(f"st:{models[0]}")
    E = emb.encode(["use bullet points", "keep answers short", "use bullet points"])
    assert E.shape == (3, emb.dim) and emb.dim == 32
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    assert np.allclose(E[0], E[2], atol=1e-6)


def test_cross_encoder_reranker(models):
    rr = make_reranker(f"cross:{models[1]}")
    s = rr.score("bullet points", ["use bullet points", "keep answers short"])
    assert s.shape == (2,) and np.all(np.isfinite(s))


def test_rag_vector_runs_on_model_backed_memory(models):
    env = MultiSessionCollabEnv(n_users=1, tasks_per_dataset=10)
    agent = make_agent("rag_vector", embedder=f"st:{models[0]}", reranker=f"cross:{models[1]}", seed=0)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, r, te, tr, info = env.step(agent.act(obs))
        agent.observe(obs, r, te, tr, info)
        if te or tr:
            break
    assert agent.policy.dim == 32
