"""``gen_math``: seeded multi-step arithmetic word problems with exact answers.

Templates (text and solution steps) live in ``tasks/data/math_templates.json``; this module draws the
numbers for each template so that the answer is an integer or a simple fraction by construction.
Fraction answers are LaTeX (``\\frac{12}{7}``) and also given as ``meta["answer_plain"]`` (``12/7``).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Callable

import numpy as np

from personalization_env.tasks._resources import load_data
from personalization_env.types import Task

Sampler = Callable[[np.random.Generator, dict[str, Any]], dict[str, Any]]


def _ri(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi]."""
    return int(rng.integers(lo, hi + 1))


def _pick(rng: np.random.Generator, seq: list[Any]) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _two_names(rng: np.random.Generator, words: dict[str, Any]) -> tuple[str, str]:
    i, j = rng.choice(len(words["names"]), size=2, replace=False)
    return words["names"][int(i)], words["names"][int(j)]


def _frac_latex(f: Fraction) -> tuple[str, str]:
    if f.denominator == 1:
        return str(f.numerator), str(f.numerator)
    return f"\\frac{{{f.numerator}}}{{{f.denominator}}}", f"{f.numerator}/{f.denominator}"


def _shopping_change(rng: np.random.Generator, w: dict[str, Any]) -> dict[str, Any]:
    i1, i2 = (int(x) for x in rng.choice(len(w["shop_items"]), size=2, replace=False))
    it1, it2 = w["shop_items"][i1], w["shop_items"][i2]
    a, b = _ri(rng, 2, 6), _ri(rng, 2, 5)
    p, q = _ri(rng, *it1["price"]), _ri(rng, *it2["price"])
    c1, c2 = a * p, b * q
    total = c1 + c2
    bill = next(x for x in (20, 50, 100, 200) if x > total)
    return dict(name=_pick(rng, w["names"]), a=a, b=b, p=p, q=q, item1_pl=it1["plural"], item2_pl=it2["plural"],
                c1=c1, c2=c2, total=total, bill=bill, answer=bill - total)


def _two_leg_distance(rng: np.random.Generator, w: dict[str, Any]) -> dict[str, Any]:
    v1, v2 = _ri(rng, 4, 24) * 5, _ri(rng, 4, 24) * 5
    t1, t2 = _ri(rng, 1, 5), _ri(rng, 1, 4)
    return dict(vehicle=_pick(rng, w["vehicles"]), v1=v1, v2=v2, t1=t1, t2=t2, d1=v1 * t1, d2=v2 * t2,
                answer=v1 * t1 + v2 * t2)


def _ages_sum(rng: np.random.Generator, w: dict[str, Any]) -> dict[str, Any]:
    name, name2 = _two_names(rng, w)
    k, child, y = _ri(rng, 2, 5), _ri(rng, 3, 14), _ri(rng, 2, 10)
    S = k * child + child + 2 * y
    return dict(name=name, name2=name2, k=k, y=y, S=S, twoy=2 * y, k1=k + 1, rest=S - 2 * y, child=child,
                answer=k * child)


def _discount_coupon(rng: np.random.Generator, w: dict[str, Any]) -> dict[str, Any]:
    d = int(_pick(rng, [10, 20, 25, 40, 50]))
    P = _ri(rng, 2, 15) * 20
    off = P * d // 100
    mid = P - off
    c = _ri(rng, 1, max(1, min(15, mid // 3)))
    return dict(item=_pick(rng, w["discount_items"]), P=P, d=d, off=off,
                mid=mid, c=c, name=_pick(rng, w["names"]), answer=mid - c)


def _lawn_area(rng: np.random.Generator, w: dict[str, Any]) -> dict[str, Any]:
    L, W = _ri(rng, 8, 30), _ri(rng, 6, 20)
    s = _ri(rng, 2, min(L, W) - 2)
    return dict(L=L, W=W, s=s, garden=L * W, patio=s * s, answer=L * W - s * s)


def _fence_cost(rng: np.random.Generator, w: dict[str, Any]) -> dict[str, Any]:
    L, W, c = _ri(rng, 10, 60), _ri(rng, 5, 40), _ri(rng, 3, 15)
    perim = 2 * (L + W)
    return dict(L=L, W=W, c=c, perim=perim, answer=perim * c)


def _pipes_together(rng: np.random.Generator, w: dict[str, Any]) -> dict[str, Any]:
    a = _ri(rng, 2, 9)
    b = _ri(rng, 2, 12)
    while b == a:
        b = _ri(rng, 2, 12)
    rate = Fraction(1, a) + Fraction(1, b)
    time = 1 / rate
    latex, plain = _frac_latex(time)
    return dict(container=_pick(rng, w["containers"]), a=a, b=b, rate=f"{rate.numerator}/{rate.denominator}",
                answer=latex, answer_plain=plain)


def _test_average(rng: np.random.Generator, w: dict[str, Any]) -> dict[str, Any]:
    while True:
        s1, s2, s3 = (_ri(rng, 55, 98) for _ in range(3))
        avg = _ri(rng, 70, 92)
        need, have = 4 * avg, s1 + s2 + s3
        if 40 <= need - have <= 100:
            break
    return dict(name=_pick(rng, w["names"]), tests=_pick(rng, w["tests"]), s1=s1, s2=s2, s3=s3, avg=avg,
                need=need, have=have, answer=need - have)


def _ratio_share(rng: np.random.Generator, w: dict[str, Any]) -> dict[str, Any]:
    name, name2 = _two_names(rng, w)
    a, b = _ri(rng, 1, 7), _ri(rng, 1, 7)
    while math.gcd(a, b) != 1 or a == b:
        a, b = _ri(rng, 1, 7), _ri(rng, 1, 7)
    unit = _ri(rng, 3, 40)
    return dict(name=name, name2=name2, a=a, b=b, parts=a + b, unit=unit, T=unit * (a + b), answer=unit * b)


def _unit_price(rng: np.random.Generator, w: dict[str, Any]) -> dict[str, Any]:
    it = _pick(rng, w["shop_items"])
    u = _ri(rng, *it["price"])
    n1 = _ri(rng, 2, 9)
    n2 = _ri(rng, 2, 15)
    while n2 == n1:
        n2 = _ri(rng, 2, 15)
    return dict(item=it["singular"], item_pl=it["plural"], u=u, n1=n1, c1=n1 * u, n2=n2, answer=n2 * u)


def _marble_probability(rng: np.random.Generator, w: dict[str, Any]) -> dict[str, Any]:
    c1, c2 = (int(x) for x in rng.choice(len(w["marble_colors"]), size=2, replace=False))
    r, g, extra = _ri(rng, 2, 12), _ri(rng, 2, 12), _ri(rng, 1, 6)
    rr, tot = r + extra, r + extra + g
    latex, plain = _frac_latex(Fraction(rr, tot))
    return dict(name=_pick(rng, w["names"]), color1=w["marble_colors"][c1], color2=w["marble_colors"][c2],
                r=r, g=g, extra=extra, rr=rr, tot=tot, answer=latex, answer_plain=plain)


def _savings_weeks(rng: np.random.Generator, w: dict[str, Any]) -> dict[str, Any]:
    s0, wk = _ri(rng, 0, 20) * 5, _ri(rng, 3, 25)
    goal = s0 + _ri(rng, 30, 300)
    gap = goal - s0
    weeks = -(-gap // wk)
    ratio = f"{gap // wk} with {gap % wk} left over" if gap % wk else str(gap // wk)
    return dict(name=_pick(rng, w["names"]), s0=s0, w=wk, goal=goal, gap=gap, ratio=ratio, answer=weeks)


SAMPLERS: dict[str, Sampler] = {
    "shopping_change": _shopping_change,
    "two_leg_distance": _two_leg_distance,
    "ages_sum": _ages_sum,
    "discount_coupon": _discount_coupon,
    "lawn_area": _lawn_area,
    "fence_cost": _fence_cost,
    "pipes_together": _pipes_together,
    "test_average": _test_average,
    "ratio_share": _ratio_share,
    "unit_price": _unit_price,
    "marble_probability": _marble_probability,
    "savings_weeks": _savings_weeks,
}


def make_task(rng: np.random.Generator, index: int, dataset: str = "gen_math") -> Task:
    """Build one ``gen_math`` task.

    Args:
        rng: random source for this task.
        index: position in the dataset (used in the task id).
        dataset: dataset name recorded on the task.

    Returns:
        A math task with an exact integer or fraction answer.
    """
    templates: dict[str, Any] = load_data("math_templates.json")
    words: dict[str, Any] = load_data("words.json")
    names = sorted(SAMPLERS)
    tid = names[int(rng.integers(len(names)))]
    tpl = templates[tid]
    v = SAMPLERS[tid](rng, words)
    v.setdefault("answer_plain", str(v["answer"]))
    answer = str(v["answer"])
    problem = tpl["problem"].format(**v)
    steps = tuple(s.format(**v) for s in tpl["steps"])
    meta = {"template": tid, "difficulty": tpl["difficulty"], "answer_plain": v["answer_plain"],
            "n_steps": len(steps)}
    return Task(task_id=f"{dataset}-{index:04d}", dataset=dataset, kind="math", problem=problem, answer=answer,
                steps=steps, meta=meta)
