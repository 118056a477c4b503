"""The scripted agent's "style model": compose a chat reply from content plus style directives.

A scripted stand-in for an agent LLM decides *what* to say (:class:`ReplyContent`) and which
preferences it follows (a directive mapping, see :func:`directives_for`); :func:`render` turns both
into markdown text. Every optional element that no directive fixes is drawn from ``habits`` (the
model's default style, :data:`DEFAULT_HABITS`), so a model that does not know a preference violates it
at a realistic rate.

Directive keys (bool unless stated; a directive fixes the element, a missing key falls back to the habit
probability of the same name):

Opening and tone
    ``preamble`` filler opener ("Great question! Let me walk you through this."); ``courtesy`` friendly
    courtesy closer ("I hope this helps!"); ``acknowledge`` a sentence acknowledging the user's previous
    message; ``transitions`` narrating connectives ("With that in mind, ..."); ``restate`` restate the
    task first; ``encourage`` an encouraging remark; ``filler`` filler words ("Basically, ...");
    ``emoji`` an emoji.
Structure
    ``outline`` "Here's what we'll cover" before the solution; ``intuition_first`` the key principle
    before the steps; ``assumptions`` state assumptions; ``show_steps`` explicit "First/Then/Finally"
    connectives; ``justify`` justification sentences; ``bullets`` / ``numbered`` steps as a bulleted /
    numbered list; ``step_labels`` "Step N:" labels; ``headings`` markdown section headings;
    ``bold_terms`` a bold key term; ``markdown`` (False = no headings, bold or tables);
    ``short_paragraphs`` at most two sentences per paragraph; ``answer_first`` the answer is the first
    sentence; ``premises_first`` list premises before reasoning.
Length
    ``concise`` compact mode (steps in one sentence, optional extras dropped); ``max_sentences`` (int)
    and ``max_words`` (int) hard caps (imply ``concise``; sentences are merged and steps dropped until
    they hold); ``min_words`` (int) elaborate until the reply has that many words.
Extras
    ``example`` an example/analogy; ``confidence`` a confidence estimate with the answer;
    ``alternatives`` other approaches with tradeoffs; ``eliminate_options`` why other options are wrong;
    ``verify`` a check of the result; ``boxed`` the answer value in ``\\boxed{}`` (math); ``define_vars`` "Let x be ..."; ``latex`` math in ``$...$``;
    ``display_math`` a ``$$...$$`` line; ``edge_cases`` mention edge cases; ``complexity`` state the
    time complexity; ``table`` a small markdown table of the steps.
Endings
    ``takeaways`` key takeaways; ``invite_questions`` "Let me know if any step is unclear.";
    ``suggestion`` a proactive next step; ``confirm_question`` a check-in question ("Does this make
    sense so far?"); ``incremental`` cover at most two steps, hold the answer back and ask to continue;
    ``conclusion_line`` "Conclusion: ..."; ``word_count`` "Word count: N"; ``answer_line``
    "Answer: X"; ``bold_answer`` the answer in bold; ``summary_line`` "In short: ..."; ``tldr`` a final
    "TL;DR: ..." line.
Code (code tasks)
    ``type_hints``, ``docstring``, ``comments`` (True adds comment lines, False strips them),
    ``naming`` ("snake" keeps snake_case; otherwise the ``camel_case`` habit may rename),
    ``usage_example`` an example call, ``main_guard`` the example under ``if __name__ == "__main__":``,
    ``code_first`` code before any prose, ``code_blocks`` (int, 1 = one fenced block),
    ``fence_language`` tag fences with ``python``.
Error correction (content.correcting)
    ``ack_error`` "You're right, I made a mistake."; ``apology`` (int, most apologies allowed; habit
    gives 0-2); ``explain_error`` say what went wrong; ``rederive`` redo from scratch;
    ``mark_correction`` "Correction: ...".

Default violation rates: a model that knows no preference violates each checkable type in a good
share of its renders (tests/llm/test_render.py measures the 20 MSC types against a fixed band), and
rendering the merged directives of two non-conflicting checkable types satisfies both checkers in most
renders; the failing pairs are mostly a tight length cap (three sentences, two sentences around code)
combined with an element that needs its own sentence.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Mapping

import numpy as np

from personalization_env.preferences import text as T
from personalization_env.types import PreferenceType

logger = logging.getLogger(__name__)


@dataclass
class ReplyContent:
    """What a reply says, independent of style.

    Args:
        task_kind: kind of the session's task.
        steps: plain solution sentences for this reply (no numbering/markdown).
        answer_text: sentence stating the final answer, kept verbatim (None when no answer yet).
        intuition: one sentence of high-level principle.
        example: one sentence example/analogy.
        code: canonical Python function source ("def snake_name(params):" + 4-space body lines).
        alternatives: (approach, tradeoff) pairs.
        confidence: the model's confidence in the answer (0-1).
        acknowledgement: a sentence acknowledging the user's previous message ("" if none).
        partial: True when this reply covers only part of the steps (incremental mode).
        answer: the bare answer value ("12", "B"); extracted from ``answer_text`` when None.
        correcting: True when the user just pointed out a mistake.
        restatement: one sentence restating the task ("" = a generic one).
        premises: premises of a logic task ("" = the first step).
        example_call: an example call of the code's function, e.g. ``"f([1, 2])"`` (None = built one).
        check_in: True when the reply stops short of the answer to hand the turn back (multi-turn
            solving): it closes with a check-in question, placed before any TL;DR or summary line,
            unless a directive rules the question out (``confirm_question`` False).
    """

    task_kind: str
    steps: list[str]
    answer_text: str | None
    intuition: str = ""
    example: str = ""
    code: str | None = None
    alternatives: list[tuple[str, str]] = field(default_factory=list)
    confidence: float = 0.8
    acknowledgement: str = ""
    partial: bool = False
    answer: str | None = None
    correcting: bool = False
    restatement: str = ""
    premises: list[str] = field(default_factory=list)
    example_call: str | None = None
    check_in: bool = False


#: Probability of each optional element when no directive fixes it (the default model's style).
DEFAULT_HABITS: Mapping[str, float] = {
    "preamble": 0.5, "courtesy": 0.35, "acknowledge": 0.55, "transitions": 0.45, "restate": 0.25,
    "encourage": 0.15, "filler": 0.3, "emoji": 0.1,
    "outline": 0.6, "intuition_first": 0.55, "assumptions": 0.6, "show_steps": 0.6, "justify": 0.5,
    "bullets": 0.3, "numbered": 0.35, "step_labels": 0.15, "headings": 0.6, "bold_terms": 0.3,
    "markdown": 1.0, "short_paragraphs": 0.4, "answer_first": 0.2, "premises_first": 0.3,
    "concise": 0.45, "example": 0.55, "confidence": 0.5, "alternatives": 0.55, "eliminate_options": 0.4,
    "verify": 0.3, "boxed": 0.3, "define_vars": 0.2, "latex": 0.45, "display_math": 0.2, "edge_cases": 0.25,
    "complexity": 0.3, "table": 0.1, "takeaways": 0.55, "invite_questions": 0.3, "suggestion": 0.5,
    "confirm_question": 0.5, "incremental": 0.0, "conclusion_line": 0.2, "word_count": 0.2,
    "answer_line": 0.2, "bold_answer": 0.3, "summary_line": 0.05, "tldr": 0.5,
    "type_hints": 0.4, "docstring": 0.4, "comments": 0.4, "camel_case": 0.15, "usage_example": 0.5,
    "main_guard": 0.2, "code_first": 0.2, "split_code": 0.3, "fence_language": 0.85,
    "ack_error": 0.5, "explain_error": 0.4, "rederive": 0.4, "mark_correction": 0.3, "apology": 0.5,
    "double_apology": 0.4,
}

_PREAMBLES = ("Great question! Let me walk you through this.", "Sure! Let's dive in.",
              "Let me walk you through this step by step.", "Good question, let's break it down.",
              "Alright, let's take a look.", "Let me explain how this works.")
_COURTESY = ("I hope this helps!", "Thanks for the clear question, and I hope this helps!",
             "Hope that helps, and thanks for asking!", "Glad to help with this!")
_ACK_FALLBACK = ("Now that we have your question laid out, we can work through it.",
                 "Building on what you asked, here is how it goes.",
                 "Thanks for the details you gave, they make this straightforward.")
_ACK_NEUTRAL = "Given what you've told me, here is how it works out."
_INTUITION_MARKERS = ("key idea", "key insight", "principle", "big picture", "intuition", "in general", "the idea")
_COURTESY_MARKERS = ("thank", "thanks", "please", "glad", "happy to", "sorry", "appreciate")
_TRANSITIONS = ("With that in mind, ", "From there, ", "Building on that, ")
_OUTLINES = ("Here's what we'll cover: the key idea, the steps, and the result.",
             "Here's the plan: set up the problem, work through each step, then state the result.",
             "We'll cover three things: the setup, the working, and the final result.")
_INTUITION_FALLBACK = "The key idea is to break the problem into small pieces and solve each one exactly."
_ASSUMPTIONS = ("Assuming the problem statement gives us everything we need, we can work directly from it.",
                "We assume the values given are exact, since nothing suggests otherwise.")
_CONNECTORS = ("First, ", "Then, ", "Next, ", "After that, ")
_JUSTIFY = ("This works because each step only uses facts we have already established.",
            "That's why the result follows directly from the steps above.")
_EXAMPLE_FALLBACK = "For example, it's like checking a receipt line by line before trusting the total."
_SUGGESTIONS = ("You might also want to try a similar problem with different numbers.",
                "Next, you could try extending this to a more general case.",
                "As a next step, I'd suggest checking the result with a quick example of your own.")
_CONFIRM = ("Does this make sense so far?", "Shall I continue with the next part?",
            "Before we move on, is this step clear?")
_INVITE = ("Let me know if any step is unclear.", "Ask if any part is unclear.")
_ENCOURAGE = ("You're on the right track with this one.", "Nice work getting this far.")
_FILLER = ("Basically, ", "Essentially, ", "It's worth noting that ")
_TAKEAWAYS = ("Key takeaways: {x}", "To summarize, {x}")
_ELABORATE = ("Before starting, it is useful to read the question twice and note exactly what is being asked.",
              "Writing each quantity down explicitly keeps the work transparent and easy to audit later on.",
"It helps to keep every intermediate quantity written down so nothing gets lost along the way.",
              "Working slowly here pays off, because a single slip early on would carry through to the end.",
              "Each of these steps is standard, and the same pattern shows up in many similar problems.",
              "If any number looks surprising, it is worth recomputing it before moving on to the next part.",
              "Keeping the reasoning explicit also makes it much easier to explain the result to someone else.",
              "Together these steps give a complete and checkable path from the question to the result.")
_ALT_FALLBACK = [("checking small cases by hand", "slower but builds intuition"),
                 ("setting up a general formula", "faster for big inputs but easier to get wrong")]
_PLAIN_TYPES = {"int": "3", "list": "[3, 1, 2]", "str": '"hello"', "float": "2.5", "bool": "True", "object": "None"}

_SUGGESTION_KEYS = ("suggestion",)


#: Directive keys that are upper bounds: merging keeps the tightest (smallest) value.
_CAP_KEYS = ("max_sentences", "max_words", "apology")


def directives_for(types: Iterable[PreferenceType]) -> dict[str, Any]:
    """Merge the ``directive`` of each type; later types override earlier ones on the same key.

    Upper-bound keys (``max_sentences``, ``max_words``, ``apology``) keep the smallest value instead.
    """
    out: dict[str, Any] = {}
    for t in types:
        for k, v in t.directive.items():
            out[k] = min(out[k], v) if k in _CAP_KEYS and k in out else v
    return out


def _answer_value(content: ReplyContent) -> str | None:
    if content.answer is not None:
        return content.answer
    if not content.answer_text:
        return None
    m = re.search(r"\\boxed\{([^{}]*)\}", content.answer_text) or re.search(r"\(([A-E])\)", content.answer_text)
    if m:
        return m.group(1)
    nums = re.findall(r"-?\d+(?:[./]\d+)?", content.answer_text)
    return nums[-1] if nums else content.answer_text.rstrip(".")


_FIRST_WORD = re.compile(r"[A-Za-z']+")


def _lower_first(s: str, proper: frozenset[str] = frozenset()) -> str:
    first = _FIRST_WORD.match(s)
    if first and first.group(0) in proper:
        return s
    return s[:1].lower() + s[1:] if s[:1].isupper() and not s[1:2].isupper() else s


_PROPER = re.compile(r"(?<=[a-z,;] )([A-Z][a-z]+)")


def _proper_nouns(sentences: Iterable[str]) -> frozenset[str]:
    """Capitalised words that also appear capitalised mid-sentence (names), so they keep their case."""
    return _proper_nouns_of(tuple(sentences))


@lru_cache(maxsize=4096)
def _proper_nouns_of(sentences: tuple[str, ...]) -> frozenset[str]:
    return frozenset(m.group(1) for x in sentences for m in _PROPER.finditer(x))


_EQUATION = re.compile(r"([A-Za-z0-9().]+(?:\s*[-+*/^]\s*[A-Za-z0-9().]+)*\s*=\s*[A-Za-z0-9().]+"
                       r"(?:\s*[-+*/^]\s*[A-Za-z0-9().]+)*)")
_NUMBER = re.compile(r"(?<![\w$.])(\d+(?:\.\d+)?)(?![\w$])")


@lru_cache(maxsize=4096)  # a task's steps are rendered again on every turn; the equation regex backtracks a lot
def _latexify(sentence: str) -> str:
    m = _EQUATION.search(sentence) if "=" in sentence else None  # (pre-filter: an equation needs "=")
    if m:
        return sentence[:m.start()] + "$" + m.group(1).strip().replace("*", r" \cdot ") + "$" + sentence[m.end():]
    m = _NUMBER.search(sentence)
    if m:
        return sentence[:m.start()] + "$" + m.group(1) + "$" + sentence[m.end():]
    return sentence


def _guess_type(name: str) -> str:
    n = name.lower()
    if n in ("n", "k", "m", "i", "j", "count", "size", "target", "limit", "num", "number", "start", "end", "step") \
            or n.startswith(("num_", "n_", "max_", "min_")) and not n.endswith("s"):
        return "int"
    if n in ("s", "text", "word", "name", "string", "sentence", "prefix", "suffix", "sep", "char") or n.endswith("_str"):
        return "str"
    if n.endswith("s") or n in ("xs", "arr", "lst", "items", "values", "grid", "matrix", "data"):
        return "list"
    if n in ("x", "y", "rate", "value", "ratio", "amount"):
        return "float"
    return "object"


def _return_type(body: list[str]) -> str:
    rets = [ln.strip()[7:] for ln in body if ln.strip().startswith("return ")]
    if rets and all(r in ("True", "False") or re.search(r"[<>=]=?|\bnot\b|\band\b|\bor\b|\bin\b", r) and
                    not re.search(r"[+\-*/]", r) for r in rets):
        return "bool"
    if rets and all(re.match(r"^(len|sum|int|abs|max|min|round|count|total)\b|^-?\d+$", r) for r in rets):
        return "int"
    if rets and all(r.startswith(("[", "sorted(", "list(")) for r in rets):
        return "list"
    if rets and all(r.startswith(("'", '"', "f'", 'f"', "''.join", '"".join', "str(")) for r in rets):
        return "str"
    return "object"


def _camel(name: str) -> str:
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:] if p)


_COMMENT_FOR = (("for ", "# walk through the input"), ("while ", "# keep going until the condition fails"),
                ("if ", "# handle this case"), ("return ", "# return the result"), ("elif ", "# another case"),
                ("else", "# fallback case"))


def _render_code(src: str, s: Mapping[str, Any], content: ReplyContent) -> list[str]:
    """Transform the canonical function source per the settings; returns fenced block strings."""
    lines = src.rstrip("\n").split("\n")
    m = re.match(r"^def\s+(\w+)\((.*)\):\s*$", lines[0])
    if not m:
        return [f"```{'python' if s['fence_language'] else ''}\n{src.rstrip()}\n```"]
    name, params = m.group(1), [p.strip() for p in m.group(2).split(",") if p.strip()]
    body = lines[1:]
    body = [ln for ln in body if not ln.strip().startswith("#")]
    if s["comments"] is False:
        body = [re.sub(r"\s+#.*$", "", ln) for ln in body]
    ret = _return_type(body)
    pnames = [p.split("=")[0].split(":")[0].strip() for p in params]
    renames: dict[str, str] = {}
    if s["naming"] != "snake" and s["camel_case"]:
        renames = {x: _camel(x) for x in [name, *pnames] if "_" in x.strip("_")}
    if s["type_hints"]:
        hinted = []
        for p, pn in zip(params, pnames):
            default = "=" + p.split("=", 1)[1] if "=" in p else ""
            hinted.append(f"{pn}: {_guess_type(pn)}{' = ' + default[1:].strip() if default else ''}")
        sig = f"def {name}({', '.join(hinted)}) -> {ret}:"
    else:
        sig = f"def {name}({', '.join(params)}):"
    out = [sig]
    if s["docstring"]:
        out.append(f'    """{name.replace("_", " ").strip().capitalize()}."""')
    for ln in body:
        if s["comments"] is True:
            stripped = ln.strip()
            for prefix, comment in _COMMENT_FOR:
                if stripped.startswith(prefix):
                    out.append(ln[: len(ln) - len(ln.lstrip())] + comment)
                    break
        out.append(ln)
    usage: list[str] = []
    if s["usage_example"] or s["main_guard"]:
        call = content.example_call or f"{name}({', '.join(_PLAIN_TYPES[_guess_type(p)] for p in pnames)})"
        usage = (["", 'if __name__ == "__main__":', f"    print({call})"] if s["main_guard"] else [f"print({call})"])
    code = "\n".join(out)
    extra = "\n".join(usage).strip("\n")
    for old, new in renames.items():
        code = re.sub(rf"\b{re.escape(old)}\b", new, code)
        extra = re.sub(rf"\b{re.escape(old)}\b", new, extra)
    fence = "```python" if s["fence_language"] else "```"
    if extra and s["split_code"] and s["code_blocks"] != 1:
        return [f"{fence}\n{code}\n```", f"{fence}\n{extra}\n```"]
    joined = code + ("\n\n" + extra if extra else "")
    return [f"{fence}\n{joined}\n```"]


_DEFAULT_HABIT_ARRAYS = (tuple(DEFAULT_HABITS), np.array(list(DEFAULT_HABITS.values())))


def _settings(directives: Mapping[str, Any], rng: np.random.Generator,
              habits: Mapping[str, float] | None) -> dict[str, Any]:
    if habits is None or habits is DEFAULT_HABITS:
        keys, probs = _DEFAULT_HABIT_ARRAYS
    else:
        unknown = sorted(set(habits) - set(DEFAULT_HABITS))
        if unknown:
            raise ValueError(f"unknown habit(s) {unknown}; known habits: {sorted(DEFAULT_HABITS)}")
        h = {**DEFAULT_HABITS, **habits}
        keys, probs = tuple(h), np.array(list(h.values()))
    s: dict[str, Any] = dict(zip(keys, (rng.random(len(keys)) < probs).tolist()))
    s["apology"] = (2 if s["double_apology"] else 1) if s["apology"] else 0
    for key in ("naming", "code_blocks", "max_sentences", "max_words", "min_words"):
        s[key] = None
    s["choice"] = rng.integers(0, 1 << 30, size=16).tolist()  # (plain ints: cheaper to index)
    s.update(directives)
    s["check_in_allowed"] = directives.get("confirm_question") is not False
    if "apology" in directives:
        s["apology"] = int(directives["apology"])
    if s["markdown"] is False:
        s.update(headings=False, bold_terms=False, bold_answer=False, table=False)
    if s["max_sentences"] is not None or s["max_words"] is not None:
        s["concise"] = True
    if s["min_words"] is not None:
        s["concise"] = False
    if s["concise"]:
        for k in ("preamble", "outline", "intuition_first", "example", "alternatives", "takeaways",
                  "invite_questions", "encourage", "restate", "headings", "table", "justify", "verify",
                  "define_vars", "display_math", "transitions", "acknowledge", "summary_line",
                  "answer_line", "eliminate_options",
                  "premises_first", "conclusion_line", "word_count", "edge_cases", "complexity", "explain_error",
                  "mark_correction", "rederive", "filler", "short_paragraphs"):
            if k not in directives:
                s[k] = False
        if "show_steps" not in directives:
            s["show_steps"] = False
        hard = s["max_sentences"] is not None or s["max_words"] is not None
        for k in ("courtesy", "tldr", "confidence", "suggestion", "confirm_question"):
            if hard and k not in directives:
                s[k] = False
        if not hard and s["min_words"] is None:
            s["max_sentences_soft"] = 3
        if "apology" not in directives:
            s["apology"] = min(s["apology"], 1)
    return s


def _pick(s: Mapping[str, Any], slot: int, options: tuple[str, ...] | list[str]) -> str:
    return options[int(s["choice"][slot]) % len(options)]


Block = tuple[str, Any]  # ("para", list[str]) | ("items", (list[str], numbered)) | ("line"|"heading"|"raw", str)


def _compose(c: ReplyContent, s: Mapping[str, Any], keep_steps: int, elaborate: int) -> list[Block]:
    blocks: list[Block] = []
    answer = c.answer_text
    value = _answer_value(c)
    steps = list(c.steps)
    proper = _proper_nouns(steps)

    def lower(x: str) -> str:
        return _lower_first(x, proper)

    if s["incremental"] and not c.partial and len(steps) > 2:
        steps, answer = steps[:2], None
    partial = c.partial or (s["incremental"] and answer is None)
    steps = steps[:keep_steps] if keep_steps < len(steps) else steps
    math = c.task_kind == "math"
    is_code = c.task_kind == "code" and c.code is not None
    if math and s["latex"]:
        steps = [_latexify(x) for x in steps]
    elif s["latex"] is False:
        steps = [x.replace("$", "") for x in steps]

    # answer sentence (+ bold, confidence)
    answer_sent = None
    if answer:
        answer_sent = f"**Final answer:** {answer}" if s["bold_answer"] else answer
    code_blocks = _render_code(c.code, s, c) if is_code else []

    top: list[Block] = []
    if s["answer_first"] and answer_sent:
        if s["headings"]:
            top.append(("heading", "## Answer"))
        top.append(("para", [answer_sent]))
    if s["code_first"] and code_blocks:
        top.extend(("raw", b) for b in code_blocks)
        code_blocks = []
    blocks.extend(top)

    opener: list[str] = []
    if s["restate"]:
        opener.append(c.restatement or f"The problem asks us to work out this {c.task_kind.replace('_', '-')} "
                                       "question carefully.")
    if s["preamble"]:
        opener.append(_pick(s, 0, _PREAMBLES))
    if c.correcting:
        if s["ack_error"]:
            opener.append("You're right, I made a mistake there.")
        if s["apology"] >= 2:
            opener.append("I'm so sorry for the confusion, and I apologize for the error.")
        elif s["apology"] == 1:
            opener.append("Sorry about that.")
        if s["explain_error"]:
            opener.append("The error was that I mixed up two quantities in one of the earlier steps.")
        if s["rederive"]:
            opener.append("Let's redo the solution from scratch.")
    if s["acknowledge"]:
        ack = c.acknowledgement or _pick(s, 1, _ACK_FALLBACK)
        if s["courtesy"] is False and T.contains_any(ack, _COURTESY_MARKERS):
            ack = _ACK_NEUTRAL
        opener.append(ack)
    if s["encourage"]:
        opener.append(_pick(s, 2, _ENCOURAGE))
    if s["headings"] and (opener or s["outline"] or s["intuition_first"] or s["assumptions"]):
        blocks.append(("heading", "## Overview"))
    if opener:
        blocks.append(("para", opener))
    if s["outline"] and (answer or steps):
        blocks.append(("para", [_pick(s, 3, _OUTLINES)]))
    if s["premises_first"] and c.task_kind == "logic":
        prem = c.premises or steps[:1]
        blocks.append(("line", "Premises: " + "; ".join(p.rstrip(".") for p in prem) + "."))
    framing: list[str] = []
    if s["intuition_first"]:
        intuition = c.intuition or _INTUITION_FALLBACK
        if not T.contains_any(intuition, _INTUITION_MARKERS):
            intuition = "The key idea: " + lower(intuition)
        framing.append(("**Key idea:** " if s["bold_terms"] else "") + intuition)
    if s["define_vars"] and math:
        framing.append("Let $x$ be the quantity we are solving for." if s["latex"] else
                       "Let x be the quantity we are solving for.")
    if s["assumptions"]:
        framing.append(_pick(s, 4, _ASSUMPTIONS))
    if framing:
        blocks.append(("para", framing))

    # steps
    if s["headings"]:
        blocks.append(("heading", "## Solution"))
    body = list(steps)
    if s["filler"] and body:
        body[0] = _pick(s, 5, _FILLER) + lower(body[0])
    if s["bold_terms"] and not s["intuition_first"] and body:
        body[0] = "**Key step:** " + body[0]
    if s["step_labels"]:
        body = [f"Step {i + 1}: {x}" for i, x in enumerate(body)]
    elif s["show_steps"] and len(body) > 1 and not (s["bullets"] or s["numbered"]):
        body = [(_CONNECTORS[min(i, 3)] if i < len(body) - 1 else "Finally, ") + lower(x)
                for i, x in enumerate(body)]
    if s["transitions"] and body:
        body[0] = _pick(s, 6, _TRANSITIONS) + lower(body[0])
    if s["concise"] and len(body) > 1 and not s["numbered"]:
        body = ["; ".join(x.rstrip(".") for x in body[:-1]) + "; " + lower(body[-1])]
    if s["numbered"] and len(body) < 2 and answer_sent:
        body.append(answer_sent)
        answer_sent = None
    if s["numbered"] and body:
        if len(body) == 1:
            body.append("That completes this part." if partial else "This gives the result below.")
        blocks.append(("items", (body, True)))
    elif s["bullets"] and body:
        blocks.append(("items", (body, False)))
    elif body:
        blocks.append(("para", body))
    if s["justify"]:
        blocks.append(("para", list(_JUSTIFY)))
    if elaborate:
        blocks.append(("para", list(_ELABORATE[:elaborate])))
    if s["display_math"] and math:
        eq = next((re.search(r"[^$;,:]*=[^$;,]*", x.replace("$", "")) for x in steps if "=" in x), None)
        eqs = eq.group(0).strip().rstrip(".") if eq else f"x = {value}" if value else "x = x"
        blocks.append(("raw", f"$$ {eqs} $$"))
    if s["example"]:
        blocks.append(("para", [c.example or _EXAMPLE_FALLBACK]))
    for b in code_blocks:
        blocks.append(("raw", b))
    extras: list[str] = []
    if is_code and s["complexity"]:
        extras.append("The time complexity is linear, O(n), in the size of the input.")
    if is_code and s["edge_cases"]:
        extras.append("Edge cases such as an empty input are handled by the same logic.")
    if extras:
        blocks.append(("para", extras))
    if s["table"] and steps:
        rows = "\n".join(f"| {i + 1} | {x.replace('|', '/').rstrip('.')} |" for i, x in enumerate(steps[:4]))
        blocks.append(("raw", "| Step | What we do |\n|---|---|\n" + rows))

    # answer section
    ans: list[str] = []
    if answer_sent and not s["answer_first"]:
        ans.append(answer_sent)
    if answer:
        if s["boxed"] and math and "\\boxed{" not in answer:
            ans.append(f"In a box: \\boxed{{{value}}}.")
        if s["confidence"]:
            ans.append(f"I'm about {round(100 * c.confidence)}% confident in this answer.")
        if s["verify"]:
            ans.append("Let's check: substituting the result back into the problem gives a consistent answer.")
        if s["alternatives"]:
            alts = c.alternatives or _ALT_FALLBACK
            a1, a2 = alts[0], alts[1] if len(alts) > 1 else _ALT_FALLBACK[1]
            ans.append(f"One approach is {a1[0]} ({a1[1]}); another approach is {a2[0]} ({a2[1]}).")
        if s["eliminate_options"] and c.task_kind == "multiple_choice":
            ans.append("The other options can be ruled out because they contradict the steps above.")
        if c.correcting and s["mark_correction"]:
            ans.append(f"Correction: the result is now {value}, which replaces my earlier answer.")
    if ans:
        if s["headings"]:
            blocks.append(("heading", "## Answer"))
        blocks.append(("para", ans))
    elif s["headings"] and partial:
        blocks.append(("heading", "## Next"))

    closing: list[str] = []
    if s["takeaways"] and (answer or steps):
        x = (c.intuition or (steps[0] if steps else "")).rstrip(".")
        closing.append(_pick(s, 7, _TAKEAWAYS).format(x=lower(x) + ".") if x else "To summarize, we solved it.")
    if s["courtesy"]:
        closing.append(_pick(s, 8, _COURTESY))
    if s["invite_questions"]:
        closing.append(_pick(s, 9, _INVITE))
    if s["suggestion"]:
        closing.append(_pick(s, 10, _SUGGESTIONS))
    if s["confirm_question"] or s["incremental"] or (c.check_in and s["check_in_allowed"]):
        closing.append(_pick(s, 11, _CONFIRM))
    if closing:
        blocks.append(("para", closing))

    if c.task_kind == "logic" and s["conclusion_line"] and answer:
        blocks.append(("line", f"Conclusion: {value}."))
    if s["answer_line"] and answer:
        blocks.append(("line", f"Answer: {value}"))
    if c.task_kind == "writing" and s["word_count"]:
        blocks.append(("line", "Word count: {wc}"))
    if s["tldr"]:
        gist = f"the answer is {value}." if answer else "we've done the first part; the rest follows the same way."
        blocks.append(("line", f"TL;DR: {gist}"))
    elif s["summary_line"]:
        gist = f"the answer is {value}." if answer else "the first part is done."
        blocks.append(("line", f"In short: {gist}"))
    return blocks


def _merge_two(a: str, b: str) -> str:
    return a.rstrip().rstrip(".!") + "; " + _lower_first(b)


def _fit_sentences(blocks: list[Block], n: int) -> list[Block]:
    """Merge sentences (within a paragraph, then adjacent paragraphs, then list items) until <= n."""
    blocks = [(k, (list(v[0]), v[1]) if k == "items" else list(v) if k == "para" else v) for k, v in blocks]
    counts: list[int | None] = [None] * len(blocks)  # sentences per block; None: changed since counted

    def merge_once() -> bool:
        for i, (k, v) in enumerate(blocks):
            if k == "para":
                for j in range(len(v) - 1):
                    if not v[j].rstrip().endswith("?"):
                        v[j:j + 2] = [_merge_two(v[j], v[j + 1])]
                        counts[i] = None
                        return True
        for i in range(len(blocks) - 1):
            if blocks[i][0] == "para" and blocks[i + 1][0] == "para":
                blocks[i:i + 2] = [("para", blocks[i][1] + blocks[i + 1][1])]
                counts[i:i + 2] = [None]
                return True
        for i, (k, v) in enumerate(blocks):
            if k == "items" and len(v[0]) > (2 if v[1] else 1):
                v[0][-2:] = [_merge_two(v[0][-2], v[0][-1])]
                counts[i] = None
                return True
        return False

    def count() -> int:
        # blocks are separated by blank lines, so sentences add up per block
        for i, (k, v) in enumerate(blocks):
            if counts[i] is None:
                content = (tuple(v[0]), v[1]) if k == "items" else tuple(v) if k == "para" else v
                counts[i] = _block_sentences(k, content)
        return sum(counts)  # type: ignore[arg-type]

    # each merge removes at most one sentence: merge the whole excess, then recount
    while (excess := count() - n) > 0:
        if not all(merge_once() for _ in range(excess)):
            break
    return blocks


@lru_cache(maxsize=1 << 15)  # a task's steps and the stock sentences come back turn after turn
def _block_sentences(kind: str, content: Any) -> int:
    return T.count_sentences(_join([(kind, content)]))


def _join(blocks: list[Block]) -> str:
    parts: list[str] = []
    for k, v in blocks:
        if k == "para":
            parts.append(" ".join(v))
        elif k == "items":
            items, numbered = v
            parts.append("\n".join(f"{i + 1}. {x}" if numbered else f"- {x}" for i, x in enumerate(items)))
        else:
            parts.append(v)
    return "\n\n".join([p for p in parts if p])


def _short_paragraphs(blocks: list[Block], per: int = 2) -> list[Block]:
    out: list[Block] = []
    for k, v in blocks:
        if k == "para":
            sents = [x for s in v for x in (T.split_sentences(s) or [s])]
            out.extend(("para", sents[i:i + per]) for i in range(0, len(sents), per))
        else:
            out.append((k, v))
    return out


def render(content: ReplyContent, directives: Mapping[str, Any], rng: np.random.Generator,
           habits: Mapping[str, float] | None = None) -> str:
    """Compose a reply for ``content`` that follows ``directives`` (see module docstring for the keys).

    Args:
        content: what to say.
        directives: style directives (usually :func:`directives_for` of the followed preference types).
        rng: source of the habit draws (same rng state -> same reply).
        habits: overrides of :data:`DEFAULT_HABITS` probabilities.

    Returns:
        The reply text (markdown).
    """
    s = _settings(directives, rng, habits)
    keep = len(content.steps)
    elaborate = 0
    while True:
        blocks = _compose(content, s, keep, elaborate)
        cap = s["max_sentences"] if s["max_sentences"] is not None else s.get("max_sentences_soft")
        if cap is not None:
            blocks = _fit_sentences(blocks, int(cap))
        if s["short_paragraphs"]:
            blocks = _short_paragraphs(blocks)
        text = _join(blocks)
        if "{wc}" in text:
            text = text.replace("{wc}", str(T.count_words(text.replace("Word count: {wc}", ""))))
        if s["max_words"] is not None and T.count_words(text) > int(s["max_words"]) and keep > 1:
            keep -= 1
            continue
        if s["max_sentences"] is not None and T.count_sentences(text) > int(s["max_sentences"]) and keep > 1:
            keep -= 1
            continue
        if s["min_words"] is not None and T.count_words(text) < int(s["min_words"]) and elaborate < len(_ELABORATE):
            elaborate += 1
            continue
        if s["emoji"]:
            text = text.rstrip() + " 🙂" if not text.rstrip().endswith("```") else text + "\n\n🙂"
        return text
