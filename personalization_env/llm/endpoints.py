"""Embedding and scoring endpoints of an OpenAI-compatible server (vLLM's ``/v1/embeddings`` and
``/score``), for the embedder and reranker of the memory stack.

Spec: ``<model>@<base_url>`` (as the chat backend). The API key comes from the environment only
(:func:`~personalization_env.llm.openai_backend.api_key_from_env`); transient failures are retried by
the client (``$MSC_LLM_MAX_RETRIES``, default 6) and a server that stays down raises
:class:`~personalization_env.llm.base.BackendUnavailableError`.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from personalization_env.llm.base import BackendUnavailableError
from personalization_env.llm.openai_backend import make_client, setting, split_model_url


class ServerEndpoints:
    """Embeddings and (query, document) scores from one served model.

    Args:
        spec: ``<model>@<base_url>``.
        timeout: seconds per request.
    """

    def __init__(self, spec: str, timeout: float | None = None):
        self.model, self.base_url = split_model_url(spec, None)
        if not self.model or not self.base_url:
            raise ValueError(f"a server model needs '<model>@<base_url>', got {spec!r}")
        self.timeout = setting("timeout", timeout)
        self._client: Any = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}

    def _get(self) -> Any:
        if self._client is None or self._pid != os.getpid():
            self._client = make_client(self.base_url, self.timeout, setting("max_retries"),
                                       "server embedders and rerankers")
            self._pid = os.getpid()
        return self._client

    def _call(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - the client already retried transient errors
            raise BackendUnavailableError(f"{what} at {self.base_url} failed for model {self.model!r} "
                                          f"({type(e).__name__}); check the server, then rerun with --resume") from e

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings, one row per text."""
        resp = self._call("embeddings", lambda: self._get().embeddings.create(model=self.model, input=list(texts)))
        rows = sorted(resp.data, key=lambda d: d.index)
        out = np.asarray([d.embedding for d in rows], dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """Relevance of each document to ``query`` (vLLM's ``/score``)."""
        body = {"model": self.model, "text_1": query, "text_2": list(documents)}
        resp = self._call("score", lambda: self._get().post("/score", body=body, cast_to=object))
        data = sorted(resp["data"], key=lambda d: d["index"])
        return np.asarray([float(d["score"]) for d in data], dtype=np.float32)
