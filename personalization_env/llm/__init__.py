"""Chat backends: one small batched interface for every model role (agent, simulator, judge, extractor)."""

from __future__ import annotations

from personalization_env.llm.base import ChatBackend, ChatRequest, ChatResponse, make_backend

__all__ = ["ChatBackend", "ChatRequest", "ChatResponse", "make_backend"]
