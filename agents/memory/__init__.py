"""The memory stack shared by the memory methods: cards, extractors, embedders, index, rerankers."""

from __future__ import annotations

from agents.memory.cards import Card, CardStore
from agents.memory.embedders import Embedder, HashingEmbedder, make_embedder
from agents.memory.extractors import Extractor, LLMExtractor, RuleExtractor, make_extractor
from agents.memory.index import VectorIndex
from agents.memory.rerankers import LexicalReranker, Reranker, make_reranker

__all__ = [
    "Card", "CardStore", "Embedder", "Extractor", "HashingEmbedder", "LLMExtractor", "LexicalReranker",
    "Reranker", "RuleExtractor", "VectorIndex", "make_embedder", "make_extractor", "make_reranker",
]
