"""A per-user inner-product vector index (FAISS ``IndexFlatIP``; exact search, small per-user memories)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as e:
        raise ImportError("the retrieval methods need FAISS: pip install 'multisessioncollab[torch]'") from e
    return faiss


class VectorIndex:
    """Exact inner-product search over unit-norm vectors (cosine similarity).

    Args:
        dim: vector dimension.
    """

    def __init__(self, dim: int):
        self.dim = dim
        self._index: Any = None
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def _ensure(self) -> Any:
        if self._index is None:
            self._index = _faiss().IndexFlatIP(self.dim)
        return self._index

    def add(self, vectors: np.ndarray) -> None:
        """Append rows (ids are insertion order)."""
        v = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if len(v):
            self._ensure().add(v)
            self._n += len(v)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) for one query vector; fewer when the index is smaller."""
        scores, ids = self.search_many(np.asarray(query).reshape(1, self.dim), k)
        return scores[0], ids[0]

    def search_many(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per row of ``queries`` ([m, dim] -> two [m, k] arrays), in one pass."""
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = min(k, self._n)
        if k <= 0:
            return np.zeros((len(q), 0), dtype=np.float32), np.zeros((len(q), 0), dtype=np.int64)
        return self._ensure().search(q, k)

    def vectors(self) -> np.ndarray:
        """All stored vectors, in id order."""
        if self._n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._ensure().reconstruct_n(0, self._n)

    def __getstate__(self) -> dict[str, Any]:
        return {"dim": self.dim, "vectors": self.vectors()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["dim"])  # type: ignore[misc]
        self.add(state["vectors"])
