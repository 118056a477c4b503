"""The regex-free fast paths used for speed give exactly the results of the regexes they replace."""

from __future__ import annotations

import random

from personalization_env import language as L
from personalization_env.llm import recognize as RC
from personalization_env.preferences import text as T
from personalization_env.tasks import scoring as S

_PIECES = ["e.g.", "i.e.", "vs.", "etc.", "Dr.", "Mrs.", "mr.", "No.", "approx.", "Fig.", "cf.", "St.", "x", "_", "1",
           ". ", "! ", "? ", "…", "\"", ")", "]", "*", "\n", "\t", " ", "a", "B", "é", "ſ", "answer", "The answer is",
           "final  answer:", "correct option", "Option (C)", "choice D", "that's wrong", "I'M CONFUSED", "'", "so ",
           "then", "1. ", "a) ", "# h", "```", "|a|b|", "$$x$$"]


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 12))) for _ in range(n)]


def test_sentence_splitting_matches_the_regexes():
    for t in _texts(3000, 0):
        assert L._protect_abbreviations(t) == L._ABBREV.sub(lambda m: m.group(0).replace(".", "\x00"), t)
        assert L._split_at_boundaries(t) == L._SENT_SPLIT.split(t)


def test_count_whole_matches_the_regex():
    for t in _texts(2000, 1):
        low = L.normalize(t)
        for p in ("so", "then", "answer", "e.g.", "a"):
            assert L._count_whole(low, p) == len(L._whole_phrase_re(p).findall(low))


def test_answer_phrase_scan_matches_finditer():
    for t in _texts(3000, 2):
        for pat in (S._ANSWER_TEXT_RE, S._mc_patterns("ABCD").phrase_bracketed, S._mc_patterns("ABCD").phrase_bare):
            assert [m.span() for m in S._answer_phrase_matches(pat, t)] == [m.span() for m in pat.finditer(t)]
        pat = S._mc_patterns("ABCD").option_word
        assert [m.span() for m in S._option_word_matches(pat, t)] == [m.span() for m in pat.finditer(t)]


def test_statement_split_matches_the_regex():
    for t in _texts(3000, 4):
        assert L._split_statements(t) == L._STATEMENT_SPLIT.split(t)


def _find_by_regex(text: str, phrases: tuple[str, ...]) -> int:
    low = L.normalize(text)
    starts = [m.start() for p in {L.normalize(p).strip() for p in phrases}
              for m in L._whole_phrase_re(p).finditer(low)] if phrases else []
    return min(starts, default=-1)


def test_find_any_matches_the_regex():
    lists = (("so ", "then"), ("i hope", "sure!", "let's dive"), ("e.g.", "answer"), ("1", "x"), ("a", "ab", "b a"),
             ("final answer", "the answer is"), ("it's like", "like a "), ("I'M", "That\u2019s wrong"))
    for t in _texts(3000, 5):
        for phrases in lists:
            assert T.find_any(t, phrases) == _find_by_regex(t, phrases), (t, phrases)
            assert T.contains_any(t, phrases) == (_find_by_regex(t, phrases) >= 0), (t, phrases)


def test_checker_prefilters_match_the_plain_scans():
    """Checkers skip their regex scan when a character or word every match needs is missing."""
    import re

    from personalization_env.preferences import checkers as C
    from personalization_env.types import ReplyContext

    ctx = ReplyContext(situations=frozenset({"final_answer"}))
    pieces = _PIECES + ["İ", "ı", "ſ", "K", "Step 2:", "STEP 1.", "O(n)", "o(1)", "time complexity", "Linear time",
                        "word count", "40 words", "let x be", "Where n is", "denote", "90% confident", "very ſure",
                        "Confidence: high", "$", "$$", "\\(", "\\[", "\\frac", "\\boxed{3}", "**", "__", "*x*", "🙂",
                        "- ", "## ", "| a |"]
    rng = random.Random(6)
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 16))) for _ in range(4000)]
    lines = lambda r, kinds: "\n".join(ln.text for ln in T.classify_lines(r) if ln.kind in kinds)  # noqa: E731
    plain = {
        "step_labels": lambda r: len(set(re.findall(r"\bstep\s+(\d+)\s*[:.)]", T.prose(r), re.I))) >= 2,
        "has_bold": lambda r: len(re.findall(r"\*\*[^*\n]+\*\*|__[^_\n]+__", lines(r, ("prose", "item", "table")))) >= 1,
        "no_markdown": lambda r: not any(ln.kind in ("heading", "table") for ln in T.classify_lines(r)) and not re.search(
            r"\*\*[^*\n]+\*\*|__[^_\n]+__|(?<![\w*])\*[^*\s][^*\n]*\*(?!\w)", lines(r, ("prose", "item"))),
        "no_emoji": lambda r: not C.EMOJI_RE.search(r),
        "has_confidence": lambda r: bool(C.CONFIDENCE_RE.search(T.prose(r))),
        "mentions_complexity": lambda r: bool(C.COMPLEXITY_RE.search(T.prose(r))),
        "has_latex": lambda r: bool(C.LATEX_RE.search(T.prose(r) + "\n" + lines(r, ("math",)))),
        "no_latex": lambda r: not C.LATEX_RE.search(t := re.sub(r"\\boxed\{[^{}]*\}", "", lines(
            r, ("prose", "item", "math", "heading", "table")))) and not C.LATEX_CMD_RE.search(t),
        "has_display_math": lambda r: any(ln.kind == "math" for ln in T.classify_lines(r)) or bool(
            re.search(r"^\s*\$\$\s*$[\s\S]+?^\s*\$\$\s*$", r, re.M)),
        "defines_variables": lambda r: bool(re.search(
            r"\blet\s+\$?\\?\(?[A-Za-z](?:_\w+)?\$?\\?\)?\s+(?:be|denote|represent|stand|=)"
            r"|\bwhere\s+\$?[A-Za-z](?:_\w+)?\$?\s+(?:is|denotes|=)|\bdenote\b", T.prose(r), re.I)),
        "word_count_stated": lambda r: bool(re.search(r"word count|\b\d+\s+words\b", T.prose(r), re.I)),
        "bold_answer": lambda r: any(re.search(r"\d|\\boxed|\([A-E]\)|answer", s, re.I)
                                     for s in re.findall(r"\*\*([^*\n]+)\*\*", T.prose(r))),
    }
    for t in texts:
        for name, f in plain.items():
            assert C.CHECKERS[name](t, ctx) == f(t), (name, t)


def test_statements_split_line_by_line():
    for t in _texts(3000, 7):
        assert RC.statements(t) == [s for line in t.split("\n") for s in RC.statements(line)], repr(t)
