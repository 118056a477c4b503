"""MultiSessionCollab cache loader and scorers, against the real reference files beside the repo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from personalization_env.tasks import answer_sentence, is_correct, load_tasks, lookup_task, score_reply, wrong_answer

MSC_DIR = Path(__file__).resolve().parents[2].parent / "shared/data/msc"
NAMES = ("math_hard", "math_500", "logiqa", "mmlu", "medqa")


def _require_data() -> None:
    if not MSC_DIR.is_dir():
        pytest.skip(f"MultiSessionCollab reference data not found at {MSC_DIR} (only present beside the dev checkout)")


def _files() -> list[Path]:
    return sorted(MSC_DIR.glob("*_test20.json")) if MSC_DIR.is_dir() else []


def test_every_reference_file_is_known() -> None:
    _require_data()
    found = {p.name[: -len("_test20.json")] for p in _files()}
    assert found == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_all_items_load_and_gold_scores_correct(name: str) -> None:
    _require_data()
    raw = json.loads((MSC_DIR / f"{name}_test20.json").read_text(encoding="utf-8"))
    tasks = load_tasks(name, data_dir=MSC_DIR)
    assert len(tasks) == len(raw) == 20
    assert len({t.task_id for t in tasks}) == 20
    rng = np.random.default_rng(0)
    for task, item in zip(tasks, raw):
        assert task.dataset == name and task.steps
        # the original gold solution text scores correct
        assert score_reply(task, item["solution"]), (task.task_id, item["solution"][-80:])
        assert score_reply(task, answer_sentence(task, task.answer)), task.task_id
        wrong = wrong_answer(task, rng)
        assert not is_correct(task, wrong), (task.task_id, wrong)
        assert not score_reply(task, answer_sentence(task, wrong)), (task.task_id, wrong)


@pytest.mark.parametrize("name", ("math_hard", "math_500"))
def test_math_normalisation(name: str) -> None:
    _require_data()
    for task in load_tasks(name, data_dir=MSC_DIR):
        assert task.kind == "math" and not task.choices
        assert "\\boxed" not in task.answer and task.answer
        assert 1 <= len(task.steps) <= 5


def test_math_answers_use_balanced_braces() -> None:
    _require_data()
    answers = {t.answer for t in load_tasks("math_hard", data_dir=MSC_DIR)}
    assert "\\frac{21}{8}" in answers and "8+4\\sqrt3" in answers and "\\frac{9}{4}, -\\frac{9}{4}" in answers


@pytest.mark.parametrize("name", ("logiqa", "mmlu", "medqa"))
def test_multiple_choice_normalisation_and_option_text(name: str) -> None:
    _require_data()
    rng = np.random.default_rng(1)
    for task in load_tasks(name, data_dir=MSC_DIR):
        assert task.kind == "multiple_choice"
        assert len(task.choices) == 4 and all(task.choices)
        assert task.answer in "ABCD" and len(task.answer) == 1
        gold_text = task.meta["answer_text"]
        assert task.choices["ABCD".index(task.answer)] == gold_text
        # the bare option text, a sentence naming it, and its text in other case all score correct
        assert score_reply(task, gold_text)
        assert score_reply(task, f"The answer is {gold_text}")
        assert is_correct(task, gold_text.upper() + ".")
        # another option's text is wrong (unless the file lists the same text twice)
        other = wrong_answer(task, rng)
        other_text = task.choices["ABCD".index(other)]
        if other_text.strip().lower() != gold_text.strip().lower():
            assert not score_reply(task, other_text)
            assert not score_reply(task, f"The answer is {other_text}")
            assert not is_correct(task, other_text)


def test_mmlu_problem_lists_letters() -> None:
    _require_data()
    task = load_tasks("mmlu", data_dir=MSC_DIR)[0]
    assert "\nA. 6.0 e\nB. 6.8 eV" in task.problem and "0. 6.0 e" in task.meta["source_problem"]
    assert task.answer == "A"


def test_logiqa_out_of_order_options() -> None:
    _require_data()
    task = load_tasks("logiqa", data_dir=MSC_DIR)[3]  # lists (A) (C) (B) (D) in the problem
    assert task.answer == "B" and task.choices[1] == "F and G" and task.choices[2] == "E and M"


def test_n_takes_first_items_and_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    _require_data()
    monkeypatch.setenv("MSC_DATA_DIR", str(MSC_DIR))
    first = load_tasks("medqa", n=3)
    assert [t.task_id for t in first] == ["medqa-0000", "medqa-0001", "medqa-0002"]
    assert first[0].answer == "B" and first[0].meta["answer_text"] == "Sickle cell disease"


def test_any_prefixed_json_file_is_accepted(tmp_path: Path) -> None:
    _require_data()
    (tmp_path / "mmlu_custom.json").write_text((MSC_DIR / "mmlu_test20.json").read_text(encoding="utf-8"),
                                              encoding="utf-8")
    assert len(load_tasks("mmlu", n=5, data_dir=tmp_path)) == 5


def test_lookup_finds_loaded_cache_task() -> None:
    _require_data()
    task = load_tasks("math_500", data_dir=MSC_DIR)[4]
    assert lookup_task(task.problem) is task
    assert lookup_task("  " + task.problem.replace(" ", "\n  ") + "\n") is task
