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
    * Sentences: prose lines (list items without their marker) are split by
      :func:`personalization_env.language.split_sentences` (after ``.``, ``!``, ``?`` or ``…`` followed
      by whitespace, ignoring common abbreviations and decimal points). Each list item and each non-empty prose line is at least one
      sentence. A short label line ending in ``:`` (``Premises:``) is not a sentence.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

# the sentence and phrase rules are the world's shared language facts (one home: personalization_env.language)
from personalization_env.language import (contains_any, count_any, find_any, may_contain, split_sentences,  # noqa: F401
                                          words)

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")
_BOLD_LINE = re.compile(r"^\s*(\*\*|__)([^*_]{1,80})(\*\*|__)\s*:?\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)]|[a-zA-Z][.)])\s+(?=\S)")
_NUMBERED_ITEM = re.compile(r"^\s*\d{1,3}[.)]\s+(?=\S)")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_RULE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,})\s*$")
_DISPLAY_MATH = re.compile(r"^\s*(\$\$.*\$\$|\\\[.*\\\])\s*$")


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
        out.extend(split_sentences(ln.body) or [ln.body])
    return tuple(out)


def count_sentences(reply: str) -> int:
    """Number of sentences (see module rules)."""
    return len(_sentences(reply))


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
