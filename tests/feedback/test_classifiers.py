from __future__ import annotations

import pytest

from personalization_env.feedback import DEFAULT_REWARDS, KeywordClassifier, make_classifier, reward_of


@pytest.mark.parametrize("msg,label", [
    ("Could you please use bullet points?", "neg_constraint_restate"),
    ("I'd prefer shorter answers, three sentences max.", "neg_constraint_restate"),
    ("Hmm, I don't think that's right. Can you double-check?", "neg_correction"),
    ("I'm a bit confused. What's the final answer?", "neg_confusion"),
    ("Thanks, that's exactly what I needed!", "pos_praise"),
    ("Yes, that makes sense. Go on.", "pos_progress"),
    ("I know the denominator is another number now.", "neutral"),
])
def test_keyword_classifier_examples(msg, label):
    assert KeywordClassifier().classify(msg) == label


def test_whole_words_only_no_substring_firing():
    # the published heuristic fired "no" inside know/now/another/denominator
    assert KeywordClassifier().classify("I know now that another denominator works") == "neutral"


def test_rewards_and_unknown_names():
    assert reward_of("neg_constraint_restate") == DEFAULT_REWARDS["neg_constraint_restate"] == -1.0
    with pytest.raises(ValueError, match="unknown feedback label 'bogus'"):
        reward_of("bogus")
    with pytest.raises(ValueError, match="did you mean 'keyword'"):
        make_classifier("keywrd")
    with pytest.raises(ValueError, match="oracle_label"):
        make_classifier("oracle").classify("hi")


def test_keyword_accuracy_on_held_out_hand_written_messages():
    """Messages written by hand, not by the simulator: a check that the heuristic generalises."""
    import json
    from pathlib import Path

    rows = [json.loads(x) for x in (Path(__file__).parent / "data" / "heldout_messages.jsonl").read_text().splitlines()]
    clf = KeywordClassifier()
    acc = sum(clf.classify(r["message"]) == r["label"] for r in rows) / len(rows)
    assert len(rows) >= 30
    assert acc >= 0.85, acc


def test_keyword_accuracy_against_simulator_labels():
    from benchmarks.feedback_accuracy import collect, evaluate

    res = evaluate(collect("msc", users=10, sessions=3), "keyword")
    assert res["turns"] >= 100
    assert res["accuracy"] >= 0.85, res
