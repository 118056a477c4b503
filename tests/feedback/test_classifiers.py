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


@pytest.mark.parametrize("msg,label", [
    # corrections stated as facts: a wrong value, a failure, a mix-up, a contradiction, "X, not Y"
    ("The loop crashes when the list is empty.", "neg_correction"),
    ("You mixed up the radius and the diameter.", "neg_correction"),
    ("It's 42, not 24.", "neg_correction"),
    ("That contradicts what you said earlier.", "neg_correction"),
    ("I ran it and got a ValueError.", "neg_correction"),
    ("Hmm, that doesn't seem right to me.", "neg_correction"),
    # confusion asked as a question
    ("wait, why do we square it here?", "neg_confusion"),
    ("What does 'amortised' mean?", "neg_confusion"),
    ("How did you get from the second line to the third?", "neg_confusion"),
    ("I still don't get where the 7 comes from.", "neg_confusion"),
    # praise without stock words
    ("That did it!", "pos_praise"),
    ("works now", "pos_praise"),
    ("Oh, now I get it.", "pos_praise"),
    # follow-up questions that show progress
    ("ok, and how would I do this with three variables?", "pos_progress"),
    ("Got it. What's the next part?", "pos_progress"),
    ("Right, and what if the list is sorted already?", "pos_progress"),
    # topic shifts
    ("Switching gears: how do I center text in CSS?", "topic_shift"),
    ("Different question - what's a good stats textbook?", "topic_shift"),
    # constraint restatements: reminders, conditions, prohibitions, complaints about form
    ("I said no bullet points.", "neg_constraint_restate"),
    ("Again, keep it under a hundred words.", "neg_constraint_restate"),
    ("Remember, answer first.", "neg_constraint_restate"),
    ("Way too long.", "neg_constraint_restate"),
    ("When you write code, add comments.", "neg_constraint_restate"),
    ("Stop apologizing.", "neg_constraint_restate"),
    # a wish that mentions a mistake is still a wish, not a correction
    ("For multiple-choice questions, tell me why the wrong options are wrong.", "neg_constraint_restate"),
    ("Never mind, I'll work it out later.", "neutral"),
])
def test_keyword_classifier_general_patterns(msg, label):
    assert KeywordClassifier().classify(msg) == label


def test_is_correction_reads_clauses():
    from personalization_env.feedback.classifiers import is_correction

    assert is_correction("Thanks, but the total is wrong.")
    assert not is_correction("Please explain why the other options are wrong.")
    assert not is_correction("Thanks, that's it!")
    # a wish under a condition names mistakes without calling this answer wrong
    assert not is_correction("For proofs, point out where a wrong step would lead.")
    # a quoted problem after a blank line is not the user's verdict
    assert not is_correction("Can you help with this?\n\nA coin is flipped; the second toss is not heads. Which is wrong?")


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
