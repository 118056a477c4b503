"""``gen_mc``: four-option multiple-choice questions built from computed facts.

Question kinds: unit conversion, which number is prime, a product, weekday arithmetic, date
arithmetic, least common multiple, largest fraction. Every option is computed, the three distractors
are distinct from the answer (and, for "which is prime", provably composite), and the options are
shuffled with the task's random source. Wording lives in ``tasks/data/mc_templates.json``.
"""

from __future__ import annotations

import datetime as dt
import math
from fractions import Fraction
from typing import Any, Callable

import numpy as np

from personalization_env.tasks._resources import load_data
from personalization_env.types import Task

LETTERS = "ABCD"

Fields = dict[str, Any]
Drawn = tuple[Fields, str, list[str]]  # (template fields, correct option text, three distractor texts)
Sampler = Callable[[np.random.Generator, Fields, Fields], Drawn]


def _ri(rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(rng.integers(lo, hi + 1))


def is_prime(n: int) -> bool:
    """Trial-division primality test for small non-negative integers."""
    if n < 2:
        return False
    return all(n % d for d in range(2, math.isqrt(n) + 1))


def _smallest_factor(n: int) -> int:
    return next(d for d in range(2, n + 1) if n % d == 0)


def _pick_distinct(rng: np.random.Generator, correct: Any, pool: list[Any], k: int = 3) -> list[Any]:
    seen = {correct}
    uniq = []
    for x in pool:
        if x not in seen:
            seen.add(x)
            uniq.append(x)
    if len(uniq) < k:
        raise RuntimeError(f"not enough distractors for {correct!r}: {pool!r}")
    idx = sorted(int(i) for i in rng.choice(len(uniq), size=k, replace=False))
    return [uniq[i] for i in idx]


def _unit_conversion(rng: np.random.Generator, tpl: Fields, w: Fields) -> Drawn:
    conv = tpl["conversions"][int(rng.integers(len(tpl["conversions"])))]
    f = int(conv["factor"])
    x = _ri(rng, 2, 25)
    ans = x * f
    pool = [ans * 10, ans + f, ans - f, x + f, ans * 2, ans + x]
    if ans % 10 == 0:
        pool.append(ans // 10)
    distractors = _pick_distinct(rng, ans, [p for p in pool if p > 0])
    fields = dict(x=x, f=f, from_unit=conv["from"], from_singular=conv["from_singular"], to_unit=conv["to"])
    return fields, str(ans), [str(d) for d in distractors]


def _prime(rng: np.random.Generator, tpl: Fields, w: Fields) -> Drawn:
    p = _ri(rng, 20, 200)
    while not is_prime(p):
        p += 1
    lo, hi = max(9, p - 40), p + 40
    composites = [c for c in range(lo, hi) if not is_prime(c) and c % 2 and c % 5]
    distractors = _pick_distinct(rng, p, composites)
    reasons = " ".join(f"{c} = {_smallest_factor(c)} \u00d7 {c // _smallest_factor(c)}." for c in distractors)
    return dict(composite_reasons=reasons), str(p), [str(c) for c in distractors]


def _multiply(rng: np.random.Generator, tpl: Fields, w: Fields) -> Drawn:
    a, b = _ri(rng, 12, 99), _ri(rng, 11, 19)
    ans = a * b
    distractors = _pick_distinct(rng, ans, [ans + 10, ans - 10, ans + a, ans - a, ans + 1, ans - b, a * (b + 10)])
    fields = dict(a=a, b=b, b_tens=b // 10 * 10, b_ones=b % 10, p1=a * (b // 10 * 10), p2=a * (b % 10))
    return fields, str(ans), [str(d) for d in distractors]


def _weekday(rng: np.random.Generator, tpl: Fields, w: Fields) -> Drawn:
    days = w["weekdays"]
    d, k = _ri(rng, 0, 6), _ri(rng, 8, 100)
    ans = days[(d + k) % 7]
    distractors = _pick_distinct(rng, ans, [days[(d + k + s) % 7] for s in (1, 2, 3, 4, 5, 6)])
    return dict(day=days[d], k=k, r=k % 7), ans, distractors


def _fmt_date(d: dt.date, months: list[str]) -> str:
    return f"{months[d.month - 1]} {d.day}, {d.year}"


def _date_add(rng: np.random.Generator, tpl: Fields, w: Fields) -> Drawn:
    months = w["months"]
    start = dt.date(_ri(rng, 2021, 2026), 1, 1) + dt.timedelta(days=_ri(rng, 0, 364))
    k = _ri(rng, 10, 75)
    end = start + dt.timedelta(days=k)
    pool = [end + dt.timedelta(days=s) for s in (-2, -1, 1, 2, 7, -7)]
    distractors = _pick_distinct(rng, end, pool)
    if end.month == start.month:
        note = f"The count stays within {months[start.month - 1]}."
    else:
        left = (dt.date(start.year + (start.month == 12), start.month % 12 + 1, 1) - start).days
        note = f"It takes {left} days to reach the first of the next month, leaving {k - left} more days to count."
    fields = dict(start=_fmt_date(start, months), k=k, month_note=note)
    return fields, _fmt_date(end, months), [_fmt_date(x, months) for x in distractors]


def _lcm(rng: np.random.Generator, tpl: Fields, w: Fields) -> Drawn:
    while True:
        a, b = _ri(rng, 4, 36), _ri(rng, 4, 36)
        g = math.gcd(a, b)
        if a != b and g > 1 and g not in (a, b):
            break
    ans = a * b // g
    distractors = _pick_distinct(rng, ans, [a * b, ans * 2, ans + g, ans - g, g * 2])
    return dict(a=a, b=b, g=g, ab=a * b), str(ans), [str(d) for d in distractors]


def _largest_fraction(rng: np.random.Generator, tpl: Fields, w: Fields) -> Drawn:
    fracs: list[Fraction] = []
    texts: list[str] = []
    while len(fracs) < 4:
        q = _ri(rng, 3, 12)
        p = _ri(rng, 1, q - 1)
        f = Fraction(p, q)
        if f in fracs or math.gcd(p, q) != 1:
            continue
        fracs.append(f)
        texts.append(f"{p}/{q}")
    best = max(range(4), key=lambda i: fracs[i])
    decimals = ", ".join(f"{t} is about {float(f):.3f}" for t, f in zip(texts, fracs))
    decimals = decimals[0].upper() + decimals[1:]
    others = [t for i, t in enumerate(texts) if i != best]
    return dict(decimals=decimals), texts[best], others


SAMPLERS: dict[str, Sampler] = {
    "unit_conversion": _unit_conversion,
    "prime": _prime,
    "multiply": _multiply,
    "weekday": _weekday,
    "date_add": _date_add,
    "lcm": _lcm,
    "largest_fraction": _largest_fraction,
}


def make_task(rng: np.random.Generator, index: int, dataset: str = "gen_mc") -> Task:
    """Build one ``gen_mc`` task.

    Args:
        rng: random source for this task.
        index: position in the dataset (used in the task id).
        dataset: dataset name recorded on the task.

    Returns:
        A multiple-choice task whose ``answer`` is the correct letter and ``choices`` the four option texts.
    """
    templates: dict[str, Any] = load_data("mc_templates.json")
    words: dict[str, Any] = load_data("words.json")
    names = sorted(SAMPLERS)
    qtype = names[int(rng.integers(len(names)))]
    tpl = templates[qtype]
    fields, correct, distractors = SAMPLERS[qtype](rng, tpl, words)
    options = [correct] + list(distractors)
    order = [int(i) for i in rng.permutation(4)]
    choices = [options[i] for i in order]
    letter = LETTERS[order.index(0)]
    fields = dict(fields, answer_text=correct, letter=letter)
    question = tpl["question"].format(**fields)
    problem = question + "\n\n" + "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
    steps = tuple(s.format(**fields) for s in tpl["steps"])
    meta = {"question_type": qtype, "answer_text": correct, "difficulty": "easy" if len(steps) <= 3 else "medium"}
    return Task(task_id=f"{dataset}-{index:04d}", dataset=dataset, kind="multiple_choice", problem=problem,
                answer=letter, choices=tuple(choices), steps=steps, meta=meta)
