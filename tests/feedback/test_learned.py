"""The learned feedback classifier (personalization_env/feedback/learned.py) and its training corpus.

The corpus must be well formed, large enough, and independent: no message shares a run of five words
with any text the simulator writes from (collected by the helpers of tests/test_language.py and
tests/benchmarks/test_detectors.py), and none repeats a message of the evaluation sets. The shipped
weights must be what the documented fit produces on the corpus.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from benchmarks.detectors import SETS, load_set
from personalization_env.feedback import LABELS, LearnedClassifier, make_classifier
from personalization_env.feedback import learned
from tests.benchmarks.test_detectors import _ngrams, _segments, _words, simulator_templates
from tests.test_language import simulator_texts

HELDOUT = Path(__file__).resolve().parent / "data" / "heldout_messages.jsonl"


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return learned.load_corpus()


def test_corpus_opens_with_its_schema_line():
    first = json.loads(learned.CORPUS.read_text(encoding="utf-8").splitlines()[0])
    assert set(first["_schema"]) == {"text", "label", "batch"}


def test_corpus_schema_and_size(corpus):
    assert all(set(r) == {"text", "label", "batch"} and r["text"].strip() for r in corpus)
    assert {r["label"] for r in corpus} <= set(LABELS)
    counts = Counter(r["label"] for r in corpus)
    assert len(corpus) >= 900 and min(counts[lab] for lab in LABELS) >= 120, counts
    assert len({r["batch"] for r in corpus}) >= 20  # many small batches, not one long list


def test_corpus_has_no_duplicates(corpus):
    texts = Counter(r["text"] for r in corpus)
    assert [t for t, c in texts.items() if c > 1] == []


def test_no_message_shares_five_words_with_the_simulator(corpus):
    grams = set()
    for text in simulator_templates() + simulator_texts():
        for seg in _segments(text):
            grams |= _ngrams(_words(seg))
    assert len(grams) > 1000  # the collectors found the simulator's text
    hits = [(r["text"], sorted(_ngrams(_words(r["text"])) & grams)) for r in corpus
            if _ngrams(_words(r["text"])) & grams]
    assert hits == []


def test_no_message_repeats_an_evaluation_item(corpus):
    held = {it["text"] for name in SETS for it in load_set(name)}
    if HELDOUT.exists():
        held |= {json.loads(x)["message"] for x in HELDOUT.read_text(encoding="utf-8").splitlines() if x.strip()}
    assert held
    assert [r["text"] for r in corpus if r["text"] in held] == []


def test_shipped_weights_are_reproduced_by_the_fit(corpus):
    model, settings = learned.load_weights()
    again = learned.fit([r["text"] for r in corpus], [r["label"] for r in corpus], settings)
    assert model["W"].shape == again["W"].shape
    np.testing.assert_allclose(model["W"], again["W"], atol=1e-4)
    np.testing.assert_allclose(model["b"], again["b"], atol=1e-4)


def test_weights_file_is_small():
    assert learned.WEIGHTS.stat().st_size < 3 * 2 ** 20


# Written for this test, not taken from any set: one or more per label, each with one clear intent.
@pytest.mark.parametrize("msg,label", [
    ("you wrote 9 x 7 = 56 but it's 63", "neg_correction"),
    ("The script crashes with a ZeroDivisionError when the basket is empty.", "neg_correction"),
    ("i dont understand where the square root went", "neg_confusion"),
    ("Sorry, what does 'recursion depth' mean?", "neg_confusion"),
    ("Thank you, that was really clear and helpful!", "pos_praise"),
    ("ok that works, now how do I do the same for the second matrix?", "pos_progress"),
    ("Please keep it brief like I asked, just the result.", "neg_constraint_restate"),
    ("again, no latex please", "neg_constraint_restate"),
    ("different question: how far is the moon from the earth?", "topic_shift"),
    ("ok, give me a minute to try it", "neutral"),
])
def test_hand_labelled_messages(msg, label):
    assert LearnedClassifier().classify(msg) == label


def test_registered_and_batch_agrees_with_single():
    clf = make_classifier("learned")
    assert isinstance(clf, LearnedClassifier) and clf.name == "learned"
    msgs = ["thanks!", "that's wrong, it's 12", "", "why?"]
    assert clf.classify_batch(msgs) == [clf.classify(m) for m in msgs]
    probs = clf.scores("thanks!")
    assert set(probs) == set(LABELS) and abs(sum(probs.values()) - 1) < 1e-6


def test_weights_are_read_on_first_use(tmp_path):
    clf = LearnedClassifier(weights=tmp_path / "missing.json")  # constructing reads nothing
    with pytest.raises(FileNotFoundError, match="--fit"):
        clf.classify("hello")


def test_fit_rejects_an_unknown_label_and_an_empty_message():
    with pytest.raises(ValueError, match="unknown label"):
        learned.fit(["hi"], ["happy"])
    with pytest.raises(ValueError, match="no features"):
        learned.fit(["", "hi there"], ["neutral", "neutral"])


def test_features_are_deterministic_and_cover_typos():
    a, b = learned.features("Thats wrong"), learned.features("Thats wrong")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # a typo keeps most character n-grams of the word
    shared = set(learned.features("definitely")[0]) & set(learned.features("definately")[0])
    assert len(shared) >= 5
