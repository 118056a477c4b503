"""``gen_code``: "what does this Python function return?" questions.

Functions come from templates in ``tasks/data/code_templates.json`` (names, variable names and
constants vary). The source is in canonical form so another module can restyle it: a
``def name(params):`` line, body lines indented by multiples of 4 spaces, no type hints, docstrings,
comments or blank lines, only for/if/else/return/assignment statements. The answer is obtained by
executing the generated source with a restricted set of builtins (:func:`run_code`) and is the
``repr()`` of the return value; the canonical source is stored in ``meta["code"]``.
"""

from __future__ import annotations

import builtins
from string import Template
from typing import Any, Callable

import numpy as np

from personalization_env.tasks._resources import load_data
from personalization_env.types import Task

_SAFE_BUILTIN_NAMES = ("len", "range", "str", "int", "sum", "min", "max", "abs", "sorted", "list", "dict",
                       "tuple", "bool", "enumerate", "reversed", "zip", "True", "False", "None")

Fields = dict[str, Any]
Drawn = tuple[list[Any], Fields]  # (positional args, fields for the step sentences)
# A sampler draws the arguments; it may add template fields (constants) to ``v``; ``w`` holds word lists.
Sampler = Callable[[np.random.Generator, Fields, Fields], Drawn]


def run_code(code: str, fn_name: str, args: list[Any] | tuple[Any, ...]) -> Any:
    """Execute generated function source in a restricted namespace and call it.

    Args:
        code: canonical function source.
        fn_name: the function's name.
        args: positional arguments (lists and dicts are copied, so the caller's values are not mutated).

    Returns:
        The function's return value.
    """
    safe = {name: getattr(builtins, name) for name in _SAFE_BUILTIN_NAMES}
    namespace: dict[str, Any] = {"__builtins__": safe}
    exec(compile(code, f"<gen_code:{fn_name}>", "exec"), namespace)  # noqa: S102 - our own generated source
    return namespace[fn_name](*[_copy(a) for a in args])


def _copy(x: Any) -> Any:
    if isinstance(x, list):
        return [_copy(v) for v in x]
    if isinstance(x, dict):
        return {k: _copy(v) for k, v in x.items()}
    return x


def _ri(rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(rng.integers(lo, hi + 1))


def _int_list(rng: np.random.Generator, n_lo: int = 4, n_hi: int = 7, lo: int = 1, hi: int = 20) -> list[int]:
    return [_ri(rng, lo, hi) for _ in range(_ri(rng, n_lo, n_hi))]


def _word(rng: np.random.Generator, words: dict[str, Any]) -> str:
    pool = words["short_words"]
    return str(pool[int(rng.integers(len(pool)))])


def _join(items: list[Any]) -> str:
    items = [str(i) for i in items]
    if not items:
        return "none"
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _sum_evens(rng: np.random.Generator, v: Fields, w: Fields) -> Drawn:
    xs = _int_list(rng)
    if not any(x % 2 == 0 for x in xs):
        xs[int(rng.integers(len(xs)))] = 2 * _ri(rng, 1, 10)
    evens = [x for x in xs if x % 2 == 0]
    return [xs], dict(evens=_join(evens))


def _count_above(rng: np.random.Generator, v: Fields, w: Fields) -> Drawn:
    xs = _int_list(rng)
    k = _ri(rng, 5, 15)
    return [xs, k], dict(above=_join([x for x in xs if x > k]))


def _running_max(rng: np.random.Generator, v: Fields, w: Fields) -> Drawn:
    xs = _int_list(rng, 4, 6)
    out, best = [], xs[0]
    for x in xs:
        best = max(best, x)
        out.append(best)
    return [xs], dict(trace=" then ".join(str(o) for o in out))


def _reverse_words(rng: np.random.Generator, v: Fields, w: Fields) -> Drawn:
    words = [_word(rng, w) for _ in range(_ri(rng, 3, 5))]
    return [" ".join(words)], dict(words_list=_join(words))


def _count_vowels(rng: np.random.Generator, v: Fields, w: Fields) -> Drawn:
    s = "".join(_word(rng, w) for _ in range(2))
    return [s], dict(vowels=_join([c for c in s if c in "aeiou"]))


def _digit_sum(rng: np.random.Generator, v: Fields, w: Fields) -> Drawn:
    n = _ri(rng, 100, 999999)
    return [n], dict(digits=_join(list(str(n))))


def _min_max(rng: np.random.Generator, v: Fields, w: Fields) -> Drawn:
    xs = _int_list(rng, 4, 7, -10, 30)
    return [xs], dict(lo_v=min(xs), hi_v=max(xs))


def _is_sorted(rng: np.random.Generator, v: Fields, w: Fields) -> Drawn:
    xs = _int_list(rng, 4, 6)
    if rng.random() < 0.5:
        xs = sorted(xs)
    bad = next((i for i in range(len(xs) - 1) if xs[i] > xs[i + 1]), None)
    note = ("Every item is at most the next one." if bad is None
            else f"{xs[bad]} comes before {xs[bad + 1]}, which is smaller.")
    return [xs], dict(sorted_note=note)


def _label_number(rng: np.random.Generator, v: Fields, w: Fields) -> Drawn:
    a, b = (int(x) for x in rng.choice([2, 3, 5, 7], size=2, replace=False))
    w1, w2 = (w["label_words"][int(i)] for i in rng.choice(len(w["label_words"]), size=2, replace=False))
    v.update(a=a, b=b, w1=w1, w2=w2)
    mode = int(rng.integers(4))  # both, a only, b only, neither: spread the answers
    while True:
        n = _ri(rng, 10, 120)
        got = (n % a == 0) * 1 + (n % b == 0) * 2
        if got == [3, 1, 2, 0][mode]:
            break
    which = {3: "It is divisible by both, so the two labels are joined.",
             1: f"It is divisible by {a} only.", 2: f"It is divisible by {b} only.",
             0: "It is divisible by neither, so the number itself is returned as a string."}[got]
    return [n], dict(ra=n % a, rb=n % b, which=which)


def _scale_odds(rng: np.random.Generator, v: Fields, w: Fields) -> Drawn:
    v.update(m=_ri(rng, 2, 5))
    return [_int_list(rng, 4, 6)], {}


def _char_counts(rng: np.random.Generator, v: Fields, w: Fields) -> Drawn:
    return [_word(rng, w)], {}


SAMPLERS: dict[str, Sampler] = {
    "sum_evens": _sum_evens,
    "count_above": _count_above,
    "running_max": _running_max,
    "reverse_words": _reverse_words,
    "count_vowels": _count_vowels,
    "digit_sum": _digit_sum,
    "min_max": _min_max,
    "is_sorted": _is_sorted,
    "label_number": _label_number,
    "scale_odds": _scale_odds,
    "char_counts": _char_counts,
}


def make_task(rng: np.random.Generator, index: int, dataset: str = "gen_code") -> Task:
    """Build one ``gen_code`` task (the answer comes from executing the generated function).

    Args:
        rng: random source for this task.
        index: position in the dataset (used in the task id).
        dataset: dataset name recorded on the task.

    Returns:
        A code task; ``meta`` holds ``code``, ``function``, ``args`` (their reprs) and ``template``.
    """
    templates: dict[str, Any] = load_data("code_templates.json")
    words: dict[str, Any] = templates["_words"]
    names = sorted(SAMPLERS)
    tid = names[int(rng.integers(len(names)))]
    tpl = templates[tid]
    fields: dict[str, Any] = {"fn": tpl["names"][int(rng.integers(len(tpl["names"])))]}
    for var, options in tpl["vars"].items():
        fields[var] = options[int(rng.integers(len(options)))]
    args, step_fields = SAMPLERS[tid](rng, fields, words)
    code = "\n".join(Template(line).substitute(fields) for line in tpl["code"])
    result = run_code(code, fields["fn"], args)
    answer = repr(result)
    arg_reprs = [repr(a) for a in args]
    call = f"{fields['fn']}({', '.join(arg_reprs)})"
    input_desc = " and ".join(f"{p} = {r}" for p, r in zip(_param_names(code), arg_reprs))
    problem = Template(templates["_problem"]).substitute(input_desc=input_desc, code=code, call=call)
    sf = dict(fields, **step_fields, answer=answer, **{f"arg{i}": r for i, r in enumerate(arg_reprs)})
    steps = tuple(Template(s).substitute(sf) for s in tpl["steps"])
    meta = {"template": tid, "code": code, "function": fields["fn"], "args": arg_reprs, "call": call,
            "return_type": type(result).__name__, "difficulty": "easy" if len(code.splitlines()) <= 5 else "medium"}
    return Task(task_id=f"{dataset}-{index:04d}", dataset=dataset, kind="code", problem=problem, answer=answer,
                steps=steps, meta=meta)


def _param_names(code: str) -> list[str]:
    header = code.splitlines()[0]
    inside = header[header.index("(") + 1: header.rindex(")")]
    return [p.strip() for p in inside.split(",") if p.strip()]
