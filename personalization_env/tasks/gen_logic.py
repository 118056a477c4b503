"""``gen_logic``: small deduction puzzles (race order, seating, who-owns/ordered-what) with 3-4 people.

A hidden arrangement is drawn; true clues are added until brute force over all permutations leaves
exactly one arrangement, then redundant clues are pruned. The answer (a person's name) is therefore
unique by construction. ``meta`` records the people (``entities``), the slots, the clues as
``(type, x, y, slot, slot2)`` tuples (``clues``; see :func:`holds`), the full ``solution`` and the
brute-force count of consistent arrangements (``solutions``, always 1).
Wording lives in ``tasks/data/logic_templates.json``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from personalization_env.tasks._resources import load_data
from personalization_env.types import Task

Clue = tuple[str, str, str | None, int | None, int | None]  # (type, x, y, slot, slot2)


def holds(clue: Clue, arr: tuple[str, ...]) -> bool:
    """Whether ``clue`` is true of arrangement ``arr`` (``arr[slot]`` is the person in that slot)."""
    kind, x, y, k, k2 = clue
    i = arr.index(x)
    if kind == "at_pos":
        return i == k
    if kind == "not_pos":
        return i != k
    if kind == "either":
        return i in (k, k2)
    if kind == "not_end":
        return 0 < i < len(arr) - 1
    j = arr.index(y)  # type: ignore[arg-type]
    if kind == "before":
        return i < j
    if kind == "adj_before":
        return j == i + 1
    if kind == "next_to":
        return abs(i - j) == 1
    raise ValueError(f"unknown clue type {kind!r}")


def solutions(names: list[str], clues: list[Clue]) -> list[tuple[str, ...]]:
    """All arrangements of ``names`` consistent with every clue (brute force over permutations)."""
    return [p for p in itertools.permutations(names) if all(holds(c, p) for c in clues)]


def _true_clues(truth: tuple[str, ...], kinds: set[str]) -> list[Clue]:
    n = len(truth)
    out: list[Clue] = []
    for k, x in enumerate(truth):
        if "at_pos" in kinds:
            out.append(("at_pos", x, None, k, None))
        for k2 in range(n):
            if k2 != k and "not_pos" in kinds:
                out.append(("not_pos", x, None, k2, None))
            if k2 != k and "either" in kinds:
                a, b = sorted((k, k2))
                out.append(("either", x, None, a, b))
        if "not_end" in kinds and 0 < k < n - 1:
            out.append(("not_end", x, None, None, None))
    for (i, x), (j, y) in itertools.permutations(enumerate(truth), 2):
        if "before" in kinds and i < j:
            out.append(("before", x, y, None, None))
        if "adj_before" in kinds and j == i + 1:
            out.append(("adj_before", x, y, None, None))
        if "next_to" in kinds and abs(i - j) == 1 and i < j:
            out.append(("next_to", x, y, None, None))
    return out


def _clue_text(rng: np.random.Generator, tpl: dict[str, Any], clue: Clue, slots: list[str]) -> str:
    kind, x, y, k, k2 = clue
    options = tpl["clues"][kind]
    text: str = options[int(rng.integers(len(options)))]
    return text.format(x=x, y=y, slot=slots[k] if k is not None else "", slot2=slots[k2] if k2 is not None else "")


def _list_words(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else items[0]


def make_task(rng: np.random.Generator, index: int, dataset: str = "gen_logic") -> Task:
    """Build one ``gen_logic`` task with a verified unique answer.

    Args:
        rng: random source for this task.
        index: position in the dataset (used in the task id).
        dataset: dataset name recorded on the task.

    Returns:
        A logic task whose answer is a person's name.
    """
    templates: dict[str, Any] = load_data("logic_templates.json")
    words: dict[str, Any] = load_data("words.json")
    kinds_of_puzzle = sorted(templates)
    ptype = kinds_of_puzzle[int(rng.integers(len(kinds_of_puzzle)))]
    tpl = templates[ptype]
    n = int(rng.integers(3, 5))
    names = [words["names"][int(i)] for i in rng.choice(len(words["names"]), size=n, replace=False)]
    if tpl["positional"]:
        slots = list(tpl["slot_names"][:n])
    else:
        pool = words[tpl["slot_source"]]
        slots = [pool[int(i)] for i in rng.choice(len(pool), size=n, replace=False)]
    truth = tuple(names[int(i)] for i in rng.permutation(n))  # truth[slot] = person
    asked = int(rng.integers(n))
    answer = truth[asked]

    pool_clues = [c for c in _true_clues(truth, set(tpl["clues"]))
                  if not (c[0] == "at_pos" and (c[3] == asked or c[1] == answer))]
    order = rng.permutation(len(pool_clues))
    pool_clues = [pool_clues[int(i)] for i in order]
    pool_clues.sort(key=lambda c: c[0] == "at_pos")  # prefer relational clues; stable keeps the shuffle
    chosen: list[Clue] = []
    count = len(solutions(names, chosen))
    for clue in pool_clues:
        new = len(solutions(names, chosen + [clue]))
        if new < count:
            chosen.append(clue)
            count = new
        if count == 1:
            break
    if count != 1:  # cannot happen: at_pos clues for every other slot pin the arrangement down
        raise RuntimeError(f"logic puzzle {index} is not uniquely solvable")
    for i in rng.permutation(len(chosen)):  # prune clues the others make redundant
        clue = chosen[int(i)] if int(i) < len(chosen) else None
        trial = [c for c in chosen if c is not clue]
        if clue is not None and len(solutions(names, trial)) == 1:
            chosen = trial
    sols = solutions(names, chosen)
    assert len(sols) == 1 and sols[0] == truth

    clue_texts = [_clue_text(rng, tpl, c, slots) for c in chosen]
    fill = dict(names_list=_list_words(names), n=n, slots_list=_list_words([f"a {s}" for s in slots]),
                slot_name=slots[asked])
    problem = (tpl["intro"].format(**fill) + " " + tpl["clue_header"] + "\n"
               + "\n".join(f"- {t}" for t in clue_texts) + "\n" + tpl["question"].format(**fill))
    if tpl["positional"]:
        arrangement = tpl["arrangement"].format(order=", ".join(truth))
    else:
        arrangement = _list_words([tpl["pair"].format(x=truth[k], slot=slots[k]) for k in range(n)])
    steps = _steps(names, chosen, clue_texts, tpl["count_noun"], arrangement, answer)
    meta = {"puzzle": ptype, "entities": list(names), "slots": slots, "asked_slot": slots[asked],
            "solution": list(truth), "clues": [tuple(c) for c in chosen], "n_clues": len(chosen),
            "solutions": len(sols),
            "difficulty": "easy" if n == 3 else ("medium" if len(chosen) <= 4 else "hard")}
    return Task(task_id=f"{dataset}-{index:04d}", dataset=dataset, kind="logic", problem=problem, answer=answer,
                steps=steps, meta=meta)


def _steps(names: list[str], clues: list[Clue], texts: list[str], noun: str, arrangement: str,
           answer: str) -> tuple[str, ...]:
    n_total = len(solutions(names, []))
    steps = [f"Without clues there are {n_total} possible {noun}."]
    applied: list[Clue] = []
    for i, (clue, text) in enumerate(zip(clues, texts)):
        applied.append(clue)
        if i == 3 and len(clues) > 4:
            applied = list(clues)
            steps.append("The remaining clues rule out every other possibility.")
            break
        left = len(solutions(names, applied))
        steps.append(f"The clue \"{text.rstrip('.')}\" leaves {left} of them.")
    steps.append(f"Only one possibility remains: {arrangement}, so the answer is {answer}.")
    return tuple(steps)
