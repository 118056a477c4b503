"""The world's shared language facts (personalization_env.language) and the detectors built on them.

The detectors (feedback classifier, rule extractor, statement recogniser) must read text the way
people write it, not match the simulator's own wording. The main check here collects every piece of
text the simulator writes (the rule user's phrase tables, the preference catalogue it states from,
the condition words it adds, the persona openers, the renderer's and the scripted model's string
tables) straight from the source and data files, and asserts that no lexicon entry of three or more
words is a fragment of any of it. (The statement recogniser matches statements against the catalogue
it is given; that reference set is its input, not its lexicon, and is not checked here.)
"""

from __future__ import annotations

import ast
import json
import re
from importlib import resources
from itertools import chain
from pathlib import Path

import pytest

from personalization_env import language as L
from personalization_env.types import SITUATIONS, Condition

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "personalization_env"
_WORDS = re.compile(r"[a-z0-9;']+")
_TASK_KINDS = ("math", "logic", "multiple_choice", "code", "writing")


def _string_constants(path: Path) -> list[str]:
    """Every string literal of a module (f-string pieces included), docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def _json_strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _json_strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _json_strings(v)]
    return []


def simulator_texts() -> list[str]:
    """All the text the simulator writes or states from, collected programmatically."""
    texts: list[str] = []
    # the rule user's wording (package data)
    with resources.files("personalization_env.users").joinpath("data/phrases.json").open(encoding="utf-8") as f:
        texts += _json_strings(json.load(f))
    # the preference catalogue the user restates from (phrasings, actions, the MSC prompt texts)
    for line in (PKG / "preferences" / "data" / "catalogue.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            texts += _json_strings(json.loads(line))
    # the words a conditional restatement adds ("for math problems", "after I point out a mistake")
    kinds = [Condition(kind="task_kinds", task_kinds=frozenset({k})) for k in _TASK_KINDS]
    sits = [Condition(kind="situation", situation=s) for s in SITUATIONS]
    texts += [c.describe() for c in chain(kinds, sits)]
    # string tables of the modules that write the simulator's text: users, phrase(), renderer, scripted model
    for path in chain(sorted((PKG / "users").glob("*.py")), [PKG / "preferences" / "library.py",
                                                            PKG / "llm" / "render.py", PKG / "llm" / "scripted.py"]):
        texts += _string_constants(path)
    return [t for t in texts if t.strip()]


def _norm(text: str) -> str:
    return " ".join(_WORDS.findall(L.normalize(text)))


def fragments_of_templates(entries: list[str], texts: list[str]) -> list[str]:
    """The entries of three or more words whose words occur, in order and adjacent, in one of ``texts``.

    A ``{slot}`` left in an entry (a regex slot, e.g. a number) stands for no fixed words: it splits the
    entry into runs, each checked on its own."""
    hay = "\n".join(" " + _norm(t.replace("{", " ").replace("}", " ")) + " " for t in texts)
    bad = []
    for e in entries:
        for run in re.split(r"\{[a-z_]+\}", e):
            w = _norm(run)
            if len(w.split()) >= 3 and f" {w} " in hay:
                bad.append(e)
                break
    return bad


def detector_lexicons() -> dict[str, list[str]]:
    """Every lexicon entry of the three detectors and of the shared vocabulary they use, by source."""
    from agents.memory import extractors as X
    from personalization_env.feedback import classifiers as C
    from personalization_env.llm import recognize as R

    out = {f"classifier.{k}": v.expansions() for k, v in C.LEXICON.items()}
    out.update({f"extractor.{k}": v.expansions() for k, v in X.LEXICON.items()})
    out.update({f"recognizer.{k}": list(v) for k, v in R.LEXICON.items()})
    out["language.imperative_verbs"] = list(L.IMPERATIVE_VERBS)
    out["language.condition_openers"] = list(L.CONDITION_OPENERS)
    out["language.task_kind_words"] = [w for ws in L.TASK_KIND_WORDS.values() for w in ws]
    out["language.situation_words"] = [w for ws in L.SITUATION_WORDS.values() for w in ws]
    out["language.negation_words"] = list(L.NEGATION_WORDS)
    return out


_BREAK = "\x00"  # stands for any piece of a pattern that is not literal text


def _expand(items, cap: int = 4000) -> set[str]:
    """The strings a parsed regex sequence spells out: its literal text, a space for whitespace, and
    :data:`_BREAK` for anything else (a word class, an open repeat); alternatives and optional groups are
    expanded (a sequence with more than ``cap`` expansions keeps a break in their place)."""
    out = {""}
    for op, av in items:
        opts = _expand_node(op, av, cap)
        if len(out) * len(opts) > cap:
            opts = {_BREAK}
        out = {a + b for a in out for b in opts}
    return out


def _expand_node(op, av, cap: int) -> set[str]:
    from re import _constants as C  # noqa: N812  (the regex parser's node kinds)

    if op is C.LITERAL:
        return {chr(av)}
    if op is C.IN:
        if all(o is C.LITERAL for o, _ in av):
            return {chr(v) for _, v in av}
        return {" "} if any(o is C.CATEGORY and v is C.CATEGORY_SPACE for o, v in av) else {_BREAK}
    if op is C.SUBPATTERN:
        return _expand(av[-1], cap)
    if op is C.BRANCH:
        return set().union(*(_expand(b, cap) for b in av[1]))
    if op in (C.MAX_REPEAT, C.MIN_REPEAT):
        lo, hi, inner = av
        body = _expand(inner, cap)
        if body == {" "}:
            return {" "} if lo else {"", " "}
        return {""} | body if (lo, hi) == (0, 1) else {_BREAK}
    if op in (C.AT, C.ASSERT, C.ASSERT_NOT):
        return {""}
    return {_BREAK}


def literal_runs(pattern: str) -> set[str]:
    """The runs of literal words a regex source spells out, every alternative expanded ("(?:could|can)
    you(?:\\s+please)?" -> "could you please", "can you", ...); a word cut by a non-literal piece
    ("\\w+ing") is left out."""
    from re import _parser

    runs = set()
    for text in _expand(_parser.parse(pattern).data if hasattr(_parser.parse(pattern), "data") else
                        _parser.parse(pattern)):
        pieces = text.split(_BREAK)
        for i, piece in enumerate(pieces):
            words = piece.split(" ")
            if i and not piece.startswith(" "):
                words = words[1:]
            if i < len(pieces) - 1 and not piece.endswith(" "):
                words = words[:-1]
            runs.add(" ".join(w for w in words if w))
    return {r for r in runs if r}


def detector_patterns() -> dict[str, re.Pattern[str]]:
    """Every module-level regex of the three detectors and of the shared language facts, by name."""
    from agents.memory import extractors as X
    from personalization_env.feedback import classifiers as C
    from personalization_env.llm import recognize as R

    return {f"{mod.__name__.rsplit('.', 1)[-1]}.{name}": v for mod in (L, C, X, R) for name, v in vars(mod).items()
            if isinstance(v, re.Pattern)}


def test_literal_runs_expand_alternatives_and_drop_cut_words():
    runs = literal_runs(r"^(?:could|can)\s+you(?:\s+please)?\b|\w+ing the end|i\s+(?:would\s+)?like")
    assert {"could you please", "can you", "i would like", "i like", "the end"} <= runs
    assert not any("ing" in r.split() for r in runs)


#: three-word frames of everyday English that the simulator's wording shares with everyone's (a frame,
#: not a phrasing: each goes on with the user's own words)
GENERIC_FRAMES = frozenset({"i want to", "i need to", "give me a", "give me an", "what is the", "i don't think"})


def test_no_detector_regex_copies_simulator_wording():
    """The regexes' literal wording, every alternative of three or more words, is checked like the
    lexicons, but for :data:`GENERIC_FRAMES` (DISCOURSE_OPENER's "as an? ..., ", which reads the rule
    user's persona opener "As a teacher,", is a general shape with no fixed third word)."""
    texts = simulator_texts()
    patterns = detector_patterns()
    assert len(patterns) > 20
    bad = {name: fragments_of_templates(sorted(r for r in literal_runs(p.pattern)
                                               if len(r.split()) >= 3 and r.lower() not in GENERIC_FRAMES), texts)
           for name, p in patterns.items()}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, bad


def test_the_regex_check_catches_a_copied_alternative():
    texts = simulator_texts()
    copied = re.compile(r"^(?:hmm|after\s+i\s+point\s+out\s+a\s+mistake)\b")
    assert fragments_of_templates(sorted(literal_runs(copied.pattern)), texts) == ["after i point out a mistake"]


def test_simulator_texts_are_collected_from_every_source():
    texts = simulator_texts()
    joined = "\n".join(texts)
    # one known piece of each source (if a source moves, the collector must follow it)
    for piece in ("{problem}", "after I point out a mistake", "for multiple-choice questions", "It really matters",
                  "Let me walk you through", "Does this make sense so far"):
        assert piece in joined, piece
    assert len(texts) > 500


def test_no_detector_lexicon_entry_copies_simulator_wording():
    texts = simulator_texts()
    bad = {name: fragments_of_templates(entries, texts) for name, entries in detector_lexicons().items()}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, bad


def test_the_fragment_check_catches_the_old_classifier_vocabulary():
    """The check itself can fail: entries of the pre-rebuild classifier are caught, a general one is not."""
    texts = simulator_texts()
    old = ["i got something different", "a mistake somewhere", "what's the final answer", "that's wrong"]
    assert fragments_of_templates(old, texts) == old[:3]


@pytest.mark.parametrize("text,negated", [
    ("I know another way", False), ("nothing else", True), ("don't", True), ("that isn't it", True),
    ("never mind", False), ("cannot", True), ("a notable result", False), ("no", True), ("Nope", True),
])
def test_negation_is_matched_on_word_boundaries(text, negated):
    assert L.has_negation(text) is negated


def test_phrase_sets_match_whole_words_and_expand_their_slots():
    p = L.PhraseSet(["no", "that {it} up", "got {num}"], {"it": ("it", "this"), "num": r"\d+"})
    assert p.search("I know now") is None and p.search("no way") is not None
    assert p.search("that  this up") is not None and p.search("got 12") is not None
    assert p.expansions() == ["no", "that it up", "that this up", "got {num}"]


def test_sentence_splitting_keeps_abbreviations_and_decimals():
    assert L.split_sentences("E.g. this costs 2.5 dollars. Then stop! Ok?") == \
        ["E.g. this costs 2.5 dollars.", "Then stop!", "Ok?"]


def test_content_words_are_stemmed_without_stop_words():
    assert L.content_words("Please use numbered lists") == ("use", "number", "list")


def test_openers_strip_a_label_but_not_a_request_that_quotes_one():
    assert L.strip_openers("Quick note: use bullets") == "use bullets"
    assert L.strip_openers("As a nurse, keep it short") == "keep it short"
    assert L.strip_openers("Please write 'Summary: ...' first") == "Please write 'Summary: ...' first"
    assert L.strip_openers("add 'Note: untested' to code") == "add 'Note: untested' to code"
