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


def test_follow_probability_curve_matches_ifscale_fit():
    c = ScriptedConfig()
    assert c.follow_prob(1) == pytest.approx(0.978, abs=0.005)
    assert 0.90 < c.follow_prob(50) < 0.93
    assert c.follow_prob(500) == pytest.approx(0.68, abs=0.01)


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
