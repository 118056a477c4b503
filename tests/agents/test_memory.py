from __future__ import annotations

import json

import numpy as np
import pytest

from agents.memory import Card, CardStore, HashingEmbedder, LexicalReranker, LLMExtractor, RuleExtractor, VectorIndex
from agents.memory import make_embedder, make_extractor, make_reranker
from agents.memory.extractors import parse_extraction
from personalization_env.llm import ChatBackend, ChatResponse
from personalization_env.preferences import phrase
from personalization_env.profiles import load_profiles


@pytest.mark.parametrize("msg,cond,action", [
    ("I prefer short answers.", "always", "Short answers"),
    ("Please don't use emojis.", "always", "Don't use emojis"),
    ("Always show your work for math problems.", "for math problems", "Always show your work"),
    ("Hmm. For logic puzzles: could you list the premises first?", "for logic puzzles", "List the premises first"),
    ("Could you use bullet points, please?", "always", "Use bullet points"),
])
def test_rule_extractor_ordinary_phrasing(msg, cond, action):
    cards = RuleExtractor().extract(msg)
    assert [(c.condition, c.action) for c in cards] == [(cond, action)]


@pytest.mark.parametrize("msg", [
    "Hmm, I don't think that's right. Can you double-check?", "Thanks, that's exactly what I needed!",
    "Yes, that makes sense. Go on.", "Hi! Could you help me with this one?\n\nWhat is 3 + 4?",
])
def test_rule_extractor_ignores_feedback_and_tasks(msg):
    assert all("3 + 4" not in c.action for c in RuleExtractor().extract(msg))
    if "Hi!" not in msg:
        assert RuleExtractor().extract(msg) == []


def test_rule_extractor_handles_simulator_restatements():
    rng = np.random.default_rng(0)
    ex = RuleExtractor()
    prefs = [p for u in load_profiles("complex")[:10] + load_profiles("msc")[:20] for p in u.preferences]
    found = sum(bool(ex.extract(phrase(p, rng))) for p in prefs)
    assert found / len(prefs) >= 0.95


@pytest.mark.parametrize("msg,cond,action", [
    # a wish under a condition that names what to explain is no confusion
    ("After a wrong answer, explain what went wrong.", "after a wrong answer", "Explain what went wrong"),
    # a request asked as a question with a standing adverb before its verb
    ("Could you always end with a question for me?", "always", "Always end with a question for me"),
    # wanting a thing ("I want <thing>, not <other>") is a wish, not a correction
    ("I want thorough explanations, not summaries.", "always", "Thorough explanations, not summaries"),
])
def test_rule_extractor_reads_general_wishes(msg, cond, action):
    assert [(c.condition, c.action) for c in RuleExtractor().extract(msg)] == [(cond, action)]


class FakeBackend(ChatBackend):
    def __init__(self, outputs):
        super().__init__()
        self.outputs = list(outputs)

    def _generate(self, requests):
        return [ChatResponse(self.outputs.pop(0)) for _ in requests]


def test_llm_extractor_validates_and_repairs():
    good = json.dumps({"preferences": [{"condition": "for math problems", "action": "use LaTeX", "confidence": 0.9}]})
    ex = LLMExtractor(model=FakeBackend(["not json at all", good]))
    cards = ex.extract("For math, please use LaTeX.")
    assert [(c.condition, c.action) for c in cards] == [("for math problems", "use LaTeX")]
    assert ex.repairs == 1 and ex.failures == 0
    bad = LLMExtractor(model=FakeBackend(["nope", "still nope"]))
    assert bad.extract("x") == [] and bad.failures == 1
    with pytest.raises(ValueError, match="preferences"):
        parse_extraction('{"prefs": []}')


def test_llm_extractor_on_the_scripted_model():
    cards = make_extractor("llm:scripted").extract("Please use bullet points from now on.")
    assert cards and "bullet" in cards[0].action.lower()


def test_cards_dedupe_and_notes():
    store = CardStore()
    assert store.add(Card("always", "Use bullet points"))[1]
    i, new = store.add(Card("always", "use bullet points."))
    assert not new and store.cards[i].confirmations == 2
    assert Card("for math problems", "use LaTeX").note == "For math problems, use LaTeX."
    assert Card("giving an answer", "bold it").note == "When giving an answer, bold it."
    assert CardStore.from_list(store.to_list()).cards == store.cards


def test_hashing_embedder_index_and_reranker():
    emb = HashingEmbedder(dim=64)
    texts = ["use bullet points", "answer in three sentences", "show the code first"]
    E = emb.encode(texts)
    assert E.shape == (3, 64) and np.allclose(np.linalg.norm(E, axis=1), 1.0)
    assert np.array_equal(E, HashingEmbedder(dim=64).encode(texts))
    index = VectorIndex(64)
    index.add(E)
    scores, ids = index.search(emb.encode_one("please use bullet points"), 2)
    assert ids[0] == 0 and scores[0] > scores[1]
    s = LexicalReranker().score("bullet points please", texts)
    assert int(np.argmax(s)) == 0
    with pytest.raises(ValueError, match="did you mean 'hashing'"):
        make_embedder("hashin")
    with pytest.raises(ValueError, match="did you mean 'lexical'"):
        make_reranker("lexcal")
    assert make_reranker("none") is None
