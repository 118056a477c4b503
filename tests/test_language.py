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


def test_simulator_texts_are_collected_from_every_source():
    texts = simulator_texts()
    joined = "\n".join(texts)
    # one known piece of each source (if a source moves, the collector must follow it)
    for piece in ("{problem}", "after I point out a mistake", "for multiple-choice questions", "It really matters",
                  "Let me walk you through", "Does this step make sense"):
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
