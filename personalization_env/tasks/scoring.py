"""Exact scorers: pull an answer out of reply text, judge it, and make right and wrong answer sentences.

Per task kind:

* ``math``: the last ``\\boxed{...}`` (balanced braces) is the answer; failing that, the last
  "answer is X" / "final answer: X" phrase. Equivalence uses math-verify (``\\frac{1}{2}`` == ``0.5`` ==
  ``1/2``, ``\\dfrac`` == ``\\frac``, ``10,455`` == ``10455``: a comma between digit groups of three is
  a thousands separator), after a fast normalised-string comparison. math-verify's signal-based
  timeouts are used only on the main thread; in other threads they are disabled (math-verify cannot
  use them there), and answers over 500 characters skip math-verify altogether.
* ``multiple_choice``: an option letter ("(B)", "B.", "answer is B", "option B", "**B**") or an
  option's full text. Correct when the letter matches or the text equals the correct option's text
  (case, whitespace and a trailing period ignored).
* ``logic`` / ``code`` / ``writing``: normalised exact match (case-insensitive, quotes and a trailing
  period stripped); for ``code`` both sides are compared as Python literals when both parse.
"""

from __future__ import annotations

import ast
import logging
import re
import threading
from functools import lru_cache
from typing import Any, Iterator, NamedTuple

import numpy as np

from personalization_env.types import Task

logger = logging.getLogger(__name__)

_MAX_VERIFY_CHARS = 500
_MATH_VERIFY_TIMEOUT_S = 5

# --------------------------------------------------------------------------------------------------
# Generic helpers
# --------------------------------------------------------------------------------------------------

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_PHRASE = r"(?i:(?:final\s+answer|the\s+answer|answer|correct\s+(?:answer|option|choice)))"
_LINK = r"(?i:\s*(?:is|:|=|would\s+be|should\s+be|will\s+be)\s*:?\s*)"
_TAIL_TO_SENTENCE_END = r"(.+?)\s*(?:\.(?=\s|$)|\n|$)"
_ANSWER_TEXT_RE = re.compile(_ANSWER_PHRASE + _LINK + _TAIL_TO_SENTENCE_END)


def boxed_contents(text: str) -> list[str]:
    """All ``\\boxed{...}`` / ``\\fbox{...}`` contents in ``text``, in order, with nested braces kept.

    Args:
        text: any text, typically a LaTeX solution.

    Returns:
        The contents of every balanced box (an unbalanced trailing box is ignored).
    """
    out: list[str] = []
    for m in _BOX_RE.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            ch = text[i]
            if ch == "\\" and i + 1 < len(text):
                i += 2
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            i += 1
        if depth == 0:
            out.append(text[m.end():i - 1])
    return out


def _last_boxed(text: str) -> str | None:
    boxes = boxed_contents(text)
    return boxes[-1].strip() if boxes else None


def _strip_wrappers(s: str) -> str:
    """Strip markdown emphasis, backticks, quotes, math delimiters and a trailing period."""
    s = s.strip()
    for _ in range(4):
        before = s
        s = s.strip().strip("*_`").strip()
        if s.startswith("$") and s.endswith("$") and len(s) > 1:
            s = s.strip("$").strip()
        for left, right in (("\\(", "\\)"), ("\\[", "\\]")):
            if s.startswith(left) and s.endswith(right):
                s = s[len(left):-len(right)].strip()
        s = re.sub(r"[.;,!]+$", "", s).strip()
        if s == before:
            break
    return s


@lru_cache(maxsize=4096)  # option texts are normalised again for every reply
def _norm_words(s: str) -> str:
    """Case-folded, whitespace-collapsed text without wrapping quotes or a trailing period."""
    s = _strip_wrappers(s)
    s = s.strip("\"'“”‘’").strip()
    s = re.sub(r"[.;!]+$", "", s)
    return re.sub(r"\s+", " ", s).strip().casefold()


def _last_answer_phrase(text: str) -> str | None:
    last = None
    for last in _answer_phrase_matches(_ANSWER_TEXT_RE, text):
        pass
    return last.group(1).strip() if last is not None else None


# Patterns that start with a case-insensitive alternation (``_ANSWER_PHRASE``, "option|choice") make
# the regex engine try every character of a long reply (~50-90 ns/char). On ASCII text the places where
# such a match can start are found with ``str.find`` on the lower-cased text, and the pattern is only
# tried there: ``_matches_at`` yields exactly the matches ``pattern.finditer`` yields, because every
# possible match start is among the candidates and the candidates are tried left to right without
# overlap. Non-ASCII text (unicode case folding) uses ``finditer`` itself.


def _matches_at(pattern: re.Pattern[str], text: str, starts: tuple[int, ...]) -> Iterator[re.Match[str]]:
    pos = 0
    for s in starts:
        if s >= pos:
            m = pattern.match(text, s)
            if m is not None:
                yield m
                pos = m.end()  # the patterns used here never match the empty string


def _find_all(low: str, word: str) -> Iterator[int]:
    i = low.find(word)
    while i >= 0:
        yield i
        i = low.find(word, i + 1)


@lru_cache(maxsize=256)
def _answer_phrase_starts(text: str) -> tuple[int, ...] | None:
    """Every offset where ``_ANSWER_PHRASE`` can match in ASCII ``text`` (a superset); None if not ASCII.

    A match contains "answer" (after "final"/"the"/"correct" and whitespace, or alone) or is "correct"
    followed by whitespace and "option"/"choice"."""
    if not text.isascii():
        return None
    low = text.lower()
    starts = set(_find_all(low, "correct"))
    for p in _find_all(low, "answer"):
        starts.add(p)
        q = p
        while q > 0 and low[q - 1].isspace():
            q -= 1
        if q < p:
            starts.update(x for x in (q - 3, q - 5, q - 7) if x >= 0)
    return tuple(sorted(starts))


def _answer_phrase_matches(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)`` for a pattern that starts with ``_ANSWER_PHRASE``."""
    starts = _answer_phrase_starts(text)
    return pattern.finditer(text) if starts is None else _matches_at(pattern, text, starts)


def _option_word_matches(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)`` for a pattern that starts with ``(?i:option|choice)``."""
    if not text.isascii():
        return pattern.finditer(text)
    low = text.lower()
    return _matches_at(pattern, text, tuple(sorted((*_find_all(low, "option"), *_find_all(low, "choice")))))


# --------------------------------------------------------------------------------------------------
# Math
# --------------------------------------------------------------------------------------------------

_NUM_PREFIX = re.compile(r"^([-+]?(?:\\\$|\$)?\d[\d,]*(?:\.\d+)?(?:/\d+)?)\s+[A-Za-z]{2,}(?:\s+[A-Za-z]+)*$")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def _clean_math(s: str) -> str:
    s = _strip_wrappers(s)
    box = _last_boxed(s)
    if box is not None:
        s = box
    s = re.sub(r"^[A-Za-z]\s*=\s*", "", s)  # "x = 5" -> "5"
    m = _NUM_PREFIX.match(s)
    if m:  # "12 dollars" -> "12" (only when everything after the number is plain words)
        s = m.group(1)
    s = s.replace("\\$", "")
    if s.startswith("$") and re.match(r"^\$\d", s) and s.count("$") == 1:
        s = s[1:]  # currency sign
    return s.strip()


def _latex_norm(s: str) -> str:
    s = s.replace("\\left", "").replace("\\right", "")
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\\text\{\s*([^{}]*)\}", r"\1", s)
    s = re.sub(r"\\(?:!|,|;|:|quad|qquad)", "", s)
    s = s.replace("^\\circ", "").replace("^{\\circ}", "").replace("\\%", "").replace("%", "").replace("$", "")
    s = re.sub(r"\s+", "", s)
    s = re.sub(r"\.$", "", s)
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    return s


def _extract_math(text: str) -> str | None:
    box = _last_boxed(text)
    if box is not None:
        return _clean_math(box) or None
    cand = _last_answer_phrase(text)
    if cand is None:
        return None
    cand = _clean_math(cand)
    return cand or None


def _no_timeout_notice(record: logging.LogRecord) -> bool:
    """math-verify warns on every call made off the main thread that its signal-based time limit is off;
    here that is known and documented (module docstring), so the notice is dropped."""
    return not str(record.msg).startswith("Timeout is disabled")


def _math_verify_equal(gold: str, pred: str) -> bool:
    if len(gold) > _MAX_VERIFY_CHARS or len(pred) > _MAX_VERIFY_CHARS:
        return False
    try:
        from math_verify import parse, verify
    except ImportError:  # pragma: no cover - math-verify is a hard dependency
        logger.warning("math-verify is not installed; math answers are compared as normalised strings only")
        return False
    for name in ("math_verify.parser", "math_verify.grader"):
        log = logging.getLogger(name)
        if _no_timeout_notice not in log.filters:
            log.addFilter(_no_timeout_notice)
    timeout: int | None = (
        _MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    )
    try:
        g = parse(f"${gold}$", parsing_timeout=timeout)
        p = parse(f"${pred}$", parsing_timeout=timeout)
        if not g or not p:
            return False
        return bool(verify(g, p, timeout_seconds=timeout))
    except Exception as exc:  # math-verify may raise (timeouts, sympy errors); treat as not equal
        logger.debug("math-verify failed on gold=%r pred=%r: %s", gold, pred, exc)
        return False


@lru_cache(maxsize=65536)
def _math_is_correct(gold: str, answer: str) -> bool:
    pred = _clean_math(answer)
    gold_c = _clean_math(gold)
    if not pred:
        return False
    if _latex_norm(pred) == _latex_norm(gold_c):
        return True
    return _math_verify_equal(gold_c, pred)


@lru_cache(maxsize=65536)
def _sympy_fallback_equal(gold: str, pred: str) -> bool:
    """Plain sympy comparison for simple expressions when math-verify gives no verdict."""
    try:
        import sympy

        a = sympy.sympify(gold.replace("^", "**"), rational=True)
        b = sympy.sympify(pred.replace("^", "**"), rational=True)
        return bool(sympy.simplify(a - b) == 0)
    except Exception:
        return False


# --------------------------------------------------------------------------------------------------
# Multiple choice
# --------------------------------------------------------------------------------------------------

_LETTERS = "ABCDEFGHIJ"


def _letters(task: Task) -> str:
    return _LETTERS[: len(task.choices)] if task.choices else "ABCD"


def _gold_letter(task: Task) -> str | None:
    letters = _letters(task)
    a = task.answer.strip()
    if len(a) == 1 and a.upper() in letters:
        return a.upper()
    hits = _letters_for_text(task, a)
    return hits[0] if hits else None


def _letters_for_text(task: Task, s: str) -> list[str]:
    n = _norm_words(s)
    if not n:
        return []
    return [_LETTERS[i] for i, c in enumerate(task.choices) if _norm_words(c) == n]


def _resolve_mc(task: Task, s: str) -> list[str]:
    """Letters a stated answer names: a letter form, a letter with text, or an option's text."""
    letters = _letters(task)
    t = _strip_wrappers(s)
    pats = _mc_patterns(letters)
    m = pats.letter_form.fullmatch(t)
    if m:
        return [m.group(1)]
    text_hits = _letters_for_text(task, t)
    if text_hits:
        return text_hits
    m = pats.letter_start.match(t)
    if m:
        return [m.group(1) or m.group(2)]
    return []


class _MCPatterns(NamedTuple):
    letter_form: re.Pattern[str]
    letter_start: re.Pattern[str]
    phrase_bracketed: re.Pattern[str]
    phrase_bare: re.Pattern[str]
    option_word: re.Pattern[str]
    others: tuple[re.Pattern[str], ...]


@lru_cache(maxsize=64)
def _mc_patterns(letters: str) -> _MCPatterns:
    """The multiple-choice patterns for one set of option letters, compiled once."""
    lead = _ANSWER_PHRASE + _LINK + r"(?:(?i:option|choice)\s+)?"
    return _MCPatterns(
        letter_form=re.compile(rf"(?:(?i:option|choice)\s+)?[\(\[]?\s*([{letters}])\s*[\)\]]?[.:)]?"),
        letter_start=re.compile(rf"^[\(\[]\s*([{letters}])\s*[\)\]]|^([{letters}])[.:)]\s"),
        phrase_bracketed=re.compile(lead + rf"[\*\s]*[\(\[]\s*([{letters}])\s*[\)\]]"),
        phrase_bare=re.compile(lead + rf"[\*]*([{letters}])(?![A-Za-z0-9'’\-])"),
        option_word=re.compile(rf"(?i:option|choice)\s+\(?([{letters}])(?![A-Za-z0-9])"),
        others=(re.compile(rf"[\(\[]([{letters}])[\)\]]"),
                re.compile(rf"\*\*\(?([{letters}])\)?[.:]?\*\*"),
                re.compile(rf"(?m)^\s*([{letters}])[.):]\s")),
    )


_ARTICLE_AFTER = re.compile(r"\s+[a-z]")


def _extract_mc(task: Task, text: str) -> str | None:
    letters = _letters(task)
    pats = _mc_patterns(letters)
    box = _last_boxed(text)
    if box is not None:
        hits = _resolve_mc(task, box)
        if hits:
            return hits[0]
    # 1. an answer phrase followed by a letter (last one wins)
    found: list[tuple[int, str]] = []
    for m in _answer_phrase_matches(pats.phrase_bracketed, text):
        found.append((m.start(1), m.group(1)))
    for m in _answer_phrase_matches(pats.phrase_bare, text):
        if m.group(1) == "A" and _ARTICLE_AFTER.match(text, m.end(1)):
            continue  # "the answer is a ..." reads as an article
        found.append((m.start(1), m.group(1)))
    if found:
        return max(found)[1]
    # 2. an answer phrase followed by an option's text
    cand = _last_answer_phrase(text)
    if cand is not None:
        hits = _resolve_mc(task, cand)
        if hits:
            return hits[0]
        hits = _contained_options(task, cand)
        if len(hits) == 1:
            return hits[0]
    # 3. the whole reply is a letter or an option's text
    hits = _resolve_mc(task, text)
    if hits:
        return hits[0]
    # 4. "option B", "(B)", "**B**", "B." at the start of a line (last one wins)
    found = [(m.start(1), m.group(1)) for m in _option_word_matches(pats.option_word, text)]
    found += [(m.start(1), m.group(1)) for p in pats.others for m in p.finditer(text)]
    if found:
        return max(found)[1]
    # 5. exactly one option's text appears in the reply
    hits = _contained_options(task, text)
    if len(hits) == 1:
        return hits[0]
    return None


def _contained_options(task: Task, text: str) -> list[str]:
    body = " " + re.sub(r"\s+", " ", text).casefold() + " "
    found: dict[str, str] = {}
    for i, c in enumerate(task.choices):
        n = _norm_words(c)
        if len(n) < 2:
            continue
        if n in body and re.search(r"(?<![\w])" + re.escape(n) + r"(?![\w])", body):  # substring pre-filter
            found[_LETTERS[i]] = n
    # an option whose text is part of another found option's text does not count on its own
    keep = [k for k, n in found.items() if not any(n != o and n in o for o in found.values())]
    return keep


# --------------------------------------------------------------------------------------------------
# Logic / code / free text
# --------------------------------------------------------------------------------------------------

_CODE_PHRASE = re.compile(
    r"(?i:returns?|return\s+value\s+is|output\s+is|result\s+is|evaluates\s+to|answer\s+is|answer:|gives)"
    r"\s*:?\s*`([^`\n]+)`"
)
_CODE_TEXT_RE = re.compile(
    r"(?i:final\s+answer|answer|returns?|return\s+value|output|result|evaluates\s+to)"
    r"(?i:\s*(?:is|:|=|would\s+be|will\s+be)?\s*:?\s+)" + _TAIL_TO_SENTENCE_END
)


def _literal(s: str) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(s.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def _extract_code(text: str) -> str | None:
    found = [(m.start(1), m.group(1).strip()) for m in _CODE_PHRASE.finditer(text)]
    if found:
        return max(found)[1]
    box = _last_boxed(text)
    if box is not None:
        return box
    matches = list(_CODE_TEXT_RE.finditer(text))
    if matches:
        cand = _strip_wrappers(matches[-1].group(1))
        return cand or None
    t = _strip_wrappers(text)
    if t and "\n" not in t and _literal(t)[0]:
        return t  # the whole reply is a value
    return None


def _code_is_correct(gold: str, answer: str) -> bool:
    ok_g, g = _literal(gold)
    ok_a, a = _literal(_strip_wrappers(answer))
    if ok_g and ok_a:
        return _strict_eq(g, a)
    return _norm_words(gold).strip("\"'") == _norm_words(answer).strip("\"'")


def _strict_eq(a: Any, b: Any) -> bool:
    """Equality that also requires equal types at every level (so ``1 != True != 1.0``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_strict_eq(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_strict_eq(a[k], b[k]) for k in a)
    if isinstance(a, (set, frozenset)):
        return a == b
    return bool(a == b)


def _entities(task: Task) -> list[str]:
    ents = task.meta.get("entities") if task.meta else None
    return [str(e) for e in ents] if ents else []


def _mentioned(entities: list[str], text: str) -> list[str]:
    # pre-filter: in ASCII text an ASCII entity can only match where its lower-cased form occurs
    low = text.lower() if text.isascii() else None
    return [e for e in entities
            if (low is None or not e.isascii() or e.lower() in low)
            and re.search(r"(?<!\w)" + re.escape(e) + r"(?!\w)", text, re.I)]


def _extract_logic(task: Task, text: str) -> str | None:
    ents = _entities(task)
    box = _last_boxed(text)
    if box is not None:
        return _strip_wrappers(box) or None
    cand = _last_answer_phrase(text)
    if cand is not None:
        cand = _strip_wrappers(cand)
        named = _mentioned(ents, cand)
        if len(named) == 1:
            return named[0]
        return cand or None
    if ents:
        named = _mentioned(ents, text)
        if len(named) == 1:
            return named[0]
        return None
    t = _strip_wrappers(text)
    if t and "\n" not in t and "?" not in t and len(t.split()) <= 6:
        return t  # a short reply that is just the answer
    return None


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def extract_answer(task: Task, text: str) -> str | None:
    """Pull the final answer out of free reply text.

    Args:
        task: the task the reply answers (its kind decides how the answer is stated).
        text: the reply text.

    Returns:
        The stated answer (for multiple choice: the option letter), or None if the text states none.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    if task.kind == "math":
        return _extract_math(text)
    if task.kind == "multiple_choice":
        return _extract_mc(task, text)
    if task.kind == "code":
        return _extract_code(text)
    return _extract_logic(task, text)


def is_correct(task: Task, answer: str | None) -> bool:
    """Whether an extracted answer is correct for ``task``.

    Args:
        task: the task with its gold answer.
        answer: an answer string as returned by :func:`extract_answer` (None counts as wrong).

    Returns:
        True when the answer equals the gold answer under the kind's equivalence (see module docs).
    """
    if answer is None or not str(answer).strip():
        return False
    answer = str(answer)
    if task.kind == "math":
        if _math_is_correct(task.answer, answer):
            return True
        return _sympy_fallback_equal(_clean_math(task.answer), _clean_math(answer)) if _simple_expr(answer) else False
    if task.kind == "multiple_choice":
        gold = _gold_letter(task)
        if gold is None:
            return _norm_words(answer) == _norm_words(task.answer)
        return gold in _resolve_mc(task, answer)
    if task.kind == "code":
        return _code_is_correct(task.answer, answer)
    return _norm_words(answer).strip("\"'") == _norm_words(task.answer).strip("\"'")


def _simple_expr(s: str) -> bool:
    """A plain arithmetic expression (no LaTeX) that sympy can safely compare."""
    return len(s) <= 60 and re.fullmatch(r"[\d\s+\-*/^().]+", _clean_math(s)) is not None


def score_reply(task: Task, text: str) -> bool:
    """Whether a free-text reply states the correct answer: ``is_correct(task, extract_answer(task, text))``."""
    return is_correct(task, extract_answer(task, text))


def answer_sentence(task: Task, answer: str) -> str:
    """How a reply states ``answer`` so that :func:`extract_answer` finds it.

    Args:
        task: the task being answered.
        answer: the answer to state (for multiple choice: a letter or an option's text).

    Returns:
        One sentence, e.g. ``"The final answer is \\boxed{10455}."`` or
        ``"The answer is (B) Sickle cell disease."``.
    """
    answer = str(answer).strip()
    if task.kind == "math":
        return f"The final answer is \\boxed{{{answer}}}."
    if task.kind == "multiple_choice":
        hits = _resolve_mc(task, answer)
        if not hits:
            return f"The answer is {answer}."
        letter = hits[0]
        idx = _LETTERS.index(letter)
        text = task.choices[idx].strip() if idx < len(task.choices) else ""
        return f"The answer is ({letter}) {text}".rstrip() + ("" if text.endswith((".", "?", "!")) else ".")
    if task.kind == "code":
        return f"The function returns `{answer}`."
    return f"The answer is {answer}."


def wrong_answer(task: Task, rng: np.random.Generator) -> str:
    """A plausible but definitely wrong answer (a distractor) for ``task``.

    Args:
        task: the task.
        rng: random source (the choice among distractors is drawn from it).

    Returns:
        An answer string that :func:`is_correct` rejects.

    Raises:
        ValueError: if no wrong answer can be built (e.g. a multiple-choice task with one option).
    """
    if task.kind == "math":
        cands = _math_distractors(task.answer, rng)
    elif task.kind == "multiple_choice":
        gold = _gold_letter(task)
        others = [c for c in _letters(task) if c != gold]
        cands = [others[i] for i in rng.permutation(len(others))]
    elif task.kind == "code":
        cands = _code_distractors(task.answer, rng)
    else:
        ents = [e for e in _entities(task) if _norm_words(e) != _norm_words(task.answer)]
        cands = [ents[i] for i in rng.permutation(len(ents))] + ["nobody", "none of them"]
    for c in cands:
        if c and not is_correct(task, c):
            return c
    raise ValueError(f"cannot build a wrong answer for task {task.task_id!r} (answer {task.answer!r}); "
                     "give multiple-choice tasks at least two options")


def _math_distractors(gold: str, rng: np.random.Generator) -> list[str]:
    g = _clean_math(gold)
    out: list[str] = []
    nums = list(re.finditer(r"\d+", g))
    if nums:
        m = nums[-1]
        v = int(m.group())
        deltas = [int(d) for d in rng.permutation([1, 2, 3])]
        news = [v + d for d in deltas] + ([2 * v] if v > 1 else []) + [v + 10]
        out += [g[: m.start()] + str(n) + g[m.end():] for n in news]
    out += [f"{g}+1" if not g.startswith("-") else g[1:], f"2({g})", f"({g})+7"]
    return out


def _code_distractors(gold: str, rng: np.random.Generator) -> list[str]:
    ok, v = _literal(gold)
    if not ok:
        return [gold + "x", "None"]
    d = int(rng.integers(1, 4))
    if isinstance(v, bool):
        return [repr(not v)]
    if isinstance(v, int):
        return [repr(v + d), repr(v - d), repr(v * 2 + 1)]
    if isinstance(v, float):
        return [repr(v + d), repr(v + 0.5)]
    if isinstance(v, str):
        return [repr(v + "x" * d), repr(v[::-1] + "a"), repr(v[:-1]) if v else repr("a")]
    if isinstance(v, list):
        alt = list(v)
        if alt and isinstance(alt[-1], int) and not isinstance(alt[-1], bool):
            alt[-1] += d
            return [repr(alt), repr(v + [d]), repr(v[:-1])]
        return [repr(v[:-1]) if v else repr([d]), repr(v + v) if v else repr([0])]
    if isinstance(v, tuple):
        return [repr(tuple(_bump(x, d) for x in v)), repr(v[::-1] + (d,))]
    if isinstance(v, dict):
        alt = dict(v)
        alt["zz"] = d
        return [repr(alt), repr({})]
    return ["None", repr(d)]


def _bump(x: Any, d: int) -> Any:
    if isinstance(x, int) and not isinstance(x, bool):
        return x + d
    if isinstance(x, str):
        return x + "x"
    return x
