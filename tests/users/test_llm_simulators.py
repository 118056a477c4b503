"""The llm and hybrid user simulators, on fake and scripted backends."""

from __future__ import annotations

import json

import numpy as np
import pytest

from personalization_env.llm.base import ChatBackend, ChatResponse
from personalization_env.llm.structured import StructuredOutputError
from personalization_env.profiles import load_profiles
from personalization_env.tasks import load_tasks
from personalization_env.users import make_user_simulator
from personalization_env.users.llm import HybridUserSimulator, LLMUserSimulator
from personalization_env.users.rule import RuleUserSimulator


class Fake(ChatBackend):
    """Answers from a queue of texts and records the requests."""

    name = "fake"

    def __init__(self, texts):
        super().__init__()
        self.texts, self.requests = list(texts), []

    def _generate(self, requests):
        self.requests += requests
        return [ChatResponse(self.texts.pop(0)) for _ in requests]


def turn(message="hi", label="neutral", enforced=(), draft=None, done=False):
    return json.dumps({"message": message, "label": label, "enforced_preferences": list(enforced),
                       "draft_answer": draft, "done": done})


@pytest.fixture(scope="module")
def world():
    return load_profiles("msc")[0], load_tasks("gen_math")[0]


def test_specs_build_the_simulators():
    assert isinstance(make_user_simulator("llm:scripted"), LLMUserSimulator)
    assert isinstance(make_user_simulator("hybrid:scripted"), HybridUserSimulator)
    with pytest.raises(ValueError, match="unknown user simulator 'lm:x'"):
        make_user_simulator("lm:x")


def test_done_flag_ends_the_session_not_a_substring(world):
    profile, task = world
    pid = profile.preferences[0].id
    fake = Fake([turn("Please help: " + task.problem),
                 turn("TERMINATE? no, keep going", "neg_confusion"),
                 turn("Again: " + pid, "neutral", enforced=[pid, "invented_id"]),
                 turn("Thanks!", "pos_praise", draft="42", done=True)])
    sim = LLMUserSimulator(fake)
    s, first = sim.start(profile, task, np.random.default_rng(0))
    assert not first.done and first.enforced_ids == ()
    t1 = s.respond("Some reply. TERMINATE")
    assert not t1.done
    t2 = s.respond("Another reply")
    assert t2.enforced_ids == (pid,) and t2.label == "neg_constraint_restate"  # ids are the evidence
    assert sim.stats.counts["unknown_ids"] == 1
    t3 = s.respond("The answer is 42.")
    assert t3.done and t3.outcome == "satisfied" and t3.draft_answer == "42"
    # the draft-answer state is fed back explicitly each turn, with the reply quoted
    last = fake.requests[-1].messages[-1].content
    assert "The answer is 42." in last and "Your draft answer so far: null" in last
    assert fake.requests[-1].response_format is not None and fake.requests[-1].purpose == "user"
    with pytest.raises(RuntimeError, match="ended"):
        s.respond("more")


def test_malformed_output_is_repaired_then_fails_clearly(world):
    profile, task = world
    fake = Fake(["not json at all", turn("Help me: " + task.problem)])
    sim = LLMUserSimulator(fake, max_repairs=1)
    _, first = sim.start(profile, task, np.random.default_rng(0))
    assert first.message.startswith("Help me") and fake.stats["repairs"] == 1
    bad = Fake(["{}", '{"message": 3}'])
    with pytest.raises(StructuredOutputError, match="missing required key"):
        LLMUserSimulator(bad, max_repairs=1).start(profile, task, np.random.default_rng(0))


def test_scripted_llm_user_agrees_with_the_checkers(world):
    profile, task = world
    sim = LLMUserSimulator("scripted")
    s, _ = sim.start(profile, task, np.random.default_rng(3))
    t = s.respond("Here is a long chatty answer with no structure at all and no answer yet")
    assert t.verdicts  # the checkers ran on the reply
    violated = {k for k, ok in t.verdicts.items() if not ok}
    assert set(t.enforced_ids) <= violated
    assert s.sim_checker["turns"] == 1 and s.sim_checker["agree"] == 1


def test_hybrid_decisions_are_the_rule_users(world):
    profile, task = world
    reply = "Sure. The answer is 7."
    rule_s, rule_first = RuleUserSimulator().start(profile, task, np.random.default_rng(5))
    rule_t = rule_s.respond(reply)
    fake = Fake([json.dumps({"message": "hey, can you help with this?"}),
                 json.dumps({"message": "in my words: same request"})])
    hs, first = HybridUserSimulator(fake).start(profile, task, np.random.default_rng(5))
    t = hs.respond(reply)
    assert first.message == "hey, can you help with this?" and t.message == "in my words: same request"
    assert (t.label, t.enforced_ids, t.done, t.draft_answer) == \
        (rule_t.label, rule_t.enforced_ids, rule_t.done, rule_t.draft_answer)
    assert rule_first.message in fake.requests[0].messages[-1].content  # the model rewrites the rule message
