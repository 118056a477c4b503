"""Programmatic preference checkers.

A checker is a pure function ``check(reply, ctx, **params) -> bool`` that returns True when the reply
*complies* with the preference. Checkers are registered by name with :func:`register` and run from a
:class:`~personalization_env.types.CheckSpec` with :func:`run_check`.

A checker returns True when its own precondition does not hold (e.g. "include a confidence estimate"
when the reply gives no answer, ``"final_answer" not in ctx.situations``; code-style checkers when the
reply contains no code block). What counts as a sentence, list item, heading or paragraph is defined in
:mod:`personalization_env.preferences.text`.
"""

from __future__ import annotations

import ast
import difflib
import logging
import re
from typing import Any, Callable, Protocol

from personalization_env.preferences import text as T
from personalization_env.types import CheckSpec, Preference, ReplyContext

logger = logging.getLogger(__name__)


class Checker(Protocol):
    def __call__(self, reply: str, ctx: ReplyContext, /, **params: Any) -> bool: ...


#: name -> checker function (the registry).
CHECKERS: dict[str, Checker] = {}


def register(name: str) -> Callable[[Checker], Checker]:
    """Decorator registering a checker under ``name``."""

    def deco(fn: Checker) -> Checker:
        if name in CHECKERS:
            raise ValueError(f"checker {name!r} is registered twice; pick a new name")
        CHECKERS[name] = fn
        return fn

    return deco


def get_checker(name: str) -> Checker:
    """The checker registered as ``name``; unknown names raise ``KeyError`` with a suggestion."""
    try:
        return CHECKERS[name]
    except KeyError:
        close = difflib.get_close_matches(name, CHECKERS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {sorted(CHECKERS)}"
        raise KeyError(f"unknown checker {name!r}{hint}") from None


def run_check(spec: CheckSpec, reply: str, ctx: ReplyContext) -> bool:
    """Run the checker named by ``spec`` with its params; True = the reply complies."""
    checker = CHECKERS.get(spec.name) or get_checker(spec.name)
    return bool(checker(reply, ctx, **spec.params))


def applies(pref: Preference, ctx: ReplyContext) -> bool:
    """Whether ``pref``'s condition holds for a reply in ``ctx`` (checkers handle finer preconditions)."""
    return pref.condition.applies(ctx)


def check_preference(pref: Preference, reply: str, ctx: ReplyContext) -> bool | None:
    """Verdict for one preference: None when it is not checkable, True when it doesn't apply or complies."""
    if pref.type.check is None:
        return None
    if not applies(pref, ctx):
        return True
    return run_check(pref.type.check, reply, ctx)


# --------------------------------------------------------------------------------------------------
# phrase lists (lower case, matched as whole phrases)

COURTESY = ("please", "thank you", "thanks", "happy to help", "happy to", "glad", "delighted", "my pleasure",
            "great question", "good question", "hope this helps", "hope that helps", "i hope", "appreciate",
            "kindly", "you're welcome", "of course", "feel free", "wonderful", "sorry", "apologize", "apologise",
            "apologies", "i'd be happy", "i would be happy", "lovely", "cheers")
APOLOGY = ("sorry", "apologize", "apologise", "apologies", "apology", "my apologies", "i apologize")
PREAMBLE = ("great question", "good question", "excellent question", "what a great", "sure!", "sure,", "sure thing",
            "certainly", "absolutely", "of course", "happy to help", "i'd be happy", "i would be happy",
            "glad you asked", "let me walk you through", "let me explain", "let's dive", "let us dive",
            "let's break", "let me break", "i'll walk you", "i will walk you", "i'll explain", "let's get started",
            "let me help", "here's a breakdown", "okay, so", "alright,", "ok, so", "let's take a look",
            "let me take a look")
META = ("let me walk you through", "let me explain", "let's dive", "let us dive", "let me break", "let's break this",
        "i'll walk you", "i will walk you", "as i mentioned", "now that we", "moving on", "with that in mind",
        "let's get started", "i'm going to explain", "i will explain",
        "i'll explain", "building on that", "having established")
SUGGESTION = ("you might also", "you may also want", "you might want to", "you may want to", "you could also",
              "you could try", "next step", "next steps", "as a next step", "next, you could", "next, try",
              "i'd suggest", "i would suggest", "i suggest", "i recommend", "i'd recommend", "it might be worth",
              "it may be worth", "consider trying", "you can also", "try practicing", "try practising",
              "going forward", "want me to", "would you like me to", "a good follow-up", "as a follow-up",
              "for further practice", "to go further", "you could extend", "you might explore", "try extending",
              "try applying")
CONFIRM = ("make sense", "makes sense so far", "shall i continue", "should i continue", "shall i go on",
           "should i go on", "want me to continue", "like me to continue", "before we continue",
           "before we move on", "before i continue", "before continuing", "before moving on", "ready to continue",
           "ready for the next", "shall we continue", "shall we move on", "should we continue", "okay so far",
           "ok so far", "clear so far", "good so far", "shall i proceed", "should i proceed", "continue?",
           "keep going?", "move on?", "go on?", "proceed?", "on board so far", "follow so far")
INTUITION = ("key idea", "key insight", "key principle", "big picture", "intuition", "the idea is",
             "the main idea", "the core idea", "the general principle", "general principle", "in general",
             "the underlying principle", "fundamentally", "at a high level", "high-level", "the trick is",
             "conceptually", "the principle", "whenever you see")
OUTLINE = ("here's what we'll cover", "here is what we'll cover", "here's what we will cover", "we'll cover",
           "we will cover", "i'll cover", "i will cover", "here's the plan", "here is the plan", "the plan:",
           "plan:", "outline:", "overview:", "roadmap:", "here's the outline", "here's an outline",
           "in this answer we'll", "we'll go through", "we will go through", "i'll go through", "we'll first")
EXAMPLE = ("for example", "for instance", "e.g.", "as an example", "example:", "imagine", "think of",
           "it's like", "it is like", "is like a", "analogy", "analogous", "picture a", "like a ", "such as",
           "consider a", "say you", "suppose you")
CONFIDENCE_RE = re.compile(
    r"(\b\d{1,3}(?:\.\d+)?\s?%\s*(?:confident|sure|certain|confidence|likely))"
    r"|(confiden(?:t|ce)[^.\n]{0,40}?\b\d{1,3}(?:\.\d+)?\s?%)"
    r"|(\b(?:high|moderate|medium|low|fairly high|very high)\s+confidence\b)"
    r"|(confidence(?: level)?\s*[:=]\s*(?:high|medium|moderate|low|\d))"
    r"|(\b(?:fairly|very|quite|highly|reasonably)\s+(?:confident|sure|certain)\b)",
    re.IGNORECASE)
SUMMARY = ("key takeaway", "key takeaways", "to summarize", "to summarise", "in summary", "summary:",
           "key points", "to recap", "recap:", "in a nutshell", "main takeaways", "takeaways:",
           "summary of what we covered", "let me summarize", "let me summarise")
APPROACH = ("approach 1", "approach 2", "approach a", "approach b", "option 1", "option 2", "method 1",
            "method 2", "alternatively", "another approach", "another way", "a second approach",
            "one approach", "one way", "other approach", "second option", "another option", "one option",
            "first approach", "second approach", "a different approach", "you could either", "either")
TRADEOFF = ("tradeoff", "trade-off", "tradeoffs", "trade-offs", "pros", "cons", "downside", "upside",
            "advantage", "disadvantage", "drawback", "faster", "slower", "easier", "harder", "simpler",
            "more robust", "less", "more work", "but", "whereas", "at the cost of", "costs")
ASSUMPTION = ("assume", "assuming", "assumption", "given that", "suppose", "we are given", "we're given",
              "since we know", "provided that")
STEP_MARK = ("first", "then", "next", "finally", "step 1", "step 2", "second", "after that", "therefore",
             "thus", "so ", "hence")
JUSTIFY = ("because", "since", "which means", "this works", "that's why", "so that", "therefore", "thus",
           "hence", "this follows", "it follows", "due to", "as a result")
ACK_CONTEXT = ("now that", "as you mentioned", "you mentioned", "as we discussed", "building on",
               "following up", "picking up", "since you", "given what you", "you asked", "you've",
               "you have", "as you said", "you said", "from your message", "your question", "you're asking",
               "you are asking", "thanks for", "going back to", "to your point")
TRANSITION = ("with that in mind", "building on", "this means", "which means", "that means", "from there", "that gives",
              "so ", "next,", "then,", "then ", "now,", "after that", "once we", "with that", "that leaves",
              "this tells us", "as a result", "putting it together", "in turn")
FILLER = ("basically", "essentially", "it's worth noting", "it is worth noting", "needless to say",
          "actually", "just to be clear", "at the end of the day", "in order to", "it goes without saying",
          "literally", "kind of", "sort of")
ENCOURAGE = ("nice work", "well done", "great job", "good job", "you're on the right track",
             "you are on the right track", "good thinking", "nice thinking", "great progress", "you've got this",
             "keep it up", "nice effort", "you're doing great", "good instinct", "great start")
INVITE = ("let me know if", "any questions", "ask if", "feel free to ask", "if anything is unclear",
          "if any step is unclear", "happy to clarify", "questions?", "if you have questions", "ask me",
          "if something is unclear", "if any part is unclear")
RESTATE = ("you're asking", "you are asking", "you want to", "you'd like to", "the question asks",
           "the problem asks", "we need to", "we're asked", "we are asked", "the task is", "the goal is",
           "you asked", "the question is", "we want to", "this asks")
ELIMINATE = ("incorrect", "wrong", "rule out", "ruled out", "eliminate", "eliminated", "can't be",
             "cannot be", "doesn't fit", "does not fit", "is out", "don't work", "do not work", "fails")
ERROR_ACK = ("you're right", "you are right", "good catch", "my mistake", "i made a mistake", "i made an error",
             "that was wrong", "i was wrong", "my error", "you're correct", "you are correct", "i got that wrong",
             "that's on me", "i erred", "thanks for catching")
ERROR_EXPLAIN = ("the error was", "the mistake was", "went wrong", "i incorrectly", "i mistakenly",
                 "the issue was", "the problem was", "the bug was", "i mixed up", "i confused", "i forgot",
                 "i misread", "i dropped", "i miscounted", "i misapplied", "error came from", "mistake came from",
                 "the slip was", "wrongly")
REDERIVE = ("from scratch", "start over", "starting over", "redo", "re-derive", "rederive", "recompute",
            "re-compute", "starting again", "start again", "from the beginning", "fresh start", "rework",
            "re-solve", "resolve it cleanly")
CORRECTION_MARK = ("correction:", "corrected", "what changed", "changed:", "the fix:", "updated:", "fixed:",
                   "instead of", "changes:", "the change is", "updated answer", "corrected answer")
VERIFY = ("check:", "let's check", "let me check", "checking", "verify", "verification", "verifying",
          "substituting", "substitute", "plugging", "plug it back", "plug back", "sanity check", "double-check",
          "double check", "confirms", "confirm:", "checks out")
COMPLEXITY_RE = re.compile(r"\bO\([^)]{1,30}\)|time complexity|space complexity|runs in linear|runs in quadratic"
                           r"|linear time|quadratic time|logarithmic time|constant time", re.IGNORECASE)
_COMPLEXITY_NEEDLES = ("o(", "complexity", "runs in", "linear time", "quadratic time", "logarithmic time",
                       "constant time")  # one of them is in every COMPLEXITY_RE match
LATEX_RE = re.compile(r"(?<!\\)\$[^$\n]+?(?<!\\)\$|\\\(.+?\\\)|\\\[.+?\\\]|\$\$.+?\$\$", re.DOTALL)
LATEX_CMD_RE = re.compile(r"\\(frac|sqrt|cdot|times|le|ge|leq|geq|neq|pi|sum|int|alpha|beta|theta|left|right|"
                          r"text|mathrm|binom|infty|approx|pm)\b")
EMOJI_RE = re.compile("[\U0001F300-\U0001FAFF\U00002600-\U000027BF\U0001F000-\U0001F2FF\U0001F900-\U0001F9FF"
                      "\u2B50\u2B55\u231A-\u231B\u23E9-\u23FA]")
LETTER_RE = re.compile(r"\(([A-E])\)|\b(?i:option|answer|choice)\s*(?:is\s*)?:?\s*\(?\*{0,2}([A-E])\b"
                       r"|^\s*\**\(?([A-E])[).:]|\*\*\(?([A-E])\)?\*\*")
_SNAKE = re.compile(r"^_?[a-z][a-z0-9_]*$|^_$|^[A-Z][A-Z0-9_]*$")


def _needs_answer(ctx: ReplyContext) -> bool:
    return "final_answer" in ctx.situations


_LABELLED_TAIL = re.compile(r"^\s*[*_>]*\s*(tl;?dr|summary|in short|bottom line|answer|final answer|conclusion"
                            r"|confidence|word count)\b", re.IGNORECASE)


def _tail_sentences(reply: str, n: int) -> list[str]:
    """Last ``n`` sentences, after dropping trailing labelled lines (TL;DR:, Answer:, Conclusion: ...)."""
    lines = [ln for ln in T.content_lines(reply) if ln.kind in ("prose", "item")]
    while lines and _LABELLED_TAIL.match(T.strip_markup(lines[-1].body)):
        lines.pop()
    sents: list[str] = []
    for ln in lines[-n:]:
        sents.extend(T.split_sentences(ln.body) or [ln.body])
    return sents[-n:]


def _lead_sentences(reply: str, n: int) -> list[str]:
    return T.sentences(reply)[:n]


_FIRST_STEP = re.compile(r"\s*(first|step 1)\b", re.I)
_EQUATION = re.compile(r"\S\s*=\s*\S")


def _first_content_position(reply: str) -> int:
    """Character offset of the first "solution content": a list item, equation, code fence or table."""
    pos = len(reply)
    offset = 0
    for raw in reply.split("\n"):
        ln = T._classify_lines(raw)[0] if raw.strip() else None
        if ln is not None and (ln.kind in ("item", "fence", "table", "math") or _FIRST_STEP.match(raw)):
            pos = offset
            break
        eq = _EQUATION.search(raw) if "=" in raw else None  # (pre-filter: the regex needs a "=")
        if eq:
            pos = offset + eq.start()
            break
        offset += len(raw) + 1
    return pos


# --------------------------------------------------------------------------------------------------
# structure and format


@register("has_list")
def has_list(reply: str, ctx: ReplyContext, min: int = 1) -> bool:
    """At least ``min`` list items ('-', '*', '•' or numbered), outside code."""
    return len(T.list_items(reply)) >= min


@register("no_list")
def no_list(reply: str, ctx: ReplyContext) -> bool:
    """No bullet or numbered list items outside code (prose only)."""
    return not T.list_items(reply)


@register("has_numbered_steps")
def has_numbered_steps(reply: str, ctx: ReplyContext, min: int = 2) -> bool:
    """At least ``min`` numbered list items ('1.', '2)')."""
    return len(T.numbered_items(reply)) >= min


@register("step_labels")
def step_labels(reply: str, ctx: ReplyContext, min: int = 2) -> bool:
    """At least ``min`` distinct 'Step N' labels."""
    p = T.prose(reply)
    labels = re.findall(r"\bstep\s+(\d+)\s*[:.)]", p, re.IGNORECASE) if T.may_contain(p, ("step",)) else []
    return len(set(labels)) >= min


@register("has_headings")
def has_headings(reply: str, ctx: ReplyContext, min: int = 2) -> bool:
    """At least ``min`` section headings (markdown '#' lines or short wholly-bold lines)."""
    return len(T.headings(reply)) >= min


@register("max_sentences")
def max_sentences(reply: str, ctx: ReplyContext, n: int = 3) -> bool:
    """At most ``n`` sentences of prose and list items (code, headings, tables not counted)."""
    return T.count_sentences(reply) <= n


@register("max_words")
def max_words(reply: str, ctx: ReplyContext, n: int = 120) -> bool:
    """At most ``n`` words outside code blocks."""
    return T.count_words(reply) <= n


@register("min_words")
def min_words(reply: str, ctx: ReplyContext, n: int = 100) -> bool:
    """At least ``n`` words outside code blocks."""
    return T.count_words(reply) >= n


@register("max_paragraph_sentences")
def max_paragraph_sentences(reply: str, ctx: ReplyContext, n: int = 3) -> bool:
    """Every prose paragraph has at most ``n`` sentences."""
    return all(len(T.split_sentences(p)) <= n for p in T.paragraphs(reply))


@register("has_bold")
def has_bold(reply: str, ctx: ReplyContext, min: int = 1) -> bool:
    """At least ``min`` bold spans (``**x**`` or ``__x__``) in prose (not counting headings)."""
    if "**" not in reply and "__" not in reply:
        return 0 >= min
    lines = [ln.text for ln in T.classify_lines(reply) if ln.kind in ("prose", "item", "table")]
    return len(re.findall(r"\*\*[^*\n]+\*\*|__[^_\n]+__", "\n".join(lines))) >= min


@register("no_markdown")
def no_markdown(reply: str, ctx: ReplyContext) -> bool:
    """No headings, bold/italic emphasis or tables (plain text; lists and code blocks allowed)."""
    lines = T.classify_lines(reply)
    if any(ln.kind in ("heading", "table") for ln in lines):
        return False
    if "*" not in reply and "__" not in reply:
        return True
    text = "\n".join(ln.text for ln in lines if ln.kind in ("prose", "item"))
    return not re.search(r"\*\*[^*\n]+\*\*|__[^_\n]+__|(?<![\w*])\*[^*\s][^*\n]*\*(?!\w)", text)


@register("has_table")
def has_table(reply: str, ctx: ReplyContext) -> bool:
    """A markdown table: a header row followed by a separator row like ``|---|---|``."""
    rows = [ln.text for ln in T.classify_lines(reply) if ln.kind == "table"]
    return len(rows) >= 2 and any(re.match(r"^\s*\|(\s*:?-{2,}:?\s*\|)+\s*$", r) for r in rows)


@register("no_emoji")
def no_emoji(reply: str, ctx: ReplyContext) -> bool:
    """No emoji characters."""
    return reply.isascii() or not EMOJI_RE.search(reply)


@register("ends_with_tldr")
def ends_with_tldr(reply: str, ctx: ReplyContext) -> bool:
    """The last non-empty line is a one-line 'TL;DR' (markup and a list marker allowed)."""
    lines = T.content_lines(reply)
    return bool(lines) and bool(re.match(r"^\s*(?:[-*]\s+)?[*_]*\s*tl;?\s*dr\b", lines[-1].text, re.IGNORECASE))


@register("ends_with_summary_line")
def ends_with_summary_line(reply: str, ctx: ReplyContext) -> bool:
    """The last non-empty line is a one-line summary ('TL;DR', 'Summary:', 'In short:', 'Bottom line:')."""
    lines = T.content_lines(reply)
    return bool(lines) and bool(re.match(r"^\s*[*_]*\s*(tl;?\s*dr|summary|in short|bottom line|in summary)\b",
                                         T.strip_markup(lines[-1].text), re.IGNORECASE))


@register("has_summary")
def has_summary(reply: str, ctx: ReplyContext) -> bool:
    """Mentions key takeaways or a summary/recap ('Key takeaways', 'To summarize', 'Recap:')."""
    return T.contains_any(T.prose(reply), SUMMARY)


@register("starts_with_outline")
def starts_with_outline(reply: str, ctx: ReplyContext) -> bool:
    """An outline marker ('Here's what we'll cover', 'Plan:') appears before the first solution content.

    Solution content is the first list item, equation, code fence or table outside the outline itself;
    the outline must also fall in the first third of the reply. Applies when the reply gives an answer.
    """
    if not _needs_answer(ctx):
        return True
    pos = T.find_any(reply, OUTLINE)
    if pos < 0:
        return False
    before = reply[:pos]
    return _first_content_position(before + "\n") >= len(before) and pos <= max(300, len(reply) // 3)


@register("intuition_first")
def intuition_first(reply: str, ctx: ReplyContext) -> bool:
    """A big-picture/principle marker ('The key idea', 'In general') precedes the first calculation.

    The first calculation is the first list item, equation (``x = y``), code fence or 'First, ...' line.
    """
    pos = T.find_any(reply, INTUITION)
    return pos >= 0 and pos < _first_content_position(reply) and pos <= max(400, len(reply) // 2)


@register("step_by_step_reasoning")
def step_by_step_reasoning(reply: str, ctx: ReplyContext) -> bool:
    """States an assumption/given, shows at least two explicit steps and justifies the conclusion."""
    p = T.prose(reply)
    steps = len(T.list_items(reply)) + T.count_any(p, STEP_MARK)
    return T.contains_any(p, ASSUMPTION) and steps >= 2 and T.contains_any(p, JUSTIFY)


@register("has_justification")
def has_justification(reply: str, ctx: ReplyContext, min: int = 2) -> bool:
    """At least ``min`` justification phrases ('because', 'since', 'which means', 'therefore' ...)."""
    return T.count_any(T.prose(reply), JUSTIFY) >= min


@register("has_example")
def has_example(reply: str, ctx: ReplyContext) -> bool:
    """When explaining, includes an example, analogy or metaphor ('For example', 'imagine', 'like a')."""
    if "explanation" not in ctx.situations:
        return True
    return T.contains_any(T.prose(reply), EXAMPLE)


@register("has_confidence")
def has_confidence(reply: str, ctx: ReplyContext) -> bool:
    """When the reply gives an answer, it states a confidence ('I'm 90% confident', 'Confidence: high')."""
    if not _needs_answer(ctx):
        return True
    p = T.prose(reply)
    return T.may_contain(p, ("%", "confiden", "sure", "certain")) and bool(CONFIDENCE_RE.search(p))


@register("multiple_approaches")
def multiple_approaches(reply: str, ctx: ReplyContext) -> bool:
    """When answering, names at least two approaches with a tradeoff.

    Two approaches: two markers ('Option 1', 'Alternatively', 'another approach' ...) or one
    "you could use X ... or Y" sentence; a tradeoff: 'faster', 'but', 'downside', 'pros/cons' ...
    """
    if not _needs_answer(ctx):
        return True
    p = T.prose(reply)
    either_or = re.search(r"\b(could|can|might)\s+(use|try|go with|do|either|pick)\b[^.\n]{3,}?\bor\b", p, re.I)
    return T.count_any(p, APPROACH) + 2 * bool(either_or) >= 2 and T.contains_any(p, TRADEOFF)


# --------------------------------------------------------------------------------------------------
# tone, directness, proactivity, guidance


@register("has_courtesy")
def has_courtesy(reply: str, ctx: ReplyContext) -> bool:
    """Contains a courtesy marker or pleasantry ('please', 'thanks', 'happy to help', 'hope this helps')."""
    return T.contains_any(T.prose(reply), COURTESY)


@register("no_pleasantries")
def no_pleasantries(reply: str, ctx: ReplyContext) -> bool:
    """No pleasantries, apologies or courtesy markers (see ``COURTESY``)."""
    return not T.contains_any(T.prose(reply), COURTESY)


@register("no_preamble")
def no_preamble(reply: str, ctx: ReplyContext) -> bool:
    """No preamble in the first two sentences and no meta-commentary or narrating transitions anywhere."""
    lead = " ".join(_lead_sentences(reply, 2))
    return not T.contains_any(lead, PREAMBLE) and not T.contains_any(T.prose(reply), META)


@register("narrative_flow")
def narrative_flow(reply: str, ctx: ReplyContext) -> bool:
    """Acknowledges previous context, uses a transition, and has at least two sentences of prose."""
    p = T.prose(reply)
    prose_sents = sum(len(T.split_sentences(x)) for x in T.paragraphs(reply))
    return T.contains_any(p, ACK_CONTEXT) and T.contains_any(p, TRANSITION) and prose_sents >= 2


@register("no_suggestions")
def no_suggestions(reply: str, ctx: ReplyContext) -> bool:
    """No unsolicited suggestions or next steps ('You might also...', 'Next steps:', 'I'd recommend')."""
    return not T.contains_any(T.prose(reply), SUGGESTION)


@register("ends_with_suggestion")
def ends_with_suggestion(reply: str, ctx: ReplyContext, window: int = 3) -> bool:
    """A suggestion/next step appears in the last ``window`` sentences (trailing TL;DR/Answer lines skipped)."""
    return T.contains_any(" ".join(_tail_sentences(reply, window)), SUGGESTION)


@register("asks_confirmation")
def asks_confirmation(reply: str, ctx: ReplyContext, window: int = 3) -> bool:
    """On multi-step problems: one increment, ending (last ``window`` sentences) with a confirmation question.

    The question must contain '?' and a check-in phrase ('Does this make sense', 'Shall I continue').
    """
    if "multi_step" not in ctx.situations:
        return True
    tail = [s for s in _tail_sentences(reply, window) if "?" in s]
    return any(T.contains_any(s, CONFIRM) for s in tail)


@register("no_confirmation_question")
def no_confirmation_question(reply: str, ctx: ReplyContext) -> bool:
    """No check-in questions asking permission to continue ('Should I continue?', 'Does this make sense?')."""
    qs = [s for s in T.sentences(reply) if "?" in s]
    return not any(T.contains_any(s, CONFIRM) for s in qs)


@register("no_end_question")
def no_end_question(reply: str, ctx: ReplyContext) -> bool:
    """The reply does not end with a question (last non-empty line does not end with '?')."""
    lines = T.content_lines(reply)
    return not lines or not T.strip_markup(lines[-1].text).rstrip().endswith("?")


@register("invites_followup")
def invites_followup(reply: str, ctx: ReplyContext) -> bool:
    """Invites follow-up questions ('Let me know if...', 'Ask if any step is unclear')."""
    return T.contains_any(T.prose(reply), INVITE)


@register("encouraging")
def encouraging(reply: str, ctx: ReplyContext) -> bool:
    """Contains encouragement ('Nice work', 'You're on the right track')."""
    return T.contains_any(T.prose(reply), ENCOURAGE)


@register("restates_problem")
def restates_problem(reply: str, ctx: ReplyContext, window: int = 3) -> bool:
    """One of the first ``window`` sentences restates the task ('The problem asks...', 'You want to...')."""
    return T.contains_any(" ".join(_lead_sentences(reply, window)), RESTATE)


@register("no_filler")
def no_filler(reply: str, ctx: ReplyContext) -> bool:
    """No filler words ('basically', 'essentially', 'it's worth noting', 'actually', 'in order to')."""
    return not T.contains_any(T.prose(reply), FILLER)


@register("answer_first")
def answer_first(reply: str, ctx: ReplyContext) -> bool:
    """When answering, the first sentence states the answer.

    It must mention 'answer'/'result'/'final', a ``\\boxed{}`` or an option letter '(B)', or read
    "... is/equals <value>" without starting like a solution step ('First', 'Let', 'We', 'To').
    """
    if not _needs_answer(ctx):
        return True
    first = _lead_sentences(reply, 1)
    if not first:
        return False
    s = first[0]
    if re.search(r"answer|\\boxed|result|\(\s*[A-E]\s*\)|final", s, re.IGNORECASE):
        return True
    stepwise = re.match(r"\W*(first|let|let's|to|start|we|begin|step)\b", s, re.IGNORECASE)
    return not stepwise and bool(re.search(r"\b(is|are|equals|=)\s+\**\$?[-\d(A-Z\\]", s))


# --------------------------------------------------------------------------------------------------
# code


def _python_blocks(reply: str) -> list[str]:
    return [code for lang, code in T.code_blocks(reply) if lang.lower() in ("", "python", "py", "python3")]


def _functions(reply: str) -> list[ast.FunctionDef] | None:
    """FunctionDefs of all python code blocks, or None when there is no parsable code."""
    funcs: list[ast.FunctionDef] = []
    parsed = False
    for code in _python_blocks(reply):
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        parsed = True
        funcs.extend(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return funcs if parsed else None


@register("code_type_hints")
def code_type_hints(reply: str, ctx: ReplyContext) -> bool:
    """Every function in the reply's Python code annotates all parameters (except self/cls) and its return."""
    funcs = _functions(reply)
    if not funcs:
        return True
    for f in funcs:
        args = [a for a in f.args.args + f.args.kwonlyargs + f.args.posonlyargs if a.arg not in ("self", "cls")]
        if f.returns is None or any(a.annotation is None for a in args):
            return False
    return True


@register("code_docstring")
def code_docstring(reply: str, ctx: ReplyContext) -> bool:
    """Every function in the reply's Python code has a docstring."""
    funcs = _functions(reply)
    return not funcs or all(ast.get_docstring(f) for f in funcs)


def _comment_lines(reply: str) -> int:
    n = 0
    for code in _python_blocks(reply):
        for line in code.split("\n"):
            stripped = re.sub(r"(\"[^\"]*\"|'[^']*')", "", line)
            if "#" in stripped and not stripped.strip().startswith("#!"):
                n += 1
    return n


@register("no_code_comments")
def no_code_comments(reply: str, ctx: ReplyContext) -> bool:
    """No '#' comments inside the reply's code blocks."""
    return _comment_lines(reply) == 0


@register("code_comments")
def code_comments(reply: str, ctx: ReplyContext, min: int = 2) -> bool:
    """At least ``min`` comment lines in the reply's code (True when the reply has no code)."""
    return not _python_blocks(reply) or _comment_lines(reply) >= min


@register("snake_case_names")
def snake_case_names(reply: str, ctx: ReplyContext) -> bool:
    """Function, parameter and assigned variable names are snake_case (UPPER_CASE constants allowed)."""
    names: list[str] = []
    for code in _python_blocks(reply):
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for n in ast.walk(tree):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.append(n.name)
                names.extend(a.arg for a in n.args.args + n.args.kwonlyargs)
            elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                names.append(n.id)
    return all(_SNAKE.match(x) for x in names)


def _defined_and_called(reply: str) -> tuple[set[str], set[str]]:
    defined: set[str] = set()
    called: set[str] = set()
    for code in _python_blocks(reply):
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for n in tree.body:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                defined.add(n.name)
            else:
                called.update(c.func.id for c in ast.walk(n)
                              if isinstance(c, ast.Call) and isinstance(c.func, ast.Name))
    return defined, called


@register("code_usage_example")
def code_usage_example(reply: str, ctx: ReplyContext) -> bool:
    """A function defined in the code is called at top level (an example call)."""
    defined, called = _defined_and_called(reply)
    return not defined or bool(defined & called)


@register("code_main_guard")
def code_main_guard(reply: str, ctx: ReplyContext) -> bool:
    """Code that defines a function has an ``if __name__ == "__main__":`` block."""
    blocks = _python_blocks(reply)
    if not any(re.search(r"^\s*def\s", c, re.M) for c in blocks):
        return True
    return any(re.search(r"""if\s+__name__\s*==\s*['"]__main__['"]\s*:""", c) for c in blocks)


@register("code_first")
def code_first(reply: str, ctx: ReplyContext, max_lines: int = 1) -> bool:
    """The first code block comes before any explanation (at most ``max_lines`` short lines before it)."""
    lines = T.classify_lines(reply)
    if not any(ln.kind == "fence" for ln in lines):
        return True
    before = 0
    for ln in lines:
        if ln.kind == "fence":
            return True
        if ln.kind not in ("blank", "heading"):
            before += 1
            if before > max_lines or len(ln.body.split()) > 12:
                return False
    return True


@register("mentions_complexity")
def mentions_complexity(reply: str, ctx: ReplyContext) -> bool:
    """States time/space complexity (big-O or 'linear time')."""
    p = T.prose(reply)
    return T.may_contain(p, _COMPLEXITY_NEEDLES) and bool(COMPLEXITY_RE.search(p))


@register("single_code_block")
def single_code_block(reply: str, ctx: ReplyContext) -> bool:
    """At most one fenced code block."""
    return len(T.code_blocks(reply)) <= 1


@register("code_language_tags")
def code_language_tags(reply: str, ctx: ReplyContext) -> bool:
    """Every fenced code block names its language (```python)."""
    return all(lang for lang, _ in T.code_blocks(reply))


@register("mentions_edge_cases")
def mentions_edge_cases(reply: str, ctx: ReplyContext) -> bool:
    """Mentions edge cases / corner cases handled (e.g. empty input)."""
    return T.contains_any(T.prose(reply), ("edge case", "edge cases", "corner case", "corner cases", "empty input",
                                           "empty list", "boundary case"))


# --------------------------------------------------------------------------------------------------
# math


@register("has_latex")
def has_latex(reply: str, ctx: ReplyContext) -> bool:
    """Math is typeset in LaTeX: at least one ``$...$``, ``\\(...\\)``, ``\\[...\\]`` or ``$$...$$`` span."""
    if "$" not in reply and "\\" not in reply:
        return False
    return bool(LATEX_RE.search(T.prose(reply) + "\n" + "\n".join(
        ln.text for ln in T.classify_lines(reply) if ln.kind == "math")))


@register("no_latex")
def no_latex(reply: str, ctx: ReplyContext) -> bool:
    """No LaTeX delimiters or commands in the prose (a ``\\boxed{...}`` answer marker is tolerated)."""
    if "$" not in reply and "\\" not in reply:
        return True
    lines = [ln.text for ln in T.classify_lines(reply) if ln.kind in ("prose", "item", "math", "heading", "table")]
    text = re.sub(r"\\boxed\{[^{}]*\}", "", "\n".join(lines))
    return not LATEX_RE.search(text) and not LATEX_CMD_RE.search(text)


@register("has_display_math")
def has_display_math(reply: str, ctx: ReplyContext) -> bool:
    """At least one equation on its own line as display math (``$$...$$`` or ``\\[...\\]``)."""
    if "$$" not in reply and "\\[" not in reply:
        return False
    return any(ln.kind == "math" for ln in T.classify_lines(reply)) or bool(
        re.search(r"^\s*\$\$\s*$[\s\S]+?^\s*\$\$\s*$", reply, re.M))


@register("has_boxed")
def has_boxed(reply: str, ctx: ReplyContext) -> bool:
    """When answering, the final answer is in ``\\boxed{...}``."""
    return not _needs_answer(ctx) or "\\boxed{" in reply


@register("defines_variables")
def defines_variables(reply: str, ctx: ReplyContext) -> bool:
    """Introduces a variable explicitly ('Let x be ...', 'where n is ...', 'denote ... by')."""
    p = T.prose(reply)
    return T.may_contain(p, ("let", "where", "denote")) and bool(re.search(
        r"\blet\s+\$?\\?\(?[A-Za-z](?:_\w+)?\$?\\?\)?\s+(?:be|denote|represent|stand|=)"
        r"|\bwhere\s+\$?[A-Za-z](?:_\w+)?\$?\s+(?:is|denotes|=)|\bdenote\b", p, re.IGNORECASE))


@register("has_verification")
def has_verification(reply: str, ctx: ReplyContext) -> bool:
    """When answering, checks the result ('Check: ...', 'substituting back', 'verify')."""
    if not _needs_answer(ctx):
        return True
    return T.contains_any(T.prose(reply), VERIFY)


# --------------------------------------------------------------------------------------------------
# domain-specific and artifacts


@register("letter_first")
def letter_first(reply: str, ctx: ReplyContext) -> bool:
    """When answering: the option letter ('(B)', 'Answer: B') comes within the first 40 characters of the first sentence."""
    if not _needs_answer(ctx):
        return True
    first = _lead_sentences(reply, 1)
    m = LETTER_RE.search(first[0]) if first else None
    return m is not None and m.start() <= 40


@register("eliminates_options")
def eliminates_options(reply: str, ctx: ReplyContext) -> bool:
    """Says why other options are wrong ('rule out', 'incorrect', 'eliminate')."""
    return T.contains_any(T.prose(reply), ELIMINATE)


@register("premises_first")
def premises_first(reply: str, ctx: ReplyContext) -> bool:
    """Lists the premises ('Premises:', 'Given:', 'We know:') before the reasoning/conclusion."""
    p = T.prose(reply)
    pos = T.find_any(p, ("premises", "premise", "given:", "we know:", "facts:", "the givens"))
    if pos < 0:
        return False
    concl = T.find_any(p, ("therefore", "thus", "so the answer", "conclusion", "hence", "the answer"))
    return concl < 0 or pos < concl


_CONCLUSION_LINE = re.compile(r"conclusion\s*:", re.IGNORECASE)
_ANSWER_LINE = re.compile(r"(final\s+)?answer\s*:", re.IGNORECASE)


@register("conclusion_line")
def conclusion_line(reply: str, ctx: ReplyContext) -> bool:
    """A line starting with 'Conclusion:'."""
    return any(_CONCLUSION_LINE.match(T.strip_markup(ln.body))
               for ln in T.content_lines(reply) if ln.kind in ("prose", "item"))


@register("word_count_stated")
def word_count_stated(reply: str, ctx: ReplyContext) -> bool:
    """States a word count ('Word count: 120', '(about 80 words)')."""
    p = T.prose(reply)
    return T.may_contain(p, ("word count", "words")) and bool(
        re.search(r"word count|\b\d+\s+words\b", p, re.IGNORECASE))


@register("answer_line")
def answer_line(reply: str, ctx: ReplyContext) -> bool:
    """When answering, a line starts with 'Answer:' or 'Final answer:'."""
    if not _needs_answer(ctx):
        return True
    return any(_ANSWER_LINE.match(T.strip_markup(ln.body))
               for ln in T.content_lines(reply) if ln.kind in ("prose", "item"))


@register("bold_answer")
def bold_answer(reply: str, ctx: ReplyContext) -> bool:
    """When answering, the answer is bolded: a bold span containing a digit, '\\boxed', '(X)' or 'answer'."""
    if not _needs_answer(ctx):
        return True
    if "**" not in reply:
        return False
    spans = re.findall(r"\*\*([^*\n]+)\*\*", T.prose(reply))
    return any(re.search(r"\d|\\boxed|\([A-E]\)|answer", s, re.IGNORECASE) for s in spans)


# --------------------------------------------------------------------------------------------------
# error correction


@register("acknowledges_error")
def acknowledges_error(reply: str, ctx: ReplyContext) -> bool:
    """Explicitly acknowledges the mistake ('You're right', 'Good catch', 'My mistake')."""
    return T.contains_any(T.prose(reply), ERROR_ACK)


@register("max_apologies")
def max_apologies(reply: str, ctx: ReplyContext, n: int = 1) -> bool:
    """At most ``n`` apologies ('sorry', 'I apologize', 'apologies')."""
    return T.count_any(T.prose(reply), ("sorry", "apologize", "apologise", "apologies", "apology")) <= n


@register("explains_error")
def explains_error(reply: str, ctx: ReplyContext) -> bool:
    """Says what went wrong before ('The error was...', 'I mixed up...')."""
    return T.contains_any(T.prose(reply), ERROR_EXPLAIN)


@register("rederives")
def rederives(reply: str, ctx: ReplyContext) -> bool:
    """Redoes the solution from scratch ('Let's redo this from scratch') and shows at least two steps."""
    p = T.prose(reply)
    return T.contains_any(p, REDERIVE) and (len(T.list_items(reply)) + T.count_any(p, STEP_MARK)) >= 2


@register("marks_correction")
def marks_correction(reply: str, ctx: ReplyContext) -> bool:
    """Clearly marks what changed ('Correction:', 'What changed:', 'instead of')."""
    return T.contains_any(T.prose(reply), CORRECTION_MARK)
