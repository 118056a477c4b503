from __future__ import annotations

import json

import pytest

from personalization_env.llm import ChatRequest, make_backend
from personalization_env.llm.scripted import ScriptedBackend, ScriptedConfig
from personalization_env.preferences import get_type, run_check
from personalization_env.tasks import load_tasks, score_reply
from personalization_env.types import Message, ReplyContext

TASKS = load_tasks("gen_math", n=30)
CTX = ReplyContext(task_kind="math", situations=frozenset({"final_answer", "explanation", "multi_step",
                                                           "winding_down"}))


def reply(backend, system, task, seed, extra=()):
    msgs = (Message("system", system), Message("user", f"Hi!\n\n{task.problem}"), *extra)
    return backend.generate([ChatRequest(msgs, seed=seed)])[0].text


def compliance(system, type_id, n=30):
    b = ScriptedBackend()
    t = get_type(type_id)
    return sum(run_check(t.check, reply(b, system, task, k), CTX) for k, task in enumerate(TASKS[:n])) / n


#: Published IFScale figures (Jaroslawicz, Whiting, Shah, Maamari, 2025, "How Many Instructions Can LLMs
#: Follow at Once?", arXiv:2507.11538): abstract, "even the best frontier models only achieve 68%
#: accuracy at the max density of 500 instructions"; Figure 1, the best (reasoning) models show
#: "near-perfect performance until a critical density" (densities run from 10 to 500 in steps of 10).
IFSCALE_BEST_AT_500 = 0.68
IFSCALE_LOWEST_DENSITY = 10
NEAR_PERFECT = 0.95  # our reading of "near-perfect"


def test_follow_probability_curve_matches_published_ifscale_figures():
    c = ScriptedConfig()
    assert c.follow_prob(500) == pytest.approx(IFSCALE_BEST_AT_500, abs=0.02)
    assert c.follow_prob(IFSCALE_LOWEST_DENSITY) >= NEAR_PERFECT
    densities = range(IFSCALE_LOWEST_DENSITY, 501, 10)
    curve = [c.follow_prob(n) for n in densities]
    assert all(a > b for a, b in zip(curve, curve[1:]))  # accuracy falls as density grows


@pytest.mark.parametrize("change", [{"p_min": 0.4}, {"n_half": 100.0}, {"p_max": 0.9}, {"n_half": 3000.0}])
def test_ifscale_comparison_fails_for_wrong_curve_parameters(change):
    c = ScriptedConfig(**change)
    misses_500 = abs(c.follow_prob(500) - IFSCALE_BEST_AT_500) > 0.02
    assert misses_500 or c.follow_prob(IFSCALE_LOWEST_DENSITY) < NEAR_PERFECT


def test_defer_prob_zero_answers_in_the_first_reply():
    from personalization_env.tasks import extract_answer

    b = ScriptedBackend(ScriptedConfig(defer_prob=0.0))
    assert all(extract_answer(t, reply(b, "sys", t, k)) is not None for k, t in enumerate(TASKS))


def test_defer_prob_works_step_by_step_and_checks_in():
    from personalization_env.tasks import extract_answer

    always = ScriptedBackend(ScriptedConfig(defer_prob=1.0))
    for k, t in enumerate(TASKS[:10]):
        text = reply(always, "sys", t, k)
        assert extract_answer(t, text) is None and "?" in text  # a partial reply that hands the turn back
    half = ScriptedBackend(ScriptedConfig(defer_prob=0.5))
    deferred = sum(extract_answer(t, reply(half, "sys", t, k)) is None for k, t in enumerate(TASKS))
    assert 6 <= deferred <= 24  # binomial(30, 0.5): outside this range with probability < 0.2 %


#: preferences that fix how a reply ends: a check-in question of multi-turn solving must not break them
_ENDINGS = ("no_end_question", "msc_tldr", "summary_line", "msc_no_suggestions", "msc_holistic")


@pytest.mark.parametrize("type_id", _ENDINGS)
def test_deferred_replies_keep_followed_preferences_on_how_a_reply_ends(type_id):
    from personalization_env.tasks import extract_answer

    t = get_type(type_id)
    system = "You are a helpful assistant.\n" + t.phrasings[0]
    partial_ctx = ReplyContext(task_kind="math", situations=frozenset({"explanation", "multi_step"}))
    follows = ScriptedBackend(ScriptedConfig(defer_prob=1.0, p_max=1.0, p_min=1.0))
    for k, task in enumerate(TASKS[:15]):
        text = reply(follows, system, task, k)
        assert extract_answer(task, text) is None  # every reply defers the answer
        assert run_check(t.check, text, partial_ctx), (type_id, text)


def test_deferred_reply_checks_in_before_a_closing_summary_line():
    b = ScriptedBackend(ScriptedConfig(defer_prob=1.0, p_max=1.0, p_min=1.0))
    for k, task in enumerate(TASKS[:10]):
        text = reply(b, "You are a helpful assistant.\nAdd a one-line TL;DR at the end, please.", task, k)
        lines = [x for x in text.strip().splitlines() if x.strip()]
        assert lines[-1].startswith("TL;DR") and "?" in text  # the question comes before the TL;DR


def test_defer_prob_must_be_a_probability():
    with pytest.raises(ValueError, match="defer_prob"):
        ScriptedConfig(defer_prob=1.5)


def test_recognises_preferences_by_text_not_id():
    base = compliance("You are a helpful assistant.", "msc_bullets")
    told = compliance("You are a helpful assistant.\nThe user likes answers as bullet points.", "msc_bullets")
    assert told >= 0.9 and told > base + 0.2
    # the type's id alone means nothing to the model
    assert compliance("You are a helpful assistant.\nmsc_bullets", "msc_bullets") < 0.9


def test_vague_note_is_not_recognised():
    b = ScriptedBackend()
    assert b.recognizer.recognize("The user has some opinions about things.") is None
    assert b.recognizer.recognize("Prefers bullet points in responses.").type_id == "msc_bullets"


def test_deterministic_given_seed_and_answers_with_skill():
    b1, b2 = ScriptedBackend(), ScriptedBackend()
    assert reply(b1, "sys", TASKS[0], 5) == reply(b2, "sys", TASKS[0], 5)
    correct = sum(score_reply(t, reply(b1, "sys", t, 1)) for t in TASKS) / len(TASKS)
    assert 0.5 < correct <= 1.0
    never = ScriptedBackend({"default_skill": 0.0})
    assert not any(score_reply(t, reply(never, "sys", t, 1)) for t in TASKS[:10])


def test_other_roles_return_parseable_json_and_notes():
    b = make_backend("scripted")
    judge = b.generate([ChatRequest((Message("user", "Thanks, perfect!"),), purpose="judge", seed=1)])[0].text
    assert json.loads(judge)["label"] in {"pos_praise", "neutral", "pos_progress", "neg_correction",
                                          "neg_confusion", "neg_constraint_restate", "topic_shift"}
    ext = b.generate([ChatRequest((Message("user", "Please use bullet points from now on."),), purpose="extract",
                                  seed=1)])[0].text
    prefs = json.loads(ext)["preferences"]
    assert isinstance(prefs, list)
    notes = b.generate([ChatRequest((Message("user", "Could you use bullet points?"),
                                     Message("assistant", "Sure."),
                                     Message("user", "Summarize with a TL;DR line at the end, please.")),
                                    purpose="reflect", seed=3)])[0].text
    assert notes.startswith("- ")
    assert b.usage["judge"]["calls"] == 1 and b.usage["reflect"]["calls"] == 1


def test_bad_config_and_backend_names():
    with pytest.raises(ValueError, match="unknown scripted-model parameter"):
        ScriptedBackend({"p_maxx": 1})
    with pytest.raises(ValueError, match="probability"):
        ScriptedConfig(misapply_prob=2)
    with pytest.raises(ValueError, match="did you mean 'scripted'"):
        make_backend("scriptd")
