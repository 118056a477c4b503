"""The world's shared language facts: how text splits into sentences, how words and phrases are
matched, which words name a condition, which verbs start a request, how words are stemmed and how
negation is found.

Every part that reads or writes English in the embedded world takes these facts from here: the
renderer and the checkers (through :mod:`personalization_env.preferences.text`), the feedback
classifier, the rule extractor and the scripted model's statement recogniser. A fact spelled out
twice drifts apart (a sentence the renderer counts as one the checker counts as two), so it lives
once, in this module.

The vocabulary here is general English usage (condition words, imperative verbs, request frames,
negation), not the wording of any simulator template: detectors built on it are meant to read text
written by people as well as by the simulator.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable

# --------------------------------------------------------------------------------------------------
# sentences

_ABBREV = re.compile(r"\b(e\.g|i\.e|vs|etc|Dr|Mr|Mrs|Ms|St|approx|cf|Fig|No)\.", re.IGNORECASE)
_SENT_SPLIT = re.compile(r"(?<=[.!?…])[\"')\]*_]*\s+")
_WORD = re.compile(r"[A-Za-z0-9\u00C0-\uFFFF']+")

# Fast equivalents of ``_ABBREV.sub(...)`` and ``_SENT_SPLIT.split(...)`` (same results; the regexes
# start with an assertion, so the engine tries them at every character, ~20-90 ns/char).
_ABBREV_WORDS = frozenset(("e.g", "i.e", "vs", "etc", "dr", "mr", "mrs", "ms", "st", "approx", "cf", "fig", "no"))
_ABBREV_LENGTHS = (2, 3, 6)
# _SENT_SPLIT without its look-behind: the punctuation char is matched (a fast charset prefix scan)
# and the boundary is group 1; matches cannot differ, since every separator ends in whitespace.
_SENT_BOUNDARY = re.compile(r"[.!?…]([\"')\]*_]*\s+)")


def split_sentences(text: str) -> list[str]:
    """Split one line of prose into sentences after ``.``, ``!``, ``?`` or ``…`` and whitespace;
    abbreviations (``e.g.``, ``Dr.`` ...) and decimal points are not boundaries."""
    return list(_split_sentences(text))


@lru_cache(maxsize=8192)
def _split_sentences(text: str) -> tuple[str, ...]:
    protected = _protect_abbreviations(text)
    parts = [p.replace("\x00", ".").strip() for p in _split_at_boundaries(protected)]
    return tuple(p for p in parts if _WORD.search(p))


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


_STATEMENT_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
# _STATEMENT_SPLIT without its look-behind (tried at every character): the punctuation char is matched
# and the separator is group 1; the split points are the same, since a separator never starts with [.!?].
_STATEMENT_SPLIT_AT = re.compile(r"[.!?](\s+)|\n+")


def _split_statements(text: str) -> list[str]:
    """``_STATEMENT_SPLIT.split(text)``."""
    parts: list[str] = []
    start = 0
    for m in _STATEMENT_SPLIT_AT.finditer(text):
        a, b = m.span(1) if m.group(1) is not None else m.span()
        parts.append(text[start:a])
        start = b
    parts.append(text[start:])
    return parts


def statements(text: str) -> list[str]:
    """Candidate statements of a message or prompt: its lines and sentences, list markers stripped,
    fragments under eight characters dropped."""
    out = []
    for part in _split_statements(text):
        part = part.strip().lstrip("-*•0123456789.) ").strip()
        if len(part) >= 8:
            out.append(part)
    return out


# --------------------------------------------------------------------------------------------------
# words and whole phrases


def words(text: str) -> list[str]:
    """Word tokens of ``text`` (letters, digits, apostrophes, unicode letters)."""
    return _WORD.findall(text)


@lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """``text`` lower-cased with typographic apostrophes made straight."""
    return text.lower().replace("\u2019", "'").replace("\u2018", "'")


_TOKEN = re.compile(r"[a-z]+")

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
def _phrase_forms(phrases: tuple[str, ...]) -> tuple[tuple[str, frozenset[str]], ...]:
    """The distinct phrases as matched (normalised, stripped), each with its letter runs: a phrase can
    only occur as a whole phrase in a text whose words include all of its runs, since every run of a
    whole-phrase occurrence is bounded by non-letters."""
    return tuple((p, frozenset(_TOKEN.findall(p))) for p in sorted({normalize(p).strip() for p in phrases}))


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
    low = normalize(text)
    toks = _tokens(low)
    hits = [_first_whole(low, p) for p, runs in _phrase_forms(tuple(phrases)) if runs <= toks]
    return min((i for i in hits if i >= 0), default=-1)


def contains_any(text: str, phrases: tuple[str, ...] | list[str]) -> bool:
    """Whether ``text`` contains any of ``phrases`` as whole words/phrases (case-insensitive)."""
    if not phrases:
        return False
    low = normalize(text)
    toks = _tokens(low)
    return any(runs <= toks and _first_whole(low, p) >= 0 for p, runs in _phrase_forms(tuple(phrases)))


def count_any(text: str, phrases: tuple[str, ...] | list[str]) -> int:
    """Total number of whole-phrase matches of ``phrases`` in ``text`` (case-insensitive)."""
    low = normalize(text)
    # substring pre-filter: only phrases that occur at all are counted
    return sum(_count_whole(low, normalize(p).strip()) for p in phrases if normalize(p).strip() in low)


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


class PhraseSet:
    """A lexicon of phrases matched as whole words, case-insensitively, compiled once into one regex.

    A phrase may hold slots written ``{name}``: a slot given as a tuple of words matches any of them
    (``{it}`` -> "it", "this", "that"), a slot given as a string is a regex (a number). Plain spaces
    match any run of whitespace; a straight apostrophe also matches a typographic one. ``phrases``
    keeps the phrases as written and :meth:`expansions` lists every wording a phrase stands for, so a
    test can enumerate a detector's vocabulary.
    """

    def __init__(self, phrases: Iterable[str], slots: dict[str, tuple[str, ...] | str] | None = None):
        self.phrases: tuple[str, ...] = tuple(dict.fromkeys(phrases))
        self.slots = dict(slots or {})
        slot_rx = {re.escape("{" + name + "}"): "(?:" + (slot if isinstance(slot, str) else "|".join(
            re.escape(w).replace(r"\ ", r"\s+").replace("'", "['\u2019]") for w in slot)) + ")"
            for name, slot in self.slots.items()}
        alts = []
        for p in sorted(self.phrases, key=len, reverse=True):
            pat = re.escape(p.lower()).replace(r"\ ", r"\s+").replace("'", "['\u2019]")
            for key, rx in slot_rx.items():
                if key in pat:
                    pat = pat.replace(key, rx)
            alts.append(pat)
        # a word joined by a hyphen or an apostrophe is part of another word ("follow" in "follow-up")
        # (a quote mark after the phrase ends it: "'index out of range'")
        self.pattern = re.compile(r"(?<![\w-])(?<!\w['\u2019])(?:" + "|".join(alts) + r")(?![\w-]|['\u2019]\w)",
                                  re.IGNORECASE)

    def search(self, text: str) -> re.Match[str] | None:
        """The first whole-phrase match in ``text``, or None."""
        return self.pattern.search(text)

    def __contains__(self, text: str) -> bool:
        return self.pattern.search(text) is not None

    def expansions(self) -> list[str]:
        """Every wording the phrases stand for: word slots filled in every way, a regex slot left as
        ``{name}`` (it stands for no fixed words)."""
        out: list[str] = []
        for p in self.phrases:
            forms = [p]
            for name, slot in self.slots.items():
                key = "{" + name + "}"
                while not isinstance(slot, str) and any(key in f for f in forms):
                    forms = [g for f in forms for g in ([f.replace(key, w, 1) for w in slot] if key in f else [f])]
            out.extend(forms)
        return list(dict.fromkeys(out))


# --------------------------------------------------------------------------------------------------
# stems and content words

_CONTENT_WORD = re.compile(r"[a-z][a-z'+;#-]*|tl;dr")
STOP_WORDS = frozenset(
    "a an the and or but if then so to of in on at for with by from as is are be been being it its this that these "
    "those i me my you your we our they them he she his her do does did doing have has had having can could would "
    "should will just also very really please much more most some any all each every one which what when where who "
    "how why there here about into over than too not no yes okay ok hi hey thanks thank like want prefer preference "
    "next time always me! let's let us".split()
)
_SUFFIXES = ("ations", "ation", "ings", "ing", "ness", "ments", "ment", "ies", "ied", "es", "ed", "ly", "s")


@lru_cache(maxsize=1 << 16)  # the same words come back in every message
def stem(word: str) -> str:
    """A crude English stem: the word without one common suffix (kept when the rest would be under 4 letters)."""
    w = word.strip("'-")
    for suf in _SUFFIXES:
        if len(w) > len(suf) + 3 and w.endswith(suf):
            return w[: -len(suf)]
    return w


@lru_cache(maxsize=65536)
def content_words(text: str) -> tuple[str, ...]:
    """Stemmed content words of ``text``: lower-cased words without :data:`STOP_WORDS` and one-letter words."""
    return tuple(stem(w) for w in _CONTENT_WORD.findall(text.lower().replace("{cond}", " "))
                 if w not in STOP_WORDS and len(w) > 1)


# --------------------------------------------------------------------------------------------------
# conditions: the words people use to say when a wish applies

#: task kind -> words that name it
TASK_KIND_WORDS: dict[str, tuple[str, ...]] = {
    "math": ("math", "equation", "calculation", "algebra", "arithmetic"),
    "logic": ("logic", "puzzle", "puzzles", "deduction", "riddle"),
    "multiple_choice": ("multiple-choice", "multiple choice", "quiz", "options"),
    "code": ("coding", "code", "programming", "python", "function"),
    "writing": ("writing", "essay", "prose"),
}
#: conversational situation -> words that name it
SITUATION_WORDS: dict[str, tuple[str, ...]] = {
    "final_answer": ("final answer", "answer"),
    "explanation": ("explaining", "explain", "explanation"),
    "multi_step": ("multi-step", "several steps", "multistep"),
    "code": ("writing code", "write code"),
    "error_correction": ("mistake", "correct you", "wrong", "error"),
    "winding_down": ("wrapping up", "winding down", "wrap up", "end of the conversation"),
}
#: words that open a condition clause ("for math problems, ...", "when you explain, ...")
CONDITION_OPENERS: tuple[str, ...] = ("for", "when", "whenever", "on", "in", "after", "if", "during", "once")
#: a clause that opens with a condition word ("for ...", "after I point out ...")
CONDITION_HEAD = re.compile(r"^\s*(?:" + "|".join(CONDITION_OPENERS) + r")\b", re.IGNORECASE)
_CONDITION_WORDS = sorted({w for ws in (*TASK_KIND_WORDS.values(), *SITUATION_WORDS.values()) for w in ws}, key=len,
                          reverse=True)
#: a condition anywhere in a clause: a condition word shortly before a word naming a kind of task or a situation
CONDITION_ANYWHERE = re.compile(r"\b(?:" + "|".join(CONDITION_OPENERS) + r")\s+(?:[\w'-]+\s+){0,4}?(?:"
                                + "|".join(map(re.escape, _CONDITION_WORDS)) + r")\b", re.IGNORECASE)
#: a condition closing a sentence: "... for math problems and logic puzzles." (the shortest such ending)
CONDITION_TAIL = re.compile(r"^(.+),?\s+((?:" + "|".join(CONDITION_OPENERS) + r")\s+(?:[\w'-]+\s+){0,4}?(?:"
                            + "|".join(map(re.escape, _CONDITION_WORDS)) + r")[\w-]*(?:\s+[\w'-]+){0,3}?"
                            r"(?:,?\s+(?:and|or|for|&)\s+[\w' -]+?)*)\s*[.!?]*$", re.IGNORECASE)

# --------------------------------------------------------------------------------------------------
# requests: imperative verbs and the frames people wrap a wish in

#: verbs that start an imperative about how to reply ("use bullets", "keep it short")
IMPERATIVE_VERBS: tuple[str, ...] = (
    "tell", "give", "show", "write", "use", "put", "keep", "add", "include", "start", "begin", "end", "finish",
    "list", "label", "bold", "summarize", "summarise", "verify", "state", "explain", "break", "number",
    "highlight", "mention", "set", "offer", "avoid", "skip", "drop", "cut", "answer", "define", "check", "lead",
    "open", "close", "lay", "walk", "stick", "be", "try", "make", "name", "format", "structure", "wrap", "spell",
    "point", "cover", "go", "get", "respond", "reply", "introduce", "annotate", "note", "double", "mark",
    "acknowledge", "apologize", "apologise", "redo", "rederive", "re-derive", "split", "comment", "type", "box",
    "plug", "eliminate", "rule", "round", "quote", "cite", "stop", "quit", "ditch", "lose", "trim", "shorten",
    "limit", "lighten", "tone", "talk", "speak", "say", "present", "organize", "organise", "group", "separate",
    "bullet", "indent", "typeset", "render", "lower", "leave", "hold", "save", "remove", "mind", "remember",
    "prioritize", "prioritise", "focus", "clarify", "restate", "recap", "condense", "simplify", "expand",
    "elaborate", "contrast", "compare", "outline", "preface", "follow", "tag", "fence",
)
IMPERATIVE_RE = re.compile(r"^(?:" + "|".join(sorted(map(re.escape, IMPERATIVE_VERBS), key=len, reverse=True))
                           + r")\b", re.IGNORECASE)
#: a condition before the wish: "for math problems, ...", or without a comma up to an imperative verb
CONDITION_CLAUSE = re.compile(r"^(?:" + "|".join(CONDITION_OPENERS) + r")\b(?:[^,:;]{2,80}[,:;]\s*|"
                              r"(?:\s+[\w'-]+){1,6}?\s+(?=" + IMPERATIVE_RE.pattern[1:] + r"))", re.IGNORECASE)

#: words and lead-ins that open a sentence without carrying its meaning ("Hmm,", "Also,", "As a teacher,",
#: a short label before a colon such as "Quick question:", but not a request: "please write 'Summary:'")
DISCOURSE_OPENER = re.compile(r"^(?:(?:hmm+|hm+|um+|uh+|ah+|oh|wait|well|so(?!\s+far\b)|ok|okay|alright|and|also|but|"
                              r"plus|again|"
                              r"honestly|look|listen|ugh|sorry|btw|fyi|ps|just|you know|i mean|hold on|hang on|"
                              r"wait a (?:sec|second|minute)|as an? [\w -]{2,30}?,|"
                              r"(?!(?:" + "|".join(CONDITION_OPENERS) + r"|please|pls|" + "|".join(IMPERATIVE_VERBS)
                              + r")\b)(?:[\w'-]+ ){0,2}[\w'-]+:)(?![\w'])"
                              r"[\s,.:;!-]*)+", re.IGNORECASE)


def strip_openers(text: str) -> str:
    """``text`` without its leading :data:`DISCOURSE_OPENER` words."""
    return DISCOURSE_OPENER.sub("", text).strip()


#: the frame around a wish, to strip from its action: "could you (please)", "I'd like you to", "make sure to"
REQUEST_FRAME = re.compile(
    r"^(?:(?:could|can|would|will)\s+(?:you|we)(?:\s+please)?|please|pls|i['\u2019]?d\s+(?:like|love|prefer|rather|"
    r"appreciate)(?:\s+(?:it\s+)?if\s+you|\s+you\s+to|\s+to)?|i\s+(?:would\s+)?(?:like|prefer|want|need)"
    r"(?:\s+(?:it\s+)?if\s+you|\s+you\s+to|\s+to)?|make\s+sure\s+(?:to|you)|be\s+sure\s+to|remember\s+to|"
    r"you\s+(?:should|need\s+to|must|have\s+to)|next\s+time,?|from\s+now\s+on,?|going\s+forward,?)\s+",
    re.IGNORECASE)
#: courtesy words and asides that close a wish without changing it (", please", "if you can", "thanks")
TRAILER = re.compile(r"(?:,?\s*(?:please|pls|thanks|thank you|if you can|if possible|if you don['\u2019]t mind|"
                     r"next time|from now on|going forward))+\s*[.!?]*$", re.IGNORECASE)

# --------------------------------------------------------------------------------------------------
# negation, on word boundaries ("no" inside "know" or "another" is not a negation)

NEGATION_WORDS: tuple[str, ...] = ("not", "no", "never", "none", "nothing", "nope", "nah", "neither", "nor",
                                   "without", "cannot")
# ("never mind" dismisses, it does not negate)
NEGATION_RE = re.compile(r"(?<![\w'\u2019])(?:" + "|".join(NEGATION_WORDS) + r")(?![\w'\u2019])(?<!never(?=\s+mind))|"
                         r"n['\u2019]t\b", re.IGNORECASE)


def has_negation(text: str) -> bool:
    """Whether ``text`` negates: a negation word on word boundaries or a ``n't`` contraction."""
    return NEGATION_RE.search(text) is not None

# --------------------------------------------------------------------------------------------------
# informal spelling: contractions typed without their apostrophe, chat abbreviations of function words

#: informal spelling -> standard form, for words whose informal form is no other English word
#: ("dont", "u", "thx"); "its", "lets", "wont" and "ill" are real words and are left alone
INFORMAL_SPELLINGS: dict[str, str] = {
    "dont": "don't", "doesnt": "doesn't", "dosent": "doesn't", "doesent": "doesn't", "didnt": "didn't",
    "isnt": "isn't", "wasnt": "wasn't", "arent": "aren't", "werent": "weren't", "cant": "can't",
    "couldnt": "couldn't", "wouldnt": "wouldn't", "shouldnt": "shouldn't", "havent": "haven't", "hasnt": "hasn't",
    "aint": "ain't", "im": "i'm", "ive": "i've", "youre": "you're", "youve": "you've", "thats": "that's",
    "whats": "what's", "wheres": "where's", "hows": "how's", "theres": "there's", "heres": "here's",
    "u": "you", "ya": "you", "youu": "you", "ur": "your", "pls": "please", "plz": "please", "plss": "please",
    "thx": "thanks", "thnx": "thanks", "thanx": "thanks", "tnx": "thanks", "thnks": "thanks", "thks": "thanks",
    "thankyou": "thank you", "thanku": "thank you", "thankss": "thanks", "idk": "i don't know",
    "dunno": "don't know", "wat": "what", "wut": "what", "tho": "though", "thru": "through", "bc": "because",
    "cuz": "because", "coz": "because", "becuase": "because", "becasue": "because", "teh": "the", "waht": "what",
    "hwo": "how", "wiht": "with", "abt": "about", "rn": "right now", "wdym": "what do you mean",
}
_INFORMAL_RE = re.compile(r"(?<![\w'\u2019-])(?:" + "|".join(sorted(map(re.escape, INFORMAL_SPELLINGS), key=len,
                                                                    reverse=True)) + r")(?![\w'\u2019-])",
                          re.IGNORECASE)


@lru_cache(maxsize=1 << 14)
def standard_spelling(text: str) -> str:
    """``text`` with typographic apostrophes made straight and :data:`INFORMAL_SPELLINGS` written out
    ("dont get it u lost me" -> "don't get it you lost me"); everything else, case included, is kept."""
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return _INFORMAL_RE.sub(lambda m: INFORMAL_SPELLINGS[m.group(0).lower()], text)
