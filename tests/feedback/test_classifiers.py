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


@pytest.mark.parametrize("msg,label", [
    # informal spelling: contractions without apostrophes, chat abbreviations
    ("im not sure i understand how the contrapositive works here", "neg_confusion"),
    ("dont get it, u lost me", "neg_confusion"),
    ("thx, thats what i needed", "pos_praise"),
    # negation scope: the verdict word must be under the negation ("works" lies outside "not sure why")
    ("I'm not sure why the loop invariant holds", "neg_confusion"),
    ("This doesn't compile: missing semicolon after the return.", "neg_correction"),
    # hedged contradictions and contrast markers
    ("I don't think penicillin treats viral infections...", "neg_correction"),
    ("Aspirin isn't an antibiotic though.", "neg_correction"),
    ("Thanks, but the dosage seems high for a child.", "neg_correction"),
    ("hm, 0.3 + 0.6 isn't 0.8", "neg_correction"),
    ("The test still fails with the same assertion error.", "neg_correction"),
    ("Hold on, the conclusion doesn't follow from those premises.", "neg_correction"),
    # a correction stated about a style word is still a correction; a complaint about the form is not
    ("The units are wrong.", "neg_correction"),
    ("Again, way too long.", "neg_constraint_restate"),
    # saying one is lost beats a plain request for another explanation
    ("can you explain that part about recursion again, I didn't get it", "neg_confusion"),
    ("Can you give an example? I'm completely lost.", "neg_confusion"),
    # questions without a question mark; next steps; new tasks given as commands
    ("how do I center a div", "topic_shift"),
    ("solve 3x + 5 = 20", "topic_shift"),
    ("perfect, now turn that into a function", "pos_progress"),
    ("that's clear. could you walk me through the next part, the error term?", "pos_progress"),
    ("Now a chemistry question: how many moles in 18 g of water?", "topic_shift"),
    # emoji
    ("confused \U0001F615", "neg_confusion"),
    # information that happens to hold a negation stays neutral
    ("I haven't tried it yet.", "neutral"),
    ("hold on, my cat walked on the keyboard", "neutral"),
])
def test_keyword_classifier_general_mechanisms(msg, label):
    assert KeywordClassifier().classify(msg) == label


def test_standard_spelling_writes_out_informal_words_only():
    from personalization_env.language import standard_spelling

    assert standard_spelling("dont worry, u r fine") == "don't worry, you r fine"
    assert standard_spelling("I\u2019m here") == "I'm here"
    # real words that look informal are kept ("its", "lets"), and so is a word inside another word
    assert standard_spelling("its value lets us see; the dontcare bit") == "its value lets us see; the dontcare bit"


def test_negation_scope_stops_at_a_clause_word():
    from personalization_env.feedback.classifiers import negation_scopes

    assert "works" not in negation_scopes("I'm not sure why it works")
    assert "right" in negation_scopes("that doesn't look right")


@pytest.mark.parametrize("persona", [None, "A high-school teacher.", "A graduate student in biology.",
                                     "A backend developer.", "A research engineer."])
def test_no_simulator_restatement_reads_as_a_correction(persona):
    """Sanity of the world, not a measure of the detector: the scripted agent model calls is_correction
    on every user message, so a restatement of a wish (with its openers, persona opener and condition)
    must never read as "your answer is wrong"."""
    import numpy as np

    from personalization_env.feedback.classifiers import is_correction
    from personalization_env.preferences import load_catalogue, phrase
    from personalization_env.types import Preference

    rng = np.random.default_rng(0)
    flagged = [text for t in load_catalogue().values() for _ in range(3)
               if is_correction(text := phrase(Preference(t, t.condition), rng, persona=persona))]
    assert not flagged, flagged


@pytest.mark.parametrize("msg", [
    # a persona opener before a condition closed by a colon: the condition still frames the wish
    "As a teacher, after I point out a mistake: i want to know what went wrong",
    "Also, for math problems: please check your answer by plugging it back in.",
    # a wish framed as wanting something: "X, not Y" contrasts two forms, it corrects nothing
    "I want thorough explanations, not summaries.",
    # a standing wish about what to do when the user says something
    "Please don't apologise; fix the error after I point out a mistake.",
    # asking to be consulted is not asking to re-check the answer
    "On long problems, do one part, then check with me before moving on.",
])
def test_wishes_that_name_mistakes_are_no_corrections(msg):
    from personalization_env.feedback.classifiers import is_correction

    assert not is_correction(msg)
    if "check with me" not in msg:  # (read as a topic shift: "moving on")
        assert KeywordClassifier().classify(msg) == "neg_constraint_restate"


def test_negation_scope_covers_every_negation_word():
    from personalization_env.feedback.classifiers import negation_scopes
    from personalization_env.language import NEGATION_WORDS

    for word in NEGATION_WORDS:
        assert "right" in negation_scopes(f"{word} right answer"), word
    assert negation_scopes("never mind") == ""
