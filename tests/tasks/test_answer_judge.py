from __future__ import annotations

from dataclasses import replace

import pytest

from personalization_env.llm.scripted import ScriptedBackend
from personalization_env.tasks import load_tasks
from personalization_env.tasks.answer_judge import AnswerJudge, grade_request


@pytest.fixture(scope="module")
def task():
    return load_tasks("gen_math")[0]


def test_exact_tasks_never_call_the_judge(task):
    j = AnswerJudge("scripted")
    assert j.is_correct(task, task.answer) and not j.is_correct(task, "not a number")
    assert j.calls == 0 and not j.is_correct(task, None)


def test_free_form_tasks_are_graded_by_the_model(task):
    free = replace(task, meta={**task.meta, "scoring": "judge"})
    j = AnswerJudge(ScriptedBackend({"judge_error": 0.0}))
    assert j.is_correct(free, task.answer) is True
    assert j.is_correct(free, "certainly not the answer") is False
    assert j.calls == 2 and j.backend.usage["grade"]["calls"] == 2


def test_grade_request_carries_problem_reference_and_answer(task):
    r = grade_request(task, "42")
    body = r.messages[-1].content
    assert r.purpose == "grade" and task.problem in body and task.answer in body and "<<<ANSWER\n42\n" in body


def test_env_uses_the_answer_judge_for_free_form_tasks():
    from personalization_env.env import MultiSessionCollabEnv

    from agents import make_agent

    env = MultiSessionCollabEnv(n_users=1, answer_judge="scripted")
    assert isinstance(env.answer_judge, AnswerJudge)
    env.tasks = [replace(t, meta={**t.meta, "scoring": "judge"}) for t in env.tasks]
    agent = make_agent("vanilla")
    obs, _ = env.reset(seed=0)
    while True:
        obs, r, term, trunc, info = env.step(agent.act(obs))
        if term or trunc:
            break
    assert env.answer_judge.calls == 1 and info["metrics"]["task_success"] in (0.0, 1.0)
