from __future__ import annotations

import numpy as np
import pytest

from personalization_env.profiles import parse_preference
from personalization_env.tasks import answer_sentence, load_tasks, wrong_answer
from personalization_env.types import Profile
from personalization_env.users import make_user_simulator

TASK = load_tasks("gen_math", n=5)[0]


def start(prefs, traits=None, seed=0):
    profile = Profile("u", "A student who likes tidy notes", tuple(parse_preference(p) for p in prefs), traits or {})
    sim = make_user_simulator("rule")
    return sim.start(profile, TASK, np.random.default_rng(seed))


def test_opening_contains_problem_and_is_neutral():
    session, first = start(["msc_bullets"])
    assert TASK.problem in first.message and first.label == "neutral" and first.draft_answer is None


def test_violation_is_restated_and_nothing_else():
    session, _ = start(["msc_bullets"])
    reply = f"Let me explain. We add the numbers. {answer_sentence(TASK, TASK.answer)}"
    turn = session.respond(reply)
    assert turn.label == "neg_constraint_restate"
    assert turn.enforced_ids == ("msc_bullets",)
    assert turn.verdicts == {"msc_bullets": False}
    assert turn.draft_answer is None and not turn.done  # the draft does not move on a violation


def test_compliant_correct_answer_satisfies_and_sets_draft():
    session, _ = start(["msc_bullets"])
    reply = f"- We add the numbers.\n- {answer_sentence(TASK, TASK.answer)}"
    turn = session.respond(reply)
    assert turn.label == "pos_praise" and turn.done and turn.outcome == "satisfied"
    assert turn.draft_answer is not None and turn.verdicts == {"msc_bullets": True}


def test_wrong_answer_is_caught_or_adopted_by_verify_prob():
    wrong = wrong_answer(TASK, np.random.default_rng(0))
    reply = f"- {answer_sentence(TASK, wrong)}"
    caught = start(["msc_bullets"], traits={"verify_prob": 1.0})[0].respond(reply)
    assert caught.label == "neg_correction" and caught.draft_answer is None
    adopted = start(["msc_bullets"], traits={"verify_prob": 0.0})[0].respond(reply)
    assert adopted.label == "pos_praise" and adopted.done and adopted.draft_answer is not None


def test_no_answer_is_progress_with_check_in_else_confusion():
    s, _ = start([])
    assert s.respond("First we find the total price. Does this make sense so far?").label == "pos_progress"
    s, _ = start([])
    assert s.respond("First we find the total price.").label == "neg_confusion"


def test_patience_ends_the_session():
    s, _ = start(["msc_bullets"], traits={"patience": 3})
    assert not s.respond("No bullets here.").done
    last = s.respond("Still none.")
    assert last.done and last.outcome == "gave_up"
    with pytest.raises(RuntimeError, match="ended"):
        s.respond("hello")


def test_restatements_vary():
    msgs = {start(["msc_bullets"], seed=k)[0].respond("Plain prose. The answer is 3.").message for k in range(12)}
    assert len(msgs) >= 4


def test_unknown_trait_and_simulator_names():
    with pytest.raises(ValueError, match="unknown user trait"):
        make_user_simulator("rule", traits={"patiance": 3})
    with pytest.raises(ValueError, match="did you mean 'rule'"):
        make_user_simulator("rules")


def test_recheck_adopts_then_comes_back_satisfied_when_the_answer_holds():
    s, _ = start(["msc_bullets"], traits={"recheck_prob": 1.0})
    right = f"- {answer_sentence(TASK, TASK.answer)}"
    adopted = s.respond(right)
    assert adopted.label == "pos_praise" and not adopted.done and adopted.draft_answer is not None
    back = s.respond("- You're welcome; anything else?")
    assert back.done and back.outcome == "satisfied" and back.draft_answer == adopted.draft_answer


def test_recheck_finds_a_wrong_answer_as_often_as_the_user_verifies():
    wrong = wrong_answer(TASK, np.random.default_rng(0))
    s, _ = start(["msc_bullets"], traits={"recheck_prob": 1.0, "verify_prob": 0.0})
    adopted = s.respond(f"- {answer_sentence(TASK, wrong)}")
    assert not adopted.done and adopted.draft_answer is not None
    back = s.respond("- Glad to help.")
    assert back.done and back.outcome == "satisfied"  # a user who cannot verify keeps the wrong draft
    outcomes = []
    for seed in range(60):
        s, _ = start(["msc_bullets"], traits={"recheck_prob": 1.0, "verify_prob": 0.5}, seed=seed)
        if s.respond(f"- {answer_sentence(TASK, wrong)}").label != "pos_praise":
            continue  # caught at once
        back = s.respond("- Glad to help.")
        outcomes.append(back.label)
        if back.label == "neg_correction":  # the model's next, correct attempt is adopted again
            again = s.respond(f"- {answer_sentence(TASK, TASK.answer)}")
            assert again.label == "pos_praise" and again.draft_answer != adopted.draft_answer
    assert {"neg_correction", "pos_praise"} <= set(outcomes)


def test_a_violation_in_the_reply_between_is_still_restated_while_checking():
    s, _ = start(["msc_bullets"], traits={"recheck_prob": 1.0})
    s.respond(f"- {answer_sentence(TASK, TASK.answer)}")
    assert s.respond("Plain prose, no bullets.").label == "neg_constraint_restate"
    assert s.respond("- Still here.").done


def test_recheck_prob_zero_ends_at_once():
    s, _ = start(["msc_bullets"], traits={"recheck_prob": 0.0})
    assert s.respond(f"- {answer_sentence(TASK, TASK.answer)}").done


def test_notice_prob_zero_misses_every_violation_and_one_notices_all():
    reply = f"Plain prose. {answer_sentence(TASK, TASK.answer)}"
    missed = start(["msc_bullets"], traits={"notice_prob": 0.0})[0].respond(reply)
    assert missed.label == "pos_praise" and missed.verdicts == {"msc_bullets": False}  # the verdict still records it
    assert start(["msc_bullets"], traits={"notice_prob": 1.0})[0].respond(reply).label == "neg_constraint_restate"
    noticed = sum(start(["msc_bullets"], traits={"notice_prob": 0.5}, seed=k)[0].respond(reply).label
                  == "neg_constraint_restate" for k in range(40))
    assert 8 <= noticed <= 32  # binomial(40, 0.5)


def _recheck_turns():
    """(message, label) of every turn where the user goes off to check an adopted answer or comes back."""
    wrong = wrong_answer(TASK, np.random.default_rng(0))
    turns = []
    for seed in range(40):
        s, _ = start(["msc_bullets"], traits={"recheck_prob": 1.0, "verify_prob": 0.5}, seed=seed)
        later = s.respond(f"- {answer_sentence(TASK, TASK.answer if seed % 2 else wrong)}")
        if later.done or later.label != "pos_praise":
            continue  # caught at once (not a recheck turn)
        back = s.respond("- Glad to help.")
        turns += [(later.message, later.label), (back.message, back.label)]
    return turns


def test_recheck_lines_read_as_their_label_by_the_worlds_own_detectors():
    from agents.memory.extractors import RuleExtractor
    from personalization_env.feedback.classifiers import KeywordClassifier, is_correction
    from personalization_env.users.rule import _phrases

    turns = _recheck_turns()
    said = {m for m, _ in turns}
    ph = _phrases()
    for line in ph["recheck_later"] + ph["recheck_ok"]:
        assert line in said  # every recheck line was exercised
    assert {"pos_praise", "neg_correction"} <= {label for _, label in turns}
    classifier, extractor = KeywordClassifier(), RuleExtractor()
    for message, label in set(turns):
        assert classifier.classify(message) == label, message
        assert is_correction(message) == (label == "neg_correction"), message
        assert extractor.extract(message) == [], message  # going off to check is no preference


@pytest.mark.parametrize("trait", ["notice_prob", "recheck_prob", "verify_prob", "persona_intro_prob"])
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_probability_traits_outside_zero_one_are_refused(trait, value):
    with pytest.raises(ValueError, match=rf"{trait} must be a probability in \[0, 1\], got {value}"):
        make_user_simulator("rule", traits={trait: value})
    make_user_simulator("rule", traits={trait: 1.0})  # the bounds themselves are fine
