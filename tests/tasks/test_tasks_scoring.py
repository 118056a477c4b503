"""Exact scorers: math equivalence, answer extraction per kind, bad input, the task registry."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from personalization_env.tasks import (
    DATASETS,
    answer_sentence,
    boxed_contents,
    extract_answer,
    is_correct,
    load_tasks,
    lookup_task,
    score_reply,
    wrong_answer,
)
from personalization_env.types import Task


def math_task(answer: str) -> Task:
    return Task(task_id="t-0", dataset="test", kind="math", problem="Compute it.", answer=answer)


def mc_task() -> Task:
    choices = ("Sickle cell trait", "Sickle cell disease", "Hemoglobin F", "HbC")
    problem = "What is the cause?\n\n" + "\n".join(f"{l}. {c}" for l, c in zip("ABCD", choices))
    return Task(task_id="mc-0", dataset="test", kind="multiple_choice", problem=problem, answer="B",
                choices=choices, meta={"answer_text": choices[1]})


# ---------------------------------------------------------------------------------------------- math


@pytest.mark.parametrize("gold,pred", [
    ("\\frac{1}{2}", "0.5"), ("\\frac{1}{2}", "1/2"), ("0.5", "\\frac{1}{2}"), ("1/2", "\\dfrac{1}{2}"),
    ("\\dfrac{3}{4}", "\\frac34"), ("\\frac{3}{4}", "\\tfrac{3}{4}"), ("10455", "10455"), ("10455", "10,455"),
    ("8+4\\sqrt3", "4\\sqrt{3} + 8"), ("\\frac{9}{4}, -\\frac{9}{4}", "-\\frac94, \\frac94"),
    ("137 \\frac{1}{2}", "137.5"), ("p+q-r", "q + p - r"), ("2 \\pi + 4", "4+2\\pi"), ("-338016", "-338016"),
])
def test_math_equivalent(gold: str, pred: str) -> None:
    assert is_correct(math_task(gold), pred)


@pytest.mark.parametrize("gold,pred", [
    ("\\frac{1}{2}", "0.6"), ("\\frac{1}{2}", "\\frac{1}{3}"), ("10455", "10456"), ("10455", "1045"),
    ("3.21", "3.2"), ("p+q-r", "p+q+r"), ("\\sqrt{66}", "\\sqrt{67}"), ("8+4\\sqrt3", "8+4\\sqrt2"),
    ("7", "x"), ("7", ""), ("7", None),
])
def test_math_not_equivalent(gold: str, pred: str | None) -> None:
    assert not is_correct(math_task(gold), pred)


def test_math_extraction() -> None:
    t = math_task("10455")
    assert extract_answer(t, "So he has $10200 \\cdot 1.025 = \\boxed{10455}$ dollars.") == "10455"
    assert score_reply(t, "\\boxed{10455}") and score_reply(t, "10455 is \\boxed{10455}.")
    assert extract_answer(t, "First \\boxed{3}, then on reflection \\boxed{\\frac{1}{2}}.") == "\\frac{1}{2}"
    assert extract_answer(t, "The final answer is 10455.") == "10455"
    assert extract_answer(t, "Final answer: **10,455 dollars**") == "10,455"
    assert score_reply(t, "The answer is $10455$.")
    assert score_reply(t, "After checking, the answer is 10455 dollars.")
    assert not score_reply(t, "The answer is 10456.")
    assert extract_answer(t, "I need a little more information first.") is None
    assert extract_answer(t, "unbalanced \\boxed{12") is None
    assert is_correct(t, "\\boxed{10455}") and is_correct(t, "$10455$") and is_correct(t, "10455 dollars")


def test_boxed_contents_balanced_and_nested() -> None:
    assert boxed_contents("\\boxed{\\frac{1}{2}} and \\boxed{ \\left\\{1,2\\right\\} }") == [
        "\\frac{1}{2}", " \\left\\{1,2\\right\\} "]
    assert boxed_contents("\\fbox{x^{2}}") == ["x^{2}"]


def test_math_verify_works_off_the_main_thread() -> None:
    results: list[bool] = []
    worker = threading.Thread(target=lambda: results.append(is_correct(math_task("\\frac{1}{2}"), "0.5")))
    worker.start()
    worker.join(timeout=30)
    assert results == [True]


def test_math_wrong_answer_for_non_numeric_expression() -> None:
    t = math_task("p+q-r")
    w = wrong_answer(t, np.random.default_rng(0))
    assert w and not is_correct(t, w)


# ------------------------------------------------------------------------------------ multiple choice


@pytest.mark.parametrize("reply", [
    "The answer is (B) Sickle cell disease.", "(B)", "B", "B.", "**B**", "I'd go with option B.",
    "The correct answer is B because the smear shows sickled cells.", "Answer: B",
    "Sickle cell disease", "The answer is Sickle cell disease.", "sickle cell disease.",
    "Option A is tempting, but the answer is (B).", "\\boxed{B}",
    "It's clearly sickle cell disease given the electrophoresis.",
])
def test_mc_correct_forms(reply: str) -> None:
    assert score_reply(mc_task(), reply), reply


@pytest.mark.parametrize("reply", [
    "The answer is (A) Sickle cell trait.", "A", "Sickle cell trait", "The answer is HbC.", "option C",
    "The answer is (B). Just kidding, the final answer is (D).", "I don't know yet.",
])
def test_mc_wrong_forms(reply: str) -> None:
    assert not score_reply(mc_task(), reply), reply


def test_mc_article_a_is_not_a_letter() -> None:
    assert extract_answer(mc_task(), "The answer is a disorder of hemoglobin; it is (B).") == "B"


def test_mc_answer_sentence_from_letter_or_text() -> None:
    t = mc_task()
    assert answer_sentence(t, "B") == "The answer is (B) Sickle cell disease."
    assert answer_sentence(t, "Sickle cell disease") == "The answer is (B) Sickle cell disease."
    assert wrong_answer(t, np.random.default_rng(0)) in ("A", "C", "D")


# ------------------------------------------------------------------------------------- logic and code


def test_logic_extraction_and_match() -> None:
    t = Task(task_id="l-0", dataset="test", kind="logic", problem="Who won?", answer="Maya",
             meta={"entities": ["Ava", "Maya", "Liam"]})
    for reply in ("The answer is Maya.", "**Maya**", "maya", "The answer is: \"Maya\"", "Maya won the race.",
                  "Ava was second, so the answer is Maya."):
        assert score_reply(t, reply), reply
    for reply in ("The answer is Ava.", "Liam", "It could be Ava or Maya.", "I am not sure."):
        assert not score_reply(t, reply), reply
    assert wrong_answer(t, np.random.default_rng(0)) in ("Ava", "Liam")


def test_code_extraction_and_literal_comparison() -> None:
    t = Task(task_id="c-0", dataset="test", kind="code", problem="What does f return?", answer="'cat fast'")
    for reply in ("The function returns `'cat fast'`.", 'It returns `"cat fast"`.', "Output is 'cat fast'",
                  "\\boxed{'cat fast'}", "'cat fast'"):
        assert score_reply(t, reply), reply
    assert not score_reply(t, "The function returns `'fast cat'`.")
    ints = Task(task_id="c-1", dataset="test", kind="code", problem="What does g return?", answer="[1, 2]")
    assert is_correct(ints, "[1,2]") and not is_correct(ints, "[1.0, 2]") and not is_correct(ints, "(1, 2)")
    d = Task(task_id="c-2", dataset="test", kind="code", problem="What does h return?", answer="{'a': 1, 'b': 2}")
    assert is_correct(d, "{'b': 2, 'a': 1}") and not is_correct(d, "{'a': 1, 'b': True}")
    assert not is_correct(Task(task_id="c-3", dataset="test", kind="code", problem="p", answer="1"), "True")


# ------------------------------------------------------------------------------------------ bad input


def test_unknown_dataset_suggests_a_name() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'mathh'; did you mean 'math_hard'\?") as exc:
        load_tasks("mathh")
    assert "\n" not in str(exc.value) and "gen_math" in str(exc.value)
    with pytest.raises(ValueError, match="did you mean 'gen_logic'"):
        load_tasks("gen_logik")


def test_missing_data_dir_names_file_and_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MSC_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError) as exc:
        load_tasks("mmlu")
    msg = str(exc.value)
    assert "\n" not in msg and "mmlu_test20.json" in msg and "--data-dir" in msg and "MSC_DATA_DIR" in msg
    with pytest.raises(FileNotFoundError) as exc:
        load_tasks("medqa", data_dir=tmp_path / "nowhere")
    msg = str(exc.value)
    assert "\n" not in msg and str(tmp_path / "nowhere" / "medqa_test20.json") in msg and "--data-dir" in msg


def test_malformed_cache_and_bad_n(tmp_path: Path) -> None:
    (tmp_path / "math_500_test20.json").write_text('[{"problem": "p", "solution": "no box"}]', encoding="utf-8")
    with pytest.raises(ValueError, match=r"item 0: solution has no \\boxed"):
        load_tasks("math_500", data_dir=tmp_path)
    (tmp_path / "mmlu_test20.json").write_text("[{", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_tasks("mmlu", data_dir=tmp_path)
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        load_tasks("gen_math", n=-1)
    assert load_tasks("gen_math", n=0) == []


def test_datasets_listed() -> None:
    assert set(DATASETS) == {"gen_math", "gen_logic", "gen_mc", "gen_code", "math_hard", "math_500", "logiqa",
                             "mmlu", "medqa"}


# ------------------------------------------------------------------------------------------- registry


def test_lookup_task_by_problem_text() -> None:
    tasks = load_tasks("gen_mc", n=5, seed=11)
    t = tasks[2]
    assert lookup_task(t.problem) is t
    assert lookup_task("  " + "\n".join(t.problem.split()) + "  ") is t
    assert lookup_task("Hi! Can you help me with this?\n\n" + t.problem + "\n\nThanks.") is t
    assert lookup_task("a problem nobody has loaded") is None
