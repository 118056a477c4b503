from __future__ import annotations

import json
from pathlib import Path

import pytest

from personalization_env.preferences import CHECKERS, check_preference, load_catalogue, run_check
from personalization_env.preferences import text as T
from personalization_env.types import CheckSpec, Preference, ReplyContext

EXAMPLES = [json.loads(line) for line in
            (Path(__file__).parent / "data" / "checker_examples.jsonl").read_text("utf-8").splitlines() if line.strip()]


def _ctx(e: dict) -> ReplyContext:
    return ReplyContext(task_kind=e["ctx"]["task_kind"], situations=frozenset(e["ctx"]["situations"]))


@pytest.mark.parametrize("e", EXAMPLES, ids=[f"{e['type']}-{i}-{e['complies']}" for i, e in enumerate(EXAMPLES)])
def test_hand_written_examples(e: dict) -> None:
    t = load_catalogue()[e["type"]]
    assert check_preference(Preference(t, t.condition), e["reply"], _ctx(e)) is e["complies"]


def test_every_checkable_type_has_positive_and_negative_examples() -> None:
    seen: dict[str, set[bool]] = {}
    for e in EXAMPLES:
        seen.setdefault(e["type"], set()).add(e["complies"])
    missing = [tid for tid, t in load_catalogue().items() if t.check and seen.get(tid) != {True, False}]
    assert not missing


def test_unknown_checker_suggests() -> None:
    with pytest.raises(KeyError, match="did you mean 'has_list'"):
        run_check(CheckSpec("has_lst"), "x", ReplyContext())


def test_sentence_rules() -> None:
    reply = ("## Plan\n\nWe use e.g. the 3.5 rule. It works!\n\n- item one\n- item two. And more.\n\n"
             "```python\nx = 1. \ny = 2\n```\n\n| a | b |\n|---|---|\n\n$$ x = 1 $$\n\nPremises:")
    assert T.count_sentences(reply) == 5
    assert len(T.list_items(reply)) == 2 and len(T.headings(reply)) == 1
    assert T.code_blocks(reply) == [("python", "x = 1. \ny = 2")]


def test_checkers_handle_unicode_and_curly_quotes() -> None:
    ctx = ReplyContext(situations=frozenset({"final_answer"}))
    assert CHECKERS["has_courtesy"]("Thanks — I’m glad that helped! 😊", ctx)
    assert not CHECKERS["no_confirmation_question"]("Does that make sense so far? 🤔", ctx)
    assert CHECKERS["has_confidence"]("The answer is 12 — I’m 85 % confident.", ctx)
    assert not CHECKERS["no_emoji"]("Done ✅", ctx)


def test_code_checkers_pass_without_code() -> None:
    ctx = ReplyContext(task_kind="code", situations=frozenset({"code"}))
    for name in ("code_type_hints", "code_docstring", "code_usage_example", "code_main_guard", "code_first",
                 "single_code_block", "code_language_tags"):
        assert CHECKERS[name]("No code in this reply.", ctx), name
