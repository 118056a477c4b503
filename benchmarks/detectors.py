"""The embedded world's detectors measured on text the simulator did not write.

Three hand-written sets in ``benchmarks/data/`` (see ``benchmarks/data/README.md``):

- ``feedback_messages``: user messages with their feedback label (the seven of
  :mod:`personalization_env.feedback.labels`), traps marked with a ``note``;
- ``preference_statements``: sentences stating catalogue preferences (each with the type ids that
  count as reading it right, and its condition when the sentence names one), plus negatives;
- ``paraphrases``: what the hybrid user (rule decisions rewritten by an LLM) would send, with the label
  and the preferences it carries.

Detectors scored:

- the feedback classifier (``--classifier``, default ``keyword``): label accuracy, sign agreement
  (the sign of each label's default reward), macro-F1 and a confusion table;
- the statement recogniser (:class:`~personalization_env.llm.recognize.PreferenceRecognizer`, as the
  scripted agent model reads a text: every statement of it): precision / recall / F1 on catalogue
  types, items of the negatives with a false detection, condition accuracy, a miss table;
- the extractor (``--extractor``, default ``rule``), its cards read as types by the same recogniser
  (the path a memory note takes to the scripted agent model): the same figures, plus how many
  statements gave a card at all.

Beside each figure the same detector on the simulator's own text, as an upper bound: feedback turns
collected by :func:`benchmarks.feedback_accuracy.collect`, and preference restatements written by the
simulator's :func:`~personalization_env.preferences.library.phrase` (every type, a few draws each)::

    python -m benchmarks.detectors                 # all sets, tidy tables
    python -m benchmarks.detectors --set feedback --json
"""

from __future__ import annotations

import argparse
import json
import sys
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from benchmarks.progress import Progress
from personalization_env.feedback.labels import LABELS, reward_of
from personalization_env.types import SITUATIONS, Condition

#: the hand-written evaluation sets
DATA = Path(__file__).resolve().parent / "data"
SETS: dict[str, str] = {"feedback": "feedback_messages.jsonl", "preferences": "preference_statements.jsonl",
                        "paraphrases": "paraphrases.jsonl"}
#: what each set measures: labels (feedback classifier), preferences (recogniser and extractor)
MEASURES: dict[str, tuple[str, ...]] = {"feedback": ("labels", "preferences"), "preferences": ("preferences",),
                                        "paraphrases": ("labels", "preferences")}
MISS = "(none)"  # the detector found nothing for a stated preference
NEGATIVE = "(no preference)"  # the item states nothing, yet something was detected


def load_set(name: str, data: Path = DATA) -> list[dict[str, Any]]:
    """The items of set ``name`` (``feedback``, ``preferences`` or ``paraphrases``), schema line dropped."""
    if name not in SETS:
        raise ValueError(f"unknown evaluation set {name!r}; expected one of {sorted(SETS)}")
    path = data / SETS[name]
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{i}: not JSON ({e.msg}); write one JSON object per line") from None
        if "_schema" not in obj:
            rows.append(obj)
    return rows


def stated_preferences(item: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The preferences ``item`` states: its ``prefs``; for a feedback message without them, one
    preference (any of the user's standing ``context`` preferences) when it restates one, none otherwise
    (so every correction, question or thanks is a negative for the preference detectors)."""
    if "prefs" in item:
        return list(item["prefs"])
    held = (item.get("context") or {}).get("preferences") or []
    return [{"ids": list(held)}] if item.get("label") == "neg_constraint_restate" and held else []


def parse_condition(raw: Any) -> Condition:
    """A condition written as in the catalogue: ``"always"``, a situation name or a task-kinds object
    (a :class:`Condition` passes through)."""
    if isinstance(raw, Condition):
        return raw
    if raw in (None, "always"):
        return Condition()
    if isinstance(raw, str) and raw in SITUATIONS:
        return Condition(kind="situation", situation=raw)
    if isinstance(raw, Mapping) and raw.get("kind") == "task_kinds":
        return Condition(kind="task_kinds", task_kinds=frozenset(raw.get("task_kinds") or ()))
    raise ValueError(f"bad condition {raw!r}; use 'always', one of {SITUATIONS} or "
                     "{'kind': 'task_kinds', 'task_kinds': [...]}")


def _sign(label: str) -> int:
    r = reward_of(label)
    return (r > 0) - (r < 0)


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def score_labels(gold: Sequence[str], pred: Sequence[str]) -> dict[str, Any]:
    """Label accuracy, sign agreement, macro-F1 (over the labels present in ``gold``) and the
    confusion table ``{gold: {predicted: count}}`` of a classifier's predictions."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions; score one prediction per item")
    if not gold:
        raise ValueError("no items to score; pass at least one (gold, predicted) pair")
    confusion: dict[str, Counter] = {g: Counter() for g in LABELS if g in set(gold)}
    for g, p in zip(gold, pred):
        confusion[g][p] += 1
    per: dict[str, dict[str, Any]] = {}
    for lab in confusion:
        tp = confusion[lab][lab]
        predicted = sum(1 for p in pred if p == lab)
        prec, rec = (tp / predicted if predicted else 0.0), tp / sum(confusion[lab].values())
        per[lab] = {"n": sum(confusion[lab].values()), "precision": round(prec, 4), "recall": round(rec, 4),
                    "f1": round(_f1(prec, rec), 4)}
    return {
        "n": len(gold),
        "accuracy": round(sum(g == p for g, p in zip(gold, pred)) / len(gold), 4),
        "sign_agreement": round(sum(_sign(g) == _sign(p) for g, p in zip(gold, pred)) / len(gold), 4),
        "macro_f1": round(sum(v["f1"] for v in per.values()) / len(per), 4),
        "per_label": per,
        "confusion": {g: dict(c) for g, c in confusion.items()},
    }


@dataclass(frozen=True)
class Detection:
    """A preference a detector read in a text: its type id and the condition it read (None: not read)."""

    type_id: str
    condition: Condition | None = None


def score_preferences(golds: Sequence[Sequence[Mapping[str, Any]]], preds: Sequence[Sequence[Detection]],
                      found: Sequence[bool] | None = None) -> dict[str, Any]:
    """Precision / recall / F1 of detected types against stated preferences.

    Each stated preference (``{"ids": [...], "condition": ...}``) is matched by at most one detection
    whose type is among its ids; repeated detections of one type count once. Unmatched stated
    preferences are misses, unmatched detections false positives. An item with no stated preference is
    a negative: any detection on it is a false detection.

    Args:
        golds: per item, the stated preferences (empty for a negative).
        preds: per item, what the detector read.
        found: per item, whether the detector produced anything at all (the extractor's cards, even
            ones no type was read from); gives the statement-level detection rates.
    """
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} items but {len(preds)} predictions; score one prediction list per item")
    tp = fp = fn = cond_ok = cond_n = 0
    table: Counter = Counter()
    neg_n = neg_hit = 0
    for gold, pred in zip(golds, preds):
        left = list({d.type_id: d for d in pred}.values())
        unmatched = []
        for g in gold:
            hit = next((d for d in left if d.type_id in g["ids"]), None)
            if hit is None:
                unmatched.append(g)
                continue
            left.remove(hit)
            tp += 1
            if "condition" in g:
                cond_n += 1
                cond_ok += hit.condition == parse_condition(g["condition"])
        fn += len(unmatched)
        fp += len(left)
        for g, d in zip(unmatched, left + [None] * len(unmatched)):
            table[(g["ids"][0], d.type_id if d else MISS)] += 1
        for d in left[len(unmatched):]:
            table[(NEGATIVE if not gold else "(extra)", d.type_id)] += 1
        if not gold:
            neg_n += 1
            neg_hit += bool(pred)
    p, r = (tp / (tp + fp) if tp + fp else 0.0), (tp / (tp + fn) if tp + fn else 0.0)
    out: dict[str, Any] = {
        "items": len(golds), "stated": tp + fn, "negatives": neg_n, "tp": tp, "fp": fp, "fn": fn,
        "precision": round(p, 4), "recall": round(r, 4), "f1": round(_f1(p, r), 4),
        "negatives_with_detection": _ratio(neg_hit, neg_n),
        "condition_accuracy": _ratio(cond_ok, cond_n), "conditions_scored": cond_n,
        "errors": [{"stated": g, "read": d, "count": n} for (g, d), n in table.most_common()],
    }
    if found is not None:
        pos = [f for f, g in zip(found, golds) if g]
        neg = [f for f, g in zip(found, golds) if not g]
        out["found_on_statements"] = _ratio(sum(pos), len(pos))
        out["found_on_negatives"] = _ratio(sum(neg), len(neg))
    return out


class PreferenceReaders:
    """The recogniser and the extractor as functions text -> detections (built once, on first use).

    Args:
        extractor: extractor spec for :func:`agents.memory.extractors.make_extractor`.
    """

    def __init__(self, extractor: str = "rule"):
        self.extractor_spec = extractor
        self._rec: Any = None
        self._ext: Any = None

    def _recognizer(self) -> Any:
        if self._rec is None:
            from personalization_env.llm.recognize import PreferenceRecognizer
            from personalization_env.preferences.library import load_catalogue

            self._rec = PreferenceRecognizer(load_catalogue())
        return self._rec

    def _read(self, statement: str) -> Detection | None:
        hit = self._recognizer().recognize(statement)
        return None if hit is None else Detection(hit.type_id, hit.condition)

    def recognise(self, text: str) -> list[Detection]:
        """Every statement of ``text`` read by the recogniser."""
        from personalization_env.llm.recognize import statements

        return [d for d in map(self._read, statements(text)) if d is not None]

    def extract(self, text: str) -> tuple[list[Detection], bool]:
        """The extractor's cards of ``text`` read as types, and whether it made any card."""
        if self._ext is None:
            from agents.memory.extractors import make_extractor

            self._ext = make_extractor(self.extractor_spec)
        cards = self._ext.extract(text)
        return [d for d in (self._read(c.note) for c in cards) if d is not None], bool(cards)


def simulator_statements(draws: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """Restatements the simulator itself writes (:func:`~personalization_env.preferences.library.phrase`):
    ``draws`` per catalogue type, under the type's own condition, as items of the preference format."""
    import numpy as np

    from personalization_env.preferences.library import load_catalogue, phrase
    from personalization_env.types import Preference

    rng = np.random.default_rng(seed)
    out = []
    for t in load_catalogue().values():
        for _ in range(draws):
            stated = {"ids": [t.id]} if t.condition.kind == "always" else {"ids": [t.id], "condition": t.condition}
            out.append({"text": phrase(Preference(t, t.condition), rng), "prefs": [stated]})
    return out


_CHUNK = 64  # messages per classify_batch call (an LLM judge batches them)


def _run(items: Sequence[Any], fn: Callable[[Any], Any], desc: str, progress: bool,
         size: Callable[[Any], int] = lambda _: 1) -> list[Any]:
    bar = Progress(sum(map(size, items)), desc, unit="item", enabled=progress)
    out = []
    for it in items:
        out.append(fn(it))
        bar.update(size(it))
    bar.close()
    return out


def score_set(items: Sequence[Mapping[str, Any]], measures: Iterable[str], classifier: Any,
              readers: PreferenceReaders, desc: str = "detectors", progress: bool = True) -> dict[str, Any]:
    """Score the detectors on ``items`` for ``measures`` (``labels`` and/or ``preferences``)."""
    out: dict[str, Any] = {}
    if "labels" in measures:
        chunks = [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)]
        preds = [p for chunk in _run(chunks, lambda c: classifier.classify_batch(
            [it["text"] for it in c], [it.get("context") for it in c]), f"{desc} classifier", progress, len)
            for p in chunk]
        out["classifier"] = score_labels([it["label"] for it in items], preds)
    if "preferences" in measures:
        golds = [stated_preferences(it) for it in items]
        out["recogniser"] = score_preferences(golds, _run(items, lambda it: readers.recognise(it["text"]),
                                                          f"{desc} recogniser", progress))
        ext = _run(items, lambda it: readers.extract(it["text"]), f"{desc} extractor", progress)
        out["extractor"] = score_preferences(golds, [d for d, _ in ext], [f for _, f in ext])
    return out


def upper_bound(measures: set[str], classifier: Any, readers: PreferenceReaders, profiles: str, users: int,
                sessions: int, draws: int, progress: bool) -> dict[str, Any]:
    """The same detectors on the simulator's own text (see module docstring)."""
    out: dict[str, Any] = {}
    if "labels" in measures:
        from benchmarks.feedback_accuracy import collect

        turns = [t for prof in profiles.split(",") for t in collect(prof, users, sessions)]
        out.update(score_set([{"text": m, "label": lab} for m, lab in turns], ("labels",), classifier, readers,
                             "simulator", progress))
    if "preferences" in measures:
        out.update(score_set(simulator_statements(draws), ("preferences",), classifier, readers, "simulator",
                             progress))
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if not math.isnan(v) else "-"
    return str(v)


_LABEL_ROWS = (("items", "n"), ("accuracy", "accuracy"), ("sign agreement", "sign_agreement"),
               ("macro-F1", "macro_f1"))
_PREF_ROWS = (("stated prefs / negative items", None), ("precision", "precision"), ("recall", "recall"),
              ("F1", "f1"), ("negatives with a detection", "negatives_with_detection"),
              ("condition accuracy (n)", None), ("any card on statements", "found_on_statements"),
              ("any card on negatives", "found_on_negatives"))


def _cell(res: Mapping[str, Any] | None, key: str | None, name: str) -> str:
    if res is None:
        return ""
    if name.startswith("stated prefs"):
        return f"{res['stated']} / {res['negatives']}"
    if name.startswith("condition accuracy"):
        return f"{_fmt(res['condition_accuracy'])} ({res['conditions_scored']})"
    return _fmt(res.get(key)) if key in res else ""


def format_tables(result: Mapping[str, Any], top: int = 12) -> str:
    """Side-by-side tables (sets, then the simulator upper bound) and each set's confusions."""
    cols = [*result["sets"], "upper bound (simulator)"]
    per_col = {**result["sets"], "upper bound (simulator)": result.get("upper_bound", {})}
    lines: list[str] = []
    det = result["detectors"]
    for block, title, rows in (("classifier", f"feedback classifier ({det['classifier']})", _LABEL_ROWS),
                               ("recogniser", "statement recogniser", _PREF_ROWS[:-2]),
                               ("extractor", f"extractor ({det['extractor']}; types read by the recogniser)",
                                _PREF_ROWS)):
        shown = [c for c in cols if block in per_col[c]]
        if not shown:
            continue
        width = max(len(r[0]) for r in rows) + 2
        lines += ["", title, " " * width + "".join(f"{c:>26}" for c in shown)]
        for name, key in rows:
            lines.append(f"{name:<{width}}" + "".join(f"{_cell(per_col[c][block], key, name):>26}" for c in shown))
    for name, res in result["sets"].items():
        if "classifier" in res:
            lines += ["", f"confusion, {name} (rows: true label, columns: predicted)", _confusion(res["classifier"])]
        for block in ("recogniser", "extractor"):
            if block in res and res[block]["errors"]:
                lines += ["", f"{block} errors, {name} (stated -> read; top {top})"]
                lines += [f"  {e['count']:>3}  {e['stated']} -> {e['read']}" for e in res[block]["errors"][:top]]
    return "\n".join(lines[1:])


_SHORT = {"neg_constraint_restate": "restate", "neg_correction": "correct", "neg_confusion": "confuse",
          "pos_praise": "praise", "pos_progress": "progress", "neutral": "neutral", "topic_shift": "shift"}


def _confusion(res: Mapping[str, Any]) -> str:
    conf = res["confusion"]
    preds = [lab for lab in LABELS if any(lab in row for row in conf.values())]
    preds += sorted({p for row in conf.values() for p in row} - set(preds))
    head = f"{'':<24}" + "".join(f"{_SHORT.get(p, p)[:9]:>10}" for p in preds) + f"{'n':>6}{'recall':>8}"
    rows = [head]
    for g, row in conf.items():
        rows.append(f"{g:<24}" + "".join(f"{row.get(p, 0):>10}" for p in preds)
                    + f"{sum(row.values()):>6}{res['per_label'][g]['recall']:>8.2f}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", default="all", choices=[*SETS, "all"], help="which evaluation set (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--classifier", default="keyword", help="feedback classifier spec (make_classifier)")
    p.add_argument("--extractor", default="rule", help="extractor spec (make_extractor)")
    p.add_argument("--sim-profiles", default="msc,complex", help="profile sets of the simulator upper bound")
    p.add_argument("--sim-users", type=int, default=40, help="users per profile set for the upper bound")
    p.add_argument("--sim-sessions", type=int, default=5, help="sessions per user for the upper bound")
    p.add_argument("--sim-draws", type=int, default=3, help="simulator restatements per catalogue type")
    p.add_argument("--no-upper-bound", action="store_true", help="skip the simulator figures")
    p.add_argument("--data", default=str(DATA), help="folder of the evaluation sets (default: %(default)s)")
    args = p.parse_args(argv)
    from personalization_env.feedback import make_classifier

    if args.classifier == "oracle":
        p.error("--classifier oracle reads the simulator's true label, which hand-written messages do not have; "
                "measure keyword, learned or llm:<spec>")
    classifier = make_classifier(args.classifier)
    readers = PreferenceReaders(args.extractor)
    names = list(SETS) if args.set == "all" else [args.set]
    progress = not args.json
    result: dict[str, Any] = {"detectors": {"classifier": args.classifier, "extractor": args.extractor,
                                            "recogniser": "PreferenceRecognizer"}, "sets": {}}
    for name in names:
        result["sets"][name] = score_set(load_set(name, Path(args.data)), MEASURES[name], classifier, readers,
                                         name, progress)
    if not args.no_upper_bound:
        measures = {m for n in names for m in MEASURES[n]}
        result["upper_bound"] = upper_bound(measures, classifier, readers, args.sim_profiles, args.sim_users,
                                            args.sim_sessions, args.sim_draws, progress)
        result["upper_bound_source"] = {"feedback turns": f"benchmarks.feedback_accuracy.collect, profiles "
                                        f"{args.sim_profiles}, {args.sim_users} users x {args.sim_sessions} sessions",
                                        "preference statements": f"library.phrase, {args.sim_draws} per type"}
    print(json.dumps(result) if args.json else format_tables(result))
    return result


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as e:  # a bad name or folder: one line, not a traceback
        sys.exit(f"error: {e}")
