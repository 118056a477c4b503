"""The detectors' evaluation sets (benchmarks/data) and their benchmark (benchmarks/detectors.py).

The sets must be well formed, and independent of the simulator: no item may share a run of five
words with any template the simulator writes from (string constants of ``personalization_env/users/``,
its data files, ``personalization_env/llm/render.py``, the restatement helpers of
``personalization_env/preferences/library.py``, the condition words of ``personalization_env/types.py``
and the catalogue's phrasings). The scoring is checked
on cases whose figures are counted here by hand.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.detectors import (
    DATA,
    SETS,
    Detection,
    PreferenceReaders,
    load_set,
    main,
    parse_condition,
    score_labels,
    score_preferences,
    score_set,
    stated_preferences,
)
from personalization_env.feedback import LABELS, FeedbackClassifier
from personalization_env.preferences.library import load_catalogue
from personalization_env.types import Condition

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "personalization_env"
N = 5  # words in a shared fragment that would show the text was copied


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _segments(text: str) -> list[str]:
    """A template split at its placeholders and line breaks (a fragment never spans a placeholder)."""
    return [s for s in re.split(r"\{[^{}]*\}|%[-\d.]*[sdrf]|\n", text) if s.strip()]


def _py_strings(path: Path) -> list[str]:
    """String constants of a module, docstrings left out (they describe, the simulator does not say them)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def _json_strings(obj: object) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in (*_json_strings(k), *_json_strings(v))]
    if isinstance(obj, list):
        return [s for v in obj for s in _json_strings(v)]
    return []


def simulator_templates() -> list[str]:
    """Every string the simulator builds user messages from."""
    out: list[str] = []
    for path in sorted((PKG / "users").rglob("*")):
        if path.suffix == ".py":
            out += _py_strings(path)
        elif path.suffix == ".json":
            out += _json_strings(json.loads(path.read_text(encoding="utf-8")))
    out += _py_strings(PKG / "llm" / "render.py")
    out += _py_strings(PKG / "preferences" / "library.py")
    out += _py_strings(PKG / "types.py")  # Condition.describe: the condition words the rule user says
    for t in load_catalogue().values():
        out += list(t.phrasings)
    return out


def _ngrams(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + N]) for i in range(len(words) - N + 1)}


@pytest.fixture(scope="module")
def sets() -> dict[str, list[dict]]:
    return {name: load_set(name) for name in SETS}


def test_every_file_opens_with_its_schema_line():
    for name, file in SETS.items():
        first = json.loads((DATA / file).read_text(encoding="utf-8").splitlines()[0])
        assert "_schema" in first, f"{file} should open with a {{'_schema': ...}} line"


def test_feedback_set_has_35_items_per_label(sets):
    counts = Counter(it["label"] for it in sets["feedback"])
    assert set(counts) == set(LABELS)
    assert min(counts.values()) >= 35, counts
    assert len(sets["feedback"]) >= 280


def test_set_sizes(sets):
    prefs = sets["preferences"]
    assert sum(1 for it in prefs if it["prefs"]) >= 120
    assert sum(1 for it in prefs if not it["prefs"]) >= 20
    assert len(sets["paraphrases"]) >= 60


def test_labels_ids_and_conditions_are_valid(sets):
    catalogue = load_catalogue()
    for name, items in sets.items():
        for it in items:
            assert isinstance(it["text"], str) and it["text"].strip(), (name, it)
            if "label" in it or name != "preferences":
                assert it["label"] in LABELS, (name, it["text"])
            for pid in (it.get("context") or {}).get("preferences", []):
                assert pid in catalogue, (name, it["text"], pid)
            for stated in it.get("prefs", []):
                assert stated["ids"] and all(i in catalogue for i in stated["ids"]), (name, it["text"], stated)
                if "condition" in stated:
                    parse_condition(stated["condition"])
            assert name == "feedback" or isinstance(it["prefs"], list), (name, it["text"])


def test_every_catalogue_type_is_stated_somewhere(sets):
    stated = {i for it in sets["preferences"] for s in it["prefs"] for i in s["ids"]}
    assert stated == set(load_catalogue())


def test_no_duplicate_texts(sets):
    norm = Counter(" ".join(_words(it["text"])) for items in sets.values() for it in items)
    assert [t for t, n in norm.items() if n > 1] == []


def test_templates_are_collected():
    # the independence test below is only as good as this collection
    templates = simulator_templates()
    assert len(templates) > 200
    assert any(len(_words(s)) >= N for t in templates for s in _segments(t))


def test_no_item_shares_five_words_with_a_simulator_template(sets):
    grams: set[tuple[str, ...]] = set()
    for t in simulator_templates():
        for seg in _segments(t):
            grams |= _ngrams(_words(seg))
    shared = {}
    for name, items in sets.items():
        for it in items:
            hit = _ngrams(_words(it["text"])) & grams
            if hit:
                shared[f"{name}: {it['text']}"] = sorted(" ".join(g) for g in hit)
    assert shared == {}


def test_the_fragment_check_catches_a_copied_template():
    phrasing = next(p for t in load_catalogue().values() for p in t.phrasings if len(_words(p)) >= N + 2)
    grams = set().union(*(_ngrams(_words(s)) for s in _segments(phrasing)))
    assert _ngrams(_words("Well, " + phrasing.lower() + " ok")) & grams


class _AlwaysNeutral(FeedbackClassifier):
    name = "always_neutral"

    def classify(self, message, context=None):
        return "neutral"


def test_always_neutral_scores_the_share_of_neutral_items(sets):
    items = sets["feedback"]
    res = score_set(items, ("labels",), _AlwaysNeutral(), PreferenceReaders(), progress=False)["classifier"]
    n = len(items)
    n_neutral = sum(1 for it in items if it["label"] == "neutral")
    # neutral and topic_shift are the labels whose default reward is 0 (DESIGN section 7)
    n_zero = sum(1 for it in items if it["label"] in ("neutral", "topic_shift"))
    assert res["n"] == n
    assert res["accuracy"] == round(n_neutral / n, 4)
    assert res["sign_agreement"] == round(n_zero / n, 4)
    precision = n_neutral / n
    f1_neutral = 2 * precision / (precision + 1)
    assert res["macro_f1"] == pytest.approx(f1_neutral / 7, abs=1e-4)
    assert sum(sum(row.values()) for row in res["confusion"].values()) == n
    for label, row in res["confusion"].items():
        assert row == {"neutral": sum(1 for it in items if it["label"] == label)}


def test_label_scores_on_a_tiny_case():
    gold = ["pos_praise", "pos_praise", "neg_correction", "neutral"]
    pred = ["pos_praise", "pos_progress", "neg_confusion", "neutral"]
    res = score_labels(gold, pred)
    assert res["accuracy"] == 0.5
    assert res["sign_agreement"] == 1.0  # praise/progress both positive, correction/confusion both negative
    # per-label F1: praise P 1 R 0.5 -> 2/3; correction 0; neutral 1
    assert res["macro_f1"] == pytest.approx((2 / 3 + 0 + 1) / 3, abs=1e-4)
    assert res["confusion"]["pos_praise"] == {"pos_praise": 1, "pos_progress": 1}
    with pytest.raises(ValueError, match="1 gold labels but 2"):
        score_labels(["neutral"], ["neutral", "neutral"])


def test_preference_scores_on_a_tiny_case():
    math = {"kind": "task_kinds", "task_kinds": ["math"]}
    golds = [
        [{"ids": ["latex", "math_latex"]}],  # read twice as math_latex: one hit
        [{"ids": ["no_emoji"]}],  # missed
        [],  # a negative with a false detection
        [{"ids": ["boxed_answer"], "condition": math}],  # hit, condition right
        [{"ids": ["verify_answer"], "condition": math}],  # read as another type: a miss and a false positive
    ]
    preds = [
        [Detection("math_latex"), Detection("math_latex")],
        [],
        [Detection("concise")],
        [Detection("boxed_answer", Condition(kind="task_kinds", task_kinds=frozenset({"math"})))],
        [Detection("exact_values")],
    ]
    res = score_preferences(golds, preds, found=[True, False, True, True, True])
    assert (res["tp"], res["fp"], res["fn"]) == (2, 2, 2)
    assert res["precision"] == 0.5 and res["recall"] == 0.5 and res["f1"] == 0.5
    assert res["negatives"] == 1 and res["negatives_with_detection"] == 1.0
    assert res["condition_accuracy"] == 1.0 and res["conditions_scored"] == 1
    assert res["found_on_statements"] == 0.75 and res["found_on_negatives"] == 1.0
    table = {(e["stated"], e["read"]): e["count"] for e in res["errors"]}
    assert table == {("no_emoji", "(none)"): 1, ("(no preference)", "concise"): 1, ("verify_answer", "exact_values"): 1}


def test_feedback_messages_state_their_restated_preference_only():
    restate = {"text": "x", "label": "neg_constraint_restate", "context": {"preferences": ["no_emoji", "concise"]}}
    assert stated_preferences(restate) == [{"ids": ["no_emoji", "concise"]}]
    praise = {"text": "x", "label": "pos_praise", "context": {"preferences": ["no_emoji"]}}
    assert stated_preferences(praise) == []
    assert stated_preferences({"text": "x", "prefs": [{"ids": ["latex"]}]}) == [{"ids": ["latex"]}]


def test_cli_prints_json_for_one_set(capsys):
    out = main(["--set", "preferences", "--json", "--sim-profiles", "msc", "--sim-users", "2",
                "--sim-sessions", "1", "--sim-draws", "1"])
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(out))
    assert set(printed["sets"]) == {"preferences"}
    assert {"recogniser", "extractor"} <= set(printed["sets"]["preferences"])
    assert printed["upper_bound"]["recogniser"]["stated"] == len(load_catalogue())
    assert "classifier" not in printed["upper_bound"]


def test_cli_tables_show_every_set_beside_the_upper_bound(capsys):
    main(["--sim-profiles", "msc", "--sim-users", "2", "--sim-sessions", "1", "--sim-draws", "1"])
    text = capsys.readouterr().out
    for word in ("feedback classifier", "statement recogniser", "extractor", "upper bound (simulator)",
                 "feedback", "paraphrases", "preferences", "confusion, feedback"):
        assert word in text


def test_bad_input_is_one_line_not_a_traceback(capsys):
    import subprocess
    import sys

    from benchmarks.detectors import main

    with pytest.raises(SystemExit):
        main(["--classifier", "oracle", "--no-upper-bound"])
    assert "true label" in capsys.readouterr().err
    p = subprocess.run([sys.executable, "-m", "benchmarks.detectors", "--classifier", "nope", "--no-upper-bound"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and p.stderr.strip().startswith("error: unknown feedback classifier 'nope'")
    assert "Traceback" not in p.stderr
