"""Markdown-aware text analysis shared by the preference checkers.

The rules here decide what counts as a sentence, a list item, a heading or a paragraph in a chat
reply. They are written for real LLM output (markdown, LaTeX, unicode), not only for the scripted
renderer's replies.

Rules:
    * Fenced code blocks (```...``` or ~~~...~~~) are *code*: they are never prose, never sentences
      and never list items. An unterminated fence runs to the end of the reply.
    * A heading is a line starting with 1-6 ``#`` followed by a space, or a line that is wholly bold
      (``**Steps**``) and shorter than eight words without sentence punctuation at its end.
    * A list item is a line starting (after indentation) with ``-``, ``*``, ``+``, ``•`` or a number /
      letter followed by ``.`` or ``)`` and a space (``1.``, ``2)``, ``a.``).
    * Markdown table rows (lines starting with ``|``), horizontal rules and display-math lines
      (``$$...$$`` or ``\\[...\\]`` alone on a line) are not prose.
    * Sentences: prose lines (list items without their marker) are split after ``.``, ``!``, ``?``
      or ``…`` followed by whitespace, ignoring common abbreviations (``e.g.``, ``i.e.``, ``vs.``,
      ``Dr.`` ...) and decimal points. Each list item and each non-empty prose line is at least one
      sentence. A short label line ending in ``:`` (``Premises:``) is not a sentence.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")
_BOLD_LINE = re.compile(r"^\s*(\*\*|__)([^*_]{1,80})(\*\*|__)\s*:?\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)]|[a-zA-Z][.)])\s+(?=\S)")
_NUMBERED_ITEM = re.compile(r"^\s*\d{1,3}[.)]\s+(?=\S)")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_RULE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,})\s*$")
_DISPLAY_MATH = re.compile(r"^\s*(\$\$.*\$\$|\\\[.*\\\])\s*$")
_ABBREV = re.compile(r"\b(e\.g|i\.e|vs|etc|Dr|Mr|Mrs|Ms|St|approx|cf|Fig|No)\.", re.IGNORECASE)
_SENT_SPLIT = re.compile(r"(?<=[.!?…])[\"')\]*_]*\s+")
_WORD = re.compile(r"[A-Za-z0-9\u00C0-\uFFFF']+")


class Line(NamedTuple):
    """One line of a reply with its role (a named tuple: cheap to build, and replies have many lines).

    Attributes:
        text: the raw line.
        kind: ``"code"``, ``"fence"``, ``"heading"``, ``"item"``, ``"table"``, ``"math"``, ``"rule"``,
            ``"blank"`` or ``"prose"``.
        body: the line without list marker / heading marks (for prose and items).
    """

    text: str
    kind: str
    body: str


def classify_lines(reply: str) -> list[Line]:
    """Split ``reply`` into lines tagged with their markdown role (see module rules)."""
    return list(_classify_lines(reply))


@lru_cache(maxsize=2048)
def _classify_lines(reply: str) -> tuple[Line, ...]:
    # cached: every checker of a turn parses the same reply
    out: list[Line] = []
    in_code = False
    for raw in reply.replace("\r\n", "\n").split("\n"):
        body = raw.strip()
        first = body[:1]
        if not in_code and first.isascii() and first.isalnum():
            # fast path: of the patterns below, only _LIST_ITEM can match a line that starts with an
            # ASCII letter or digit (a letter only when followed by "." or ")")
            if (first.isdigit() or body[1:2] in (".", ")")) and _LIST_ITEM.match(raw):
                out.append(Line(raw, "item", _LIST_ITEM.sub("", raw, count=1).strip()))
            else:
                out.append(Line(raw, "prose", body))
        elif not in_code and not body:
            out.append(Line(raw, "blank", ""))  # (a blank line matches no pattern below)
        elif _FENCE.match(raw):
            in_code = not in_code
            out.append(Line(raw, "fence", ""))
        elif in_code:
            out.append(Line(raw, "code", raw))
        elif not raw.strip():
            out.append(Line(raw, "blank", ""))
        elif _HEADING.match(raw):
            out.append(Line(raw, "heading", raw.strip().lstrip("#").strip()))
        elif _BOLD_LINE.match(raw) and len(raw.split()) < 8 and not raw.rstrip().endswith((".", "!", "?")):
            out.append(Line(raw, "heading", _BOLD_LINE.match(raw).group(2).strip()))  # type: ignore[union-attr]
        elif _TABLE_ROW.match(raw):
            out.append(Line(raw, "table", raw))
        elif _RULE.match(raw):
            out.append(Line(raw, "rule", ""))
        elif _DISPLAY_MATH.match(raw):
            out.append(Line(raw, "math", raw.strip()))
        elif _LIST_ITEM.match(raw):
            out.append(Line(raw, "item", _LIST_ITEM.sub("", raw, count=1).strip()))
        else:
            out.append(Line(raw, "prose", raw.strip()))
    return tuple(out)


def code_blocks(reply: str) -> list[tuple[str, str]]:
    """Fenced code blocks as ``(language_tag, code)`` pairs, in order."""
    if "```" not in reply and "~~~" not in reply:
        return []
    blocks: list[tuple[str, str]] = []
    lang: str | None = None
    buf: list[str] = []
    for raw in reply.replace("\r\n", "\n").split("\n"):
        m = _FENCE.match(raw)
        if m:
            if lang is None:
                lang = raw.strip()[3:].strip()
                buf = []
            else:
                blocks.append((lang, "\n".join(buf)))
                lang = None
        elif lang is not None:
            buf.append(raw)
    if lang is not None:
        blocks.append((lang, "\n".join(buf)))
    return blocks


@lru_cache(maxsize=2048)
def prose(reply: str) -> str:
    """The reply without fenced code, tables, rules and display math (headings and items kept as lines)."""
    keep = [ln.body if ln.kind in ("item", "heading") else ln.text
            for ln in _classify_lines(reply) if ln.kind in ("prose", "item", "heading")]
    return "\n".join(keep)


def split_sentences(text: str) -> list[str]:
    """Split one line of prose into sentences (abbreviations and decimals are not boundaries)."""
    return list(_split_sentences(text))


@lru_cache(maxsize=8192)
def _split_sentences(text: str) -> tuple[str, ...]:
    protected = _protect_abbreviations(text)
    parts = [p.replace("\x00", ".").strip() for p in _split_at_boundaries(protected)]
    return tuple(p for p in parts if _WORD.search(p))


# Fast equivalents of ``_ABBREV.sub(...)`` and ``_SENT_SPLIT.split(...)`` (same results; the regexes
# start with an assertion, so the engine tries them at every character, ~20-90 ns/char).
_ABBREV_WORDS = frozenset(("e.g", "i.e", "vs", "etc", "dr", "mr", "mrs", "ms", "st", "approx", "cf", "fig", "no"))
_ABBREV_LENGTHS = (2, 3, 6)
# _SENT_SPLIT without its look-behind: the punctuation char is matched (a fast charset prefix scan)
# and the boundary is group 1; matches cannot differ, since every separator ends in whitespace.
_SENT_BOUNDARY = re.compile(r"[.!?…]([\"')\]*_]*\s+)")


def _protect_abbreviations(text: str) -> str:
    """``text`` with the dots of abbreviations (``_ABBREV``) replaced by ``\\x00``.

    ASCII text is scanned dot by dot: an ``_ABBREV`` match is one of ``_ABBREV_WORDS`` (case-insensitive)
    ending right before a dot, at a word boundary; no word is a suffix of another, so each dot ends at
    most one candidate and taking candidates left to right without overlap equals the regex scan.
    Other text (where case-insensitive matching has unicode subtleties) uses the regex itself."""
    d = text.find(".")
    if d < 0:
        return text
    if not text.isascii():
        return _ABBREV.sub(lambda m: m.group(0).replace(".", "\x00"), text)
    low = text.lower()
    out: list[str] = []
    last = 0  # end of the previous match (and of the text copied to ``out``)
    while d >= 0:
        for n in _ABBREV_LENGTHS:
            s = d - n
            if s >= last and low[s:d] in _ABBREV_WORDS and (s == 0 or not (low[s - 1].isalnum() or low[s - 1] == "_")):
                out.append(text[last:s])
                out.append(text[s:d + 1].replace(".", "\x00"))
                last = d + 1
                break
        d = text.find(".", d + 1)
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _split_at_boundaries(text: str) -> list[str]:
    """``_SENT_SPLIT.split(text)``."""
    parts: list[str] = []
    start = 0
    for m in _SENT_BOUNDARY.finditer(text):
        parts.append(text[start:m.start(1)])
        start = m.end(1)
    parts.append(text[start:])
    return parts


def _is_label(body: str) -> bool:
    return body.rstrip().endswith(":") and len(body.split()) <= 4


def sentences(reply: str) -> list[str]:
    """All sentences of the reply's prose and list items, in order (see module rules)."""
    return list(_sentences(reply))


@lru_cache(maxsize=2048)
def _sentences(reply: str) -> tuple[str, ...]:
    out: list[str] = []
    for ln in _classify_lines(reply):
        if ln.kind not in ("prose", "item") or _is_label(ln.body):
            continue
        out.extend(_split_sentences(ln.body) or [ln.body])
    return tuple(out)


def count_sentences(reply: str) -> int:
    """Number of sentences (see module rules)."""
    return len(_sentences(reply))


def words(text: str) -> list[str]:
    """Word tokens of ``text`` (letters, digits, apostrophes, unicode letters)."""
    return _WORD.findall(text)


@lru_cache(maxsize=2048)  # the renderer counts its reply's words; checkers count them again
def count_words(reply: str) -> int:
    """Number of words outside fenced code blocks."""
    return len(words(prose(reply)))


def list_items(reply: str) -> list[Line]:
    """The list-item lines of the reply (outside code)."""
    return [ln for ln in classify_lines(reply) if ln.kind == "item"]


def numbered_items(reply: str) -> list[Line]:
    """The numbered list-item lines (``1.``, ``2)``) of the reply (outside code)."""
    return [ln for ln in list_items(reply) if _NUMBERED_ITEM.match(ln.text)]


def headings(reply: str) -> list[Line]:
    """The heading lines of the reply (``## X`` or a short wholly-bold line)."""
    return [ln for ln in classify_lines(reply) if ln.kind == "heading"]


def paragraphs(reply: str) -> list[str]:
    """Prose paragraphs: runs of consecutive prose lines (items, headings, code and blanks separate them)."""
    paras: list[list[str]] = [[]]
    for ln in classify_lines(reply):
        if ln.kind == "prose":
            paras[-1].append(ln.body)
        elif paras[-1]:
            paras.append([])
    return [" ".join(p) for p in paras if p]


def content_lines(reply: str) -> list[Line]:
    """Non-blank lines that are not fences, rules or code."""
    return [ln for ln in classify_lines(reply) if ln.kind not in ("blank", "fence", "rule", "code")]


_MARKUP = re.compile(r"[*_`>]+")


def strip_markup(text: str) -> str:
    """``text`` without bold/italic markers and leading quote marks, for label matching."""
    if "*" not in text and "_" not in text and "`" not in text and ">" not in text:
        return text.strip()
    return _MARKUP.sub("", text).strip()


# match an ASCII letter under re.IGNORECASE without lower-casing to it (the only such characters)
_FOLD_EXCEPTIONS = ("\u0130", "\u0131", "\u017f")


@lru_cache(maxsize=2048)
def _lowered(text: str) -> tuple[str, bool]:
    return text.lower(), not text.isascii() and any(c in text for c in _FOLD_EXCEPTIONS)


def may_contain(text: str, needles: tuple[str, ...]) -> bool:
    """False only when ``text`` holds none of ``needles`` (lower-case ASCII) case-insensitively: a cheap
    pre-filter for a case-insensitive regex scan whose every match contains one of them."""
    low, exceptional = _lowered(text)
    return exceptional or any(n in low for n in needles)


@lru_cache(maxsize=4096)
def _norm(text: str) -> str:
    return text.lower().replace("\u2019", "'").replace("\u2018", "'")


_TOKEN = re.compile(r"[a-z]+")


@lru_cache(maxsize=4096)
def _phrase_forms(phrases: tuple[str, ...]) -> tuple[tuple[str, frozenset[str]], ...]:
    """The distinct phrases as matched (normalised, stripped), each with its letter runs: a phrase can
    only occur as a whole phrase in a text whose words include all of its runs, since every run of a
    whole-phrase occurrence is bounded by non-letters."""
    return tuple((p, frozenset(_TOKEN.findall(p))) for p in sorted({_norm(p).strip() for p in phrases}))


@lru_cache(maxsize=2048)  # every checker looks for its phrases in the same reply
def _tokens(low: str) -> frozenset[str]:
    """The maximal letter runs of ``low``."""
    return frozenset(_TOKEN.findall(low))


def _first_whole(low: str, phrase: str) -> int:
    """Index of the first occurrence of ``phrase`` in ``low`` not touching a letter a-z on either side, or -1."""
    size = len(phrase)
    i = low.find(phrase)
    while i >= 0:
        if (i == 0 or not "a" <= low[i - 1] <= "z") and not "a" <= low[i + size:i + size + 1] <= "z":
            return i
        i = low.find(phrase, i + 1)
    return -1


def find_any(text: str, phrases: tuple[str, ...] | list[str]) -> int:
    """Index of the earliest whole-phrase match (case-insensitive) of any phrase, or -1."""
    if not phrases:
        return -1
    low = _norm(text)
    words = _tokens(low)
    hits = [_first_whole(low, p) for p, runs in _phrase_forms(tuple(phrases)) if runs <= words]
    return min((i for i in hits if i >= 0), default=-1)


def contains_any(text: str, phrases: tuple[str, ...] | list[str]) -> bool:
    """Whether ``text`` contains any of ``phrases`` as whole words/phrases (case-insensitive)."""
    if not phrases:
        return False
    low = _norm(text)
    words = _tokens(low)
    return any(runs <= words and _first_whole(low, p) >= 0 for p, runs in _phrase_forms(tuple(phrases)))


def count_any(text: str, phrases: tuple[str, ...] | list[str]) -> int:
    """Total number of whole-phrase matches of ``phrases`` in ``text`` (case-insensitive)."""
    low = _norm(text)
    # substring pre-filter: only phrases that occur at all are counted
    return sum(_count_whole(low, _norm(p).strip()) for p in phrases if _norm(p).strip() in low)


def _count_whole(low: str, phrase: str) -> int:
    """``len(_whole_phrase_re(phrase).findall(low))`` with ``str.find`` instead of the regex scan (whose
    leading look-behind is tried at every character): occurrences not touching a letter a-z on either
    side, left to right without overlap."""
    if not phrase:
        return len(_whole_phrase_re(phrase).findall(low))
    n, size = 0, len(phrase)
    i = low.find(phrase)
    while i >= 0:
        if (i == 0 or not "a" <= low[i - 1] <= "z") and not "a" <= low[i + size:i + size + 1] <= "z":
            n += 1
            i = low.find(phrase, i + size)
        else:
            i = low.find(phrase, i + 1)
    return n


@lru_cache(maxsize=4096)
def _whole_phrase_re(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z])" + re.escape(phrase) + r"(?![a-z])")
