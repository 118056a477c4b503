"""A learned feedback classifier: multinomial logistic regression over hashed n-grams of a message.

The rule-based ``keyword`` classifier encodes what its author thought of; this one learns from a
hand-written corpus of how many different people write to an assistant
(``data/train_messages.jsonl``: messages about math, code, logic, medical and everyday problems,
labelled by their dominant intent with the rules of ``benchmarks/data/README.md``; none of it comes
from the simulator or from the evaluation sets).

Features of ``standard_spelling(text).lower()``: hashed words (1-grams by default; punctuation and
emoji are tokens too), hashed character 3-5-grams (robust to typos and inflections), and optionally whether each
lexicon of the keyword classifier (:data:`~personalization_env.feedback.classifiers.LEXICON`) has one
of its fixed wordings among the message's words (looked up in a table: the lexicons' regexes are too
slow for this classifier's budget). Each occurrence weighs 1/sqrt(size of its block), so that long and
short messages weigh alike. Weights are fitted with full-batch Adam on the L2-regularised
cross-entropy, from zeros, in a fixed order: the fit is deterministic, and a test re-fits the corpus
and compares with the shipped weights (``data/learned_weights.json``).

Inference needs only numpy. The weights are read on first use. Commands::

    python -m personalization_env.feedback.learned --cv    # grouped cross-validation over the settings grid
    python -m personalization_env.feedback.learned --fit   # re-fit with SETTINGS and write the weights
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import zlib
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from personalization_env.feedback.classifiers import LEXICON, FeedbackClassifier
from personalization_env.feedback.labels import DEFAULT_REWARDS, LABELS
from personalization_env.language import standard_spelling

#: the package's data folder (corpus and weights)
DATA = Path(str(resources.files("personalization_env.feedback").joinpath("data")))
CORPUS = DATA / "train_messages.jsonl"
WEIGHTS = DATA / "learned_weights.json"

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
_SPACES = re.compile(r"\s+")
_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: spreads a rolling hash over the buckets
_BASE = np.uint64(257)


@dataclass(frozen=True)
class Settings:
    """The model's settings (chosen by grouped cross-validation on the corpus, see :func:`cross_validate`).

    Attributes:
        bits: log2 of the number of hashed feature buckets.
        words: longest word n-gram (0: no word features).
        chars: (shortest, longest) character n-gram; (0, 0) for none.
        cues: whether each keyword lexicon found among the message's words is a feature.
        l2: L2 penalty on the weights (per message, added to the mean cross-entropy).
        steps: full-batch Adam steps.
        lr: Adam step size.
    """

    bits: int = 16
    words: int = 1
    chars: tuple[int, int] = (3, 5)
    cues: bool = True
    l2: float = 1e-5
    steps: int = 300
    lr: float = 0.05


#: the settings the shipped weights are fitted with
SETTINGS = Settings()


def _word_buckets(tokens: list[str], n_max: int, mask: int) -> list[int]:
    return [zlib.crc32(("w%d " % n + g).encode("utf-8")) & mask for n in range(1, n_max + 1) for g in _grams(tokens, n)]


def _char_buckets(text: str, lo: int, hi: int, bits: int) -> np.ndarray:
    """Buckets of the character n-grams of ``text`` (its UTF-8 bytes), by a vectorised rolling hash."""
    b = np.frombuffer((" " + text + " ").encode("utf-8"), dtype=np.uint8).astype(np.uint64)
    if len(b) < lo:
        return np.zeros(0, dtype=np.int64)
    h = np.zeros(len(b) - lo + 1, dtype=np.uint64)
    for k in range(lo):
        h = h * _BASE + b[k:len(b) - lo + 1 + k]
    parts = [h]
    for n in range(lo + 1, min(hi, len(b)) + 1):  # an n-gram's hash extends the (n-1)-gram's
        h = h[:-1] * _BASE + b[n - 1:]
        parts.append(h + np.uint64(n))
    return ((np.concatenate(parts) * _MIX) >> np.uint64(64 - bits)).astype(np.int64)


@lru_cache(maxsize=1)
def _cue_index() -> tuple[dict[str, tuple[str, ...]], int]:
    """Every fixed wording of the keyword lexicons (tokenised as messages are) -> the lexicons holding it,
    and the longest wording in tokens. Wordings with a regex slot (a number) are left out: looking words
    up in a table is far quicker than running the lexicons' regexes."""
    index: dict[str, list[str]] = {}
    for name, lex in LEXICON.items():
        for phrase in lex.expansions():
            if "{" not in phrase:
                index.setdefault(" ".join(_TOKEN.findall(phrase.lower())), []).append(name)
    index.pop("", None)
    return {k: tuple(dict.fromkeys(v)) for k, v in index.items()}, max(len(k.split()) for k in index)


def _grams(tokens: list[str], n: int) -> list[str]:
    """The word n-grams of ``tokens``, joined by spaces."""
    return list(map(" ".join, zip(*(tokens[k:] for k in range(n)))))


def _cues(tokens: list[str]) -> set[str]:
    """Names of the keyword lexicons with a wording among the word n-grams of ``tokens``."""
    index, longest = _cue_index()
    grams = {g for n in range(1, longest + 1) for g in _grams(tokens, n)}
    return {name for g in grams & index.keys() for name in index[g]}


def features(text: str, settings: Settings = SETTINGS) -> tuple[np.ndarray, np.ndarray]:
    """Sparse features of one message: (bucket indices, values); a bucket may appear in several blocks."""
    mask = (1 << settings.bits) - 1
    spelled = standard_spelling(text or "")
    low = _SPACES.sub(" ", spelled.lower()).strip()
    tokens = _TOKEN.findall(low)
    blocks: list[Any] = []
    if settings.words:
        blocks.append(_word_buckets(tokens, settings.words, mask))
    if settings.chars[1]:
        blocks.append(_char_buckets(low, *settings.chars, settings.bits))
    if settings.cues:
        blocks.append([zlib.crc32(("cue " + name).encode()) & mask for name in _cues(tokens)])
    if not blocks:
        raise ValueError(f"settings {settings} give no features; enable words, chars or cues")
    # each occurrence weighs 1/sqrt(size of its block): long and short messages weigh alike
    sizes = [len(x) for x in blocks]
    val = np.repeat(np.float32(1.0) / np.sqrt(np.maximum(sizes, 1), dtype=np.float32), sizes)
    return np.concatenate([np.asarray(x, dtype=np.int64) for x in blocks]), val


def _design(texts: Sequence[str], settings: Settings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns and values of the sparse design matrix of ``texts``."""
    feats = [features(t, settings) for t in texts]
    rows = np.repeat(np.arange(len(feats)), [len(i) for i, _ in feats])
    cols = np.concatenate([i for i, _ in feats]) if feats else np.zeros(0, dtype=np.int64)
    vals = np.concatenate([v for _, v in feats]).astype(np.float64) if feats else np.zeros(0)
    return rows, cols, vals


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit(texts: Sequence[str], labels: Sequence[str], settings: Settings = SETTINGS) -> dict[str, Any]:
    """Fit the model on ``texts`` with their ``labels``; returns ``{"W": (buckets, labels), "b": (labels,)}``."""
    bad = sorted(set(labels) - set(LABELS))
    if bad:
        raise ValueError(f"unknown label(s) {bad} in the training data; expected labels from {LABELS}")
    rows, cols, vals = _design(texts, settings)
    n, k, dim = len(texts), len(LABELS), 1 << settings.bits
    empty = sorted(set(range(n)) - set(rows.tolist()))
    if empty:
        raise ValueError(f"training message(s) {[texts[i] for i in empty[:3]]} give no features; drop them")
    used, cols = np.unique(cols, return_inverse=True)  # fit only the buckets the corpus fills
    starts = np.searchsorted(rows, np.arange(n))
    y = np.zeros((n, k))
    y[np.arange(n), [LABELS.index(lab) for lab in labels]] = 1.0
    w, b = np.zeros((len(used), k)), np.zeros(k)
    m_w, v_w, m_b, v_b = np.zeros_like(w), np.zeros_like(w), np.zeros(k), np.zeros(k)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, settings.steps + 1):
        z = np.add.reduceat(w[cols] * vals[:, None], starts, axis=0)
        g = (_softmax(z + b) - y) / n
        g_w = np.stack([np.bincount(cols, weights=vals * g[rows, j], minlength=len(used)) for j in range(k)], axis=1)
        g_w += 2 * settings.l2 * w
        g_b = g.sum(axis=0)
        for p, gp, m, v in ((w, g_w, m_w, v_w), (b, g_b, m_b, v_b)):
            m *= beta1
            m += (1 - beta1) * gp
            v *= beta2
            v += (1 - beta2) * gp * gp
            p -= settings.lr * (m / (1 - beta1 ** step)) / (np.sqrt(v / (1 - beta2 ** step)) + eps)
    full = np.zeros((dim, k), dtype=np.float32)
    full[used] = w
    return {"W": full, "b": b.astype(np.float32)}


def predict(model: Mapping[str, Any], texts: Sequence[str], settings: Settings = SETTINGS) -> list[str]:
    """Labels of ``texts`` under a fitted ``model`` (as :func:`fit` returns)."""
    return [LABELS[int(np.argmax(_scores(model, t, settings)))] for t in texts]


def _scores(model: Mapping[str, Any], text: str, settings: Settings) -> np.ndarray:
    idx, val = features(text, settings)
    return val @ model["W"][idx] + model["b"]


# ------------------------------------------------------------------------------------------------
# corpus, weights file


def load_corpus(path: Path = CORPUS) -> list[dict[str, Any]]:
    """The training messages (``text``, ``label``, ``batch``), the schema line left out."""
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [r for r in rows if "_schema" not in r]


def save_weights(model: Mapping[str, Any], settings: Settings, path: Path = WEIGHTS) -> None:
    """Write ``model`` as JSON: the settings, the labels, the bias, and the weight matrix as zlib-compressed
    float32 bytes in base64 (JSON so that the package data rules ship it)."""
    w = np.ascontiguousarray(model["W"], dtype="<f4")
    doc = {"settings": asdict(settings), "labels": list(LABELS), "shape": list(w.shape),
           "b": [float(x) for x in model["b"]],
           "W": base64.b64encode(zlib.compress(w.tobytes(), 9)).decode("ascii")}
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def load_weights(path: Path = WEIGHTS) -> tuple[dict[str, Any], Settings]:
    """The model and settings written by :func:`save_weights`."""
    if not path.exists():
        raise FileNotFoundError(f"no learned weights at {path}; run `python -m personalization_env.feedback.learned --fit`")
    doc = json.loads(path.read_text(encoding="utf-8"))
    if tuple(doc["labels"]) != LABELS:
        raise ValueError(f"weights at {path} are for labels {doc['labels']}, not {list(LABELS)}; re-fit them with --fit")
    s = doc["settings"]
    settings = Settings(**{**s, "chars": tuple(s["chars"])})
    w = np.frombuffer(zlib.decompress(base64.b64decode(doc["W"])), dtype="<f4").reshape(doc["shape"])
    return {"W": w, "b": np.asarray(doc["b"], dtype=np.float32)}, settings


class LearnedClassifier(FeedbackClassifier):
    """Labels a message with the logistic regression fitted on the hand-written corpus (see module doc).

    Args:
        weights: the weights file (default: the shipped ``data/learned_weights.json``); read on first use.
    """

    name = "learned"

    def __init__(self, weights: str | Path | None = None):
        self.weights = Path(weights) if weights is not None else WEIGHTS
        self._model: dict[str, Any] | None = None
        self._settings = SETTINGS

    def _loaded(self) -> dict[str, Any]:
        if self._model is None:
            self._model, self._settings = load_weights(self.weights)
        return self._model

    def scores(self, message: str) -> dict[str, float]:
        """Probability of each label for ``message``."""
        p = _softmax(_scores(self._loaded(), message or "", self._settings)[None, :].astype(np.float64))[0]
        return {lab: float(x) for lab, x in zip(LABELS, p)}

    def classify(self, message: str, context: Mapping[str, Any] | None = None) -> str:
        return LABELS[int(np.argmax(_scores(self._loaded(), message or "", self._settings)))]


# ------------------------------------------------------------------------------------------------
# model selection


def sign(label: str) -> int:
    """Sign of a label's default reward (-1, 0, +1)."""
    r = DEFAULT_REWARDS[label]
    return (r > 0) - (r < 0)


def cross_validate(rows: Sequence[Mapping[str, Any]], settings: Settings, folds: int = 5) -> dict[str, float]:
    """Label accuracy and sign agreement of ``settings`` by grouped k-fold: whole batches (imagined users)
    are held out together, so a fold is scored on writers it was not trained on."""
    batches = sorted({r["batch"] for r in rows})
    fold_of = {bt: i % folds for i, bt in enumerate(batches)}
    gold, pred = [], []
    for f in range(folds):
        train = [r for r in rows if fold_of[r["batch"]] != f]
        test = [r for r in rows if fold_of[r["batch"]] == f]
        model = fit([r["text"] for r in train], [r["label"] for r in train], settings)
        gold += [r["label"] for r in test]
        pred += predict(model, [r["text"] for r in test], settings)
    n = len(gold)
    return {"accuracy": round(sum(g == p for g, p in zip(gold, pred)) / n, 4),
            "sign": round(sum(sign(g) == sign(p) for g, p in zip(gold, pred)) / n, 4)}


def grid(base: Settings = Settings(words=2)) -> list[Settings]:
    """The settings compared by ``--cv``: the penalty with and without the lexicon cues, then each
    feature block left out or changed in turn."""
    out = [replace(base, cues=cues, l2=l2) for cues in (False, True) for l2 in (1e-6, 1e-5, 1e-4, 1e-3)]
    out += [replace(base, words=1), replace(base, chars=(2, 4)), replace(base, chars=(0, 0)), replace(base, words=0)]
    return list(dict.fromkeys(out))


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fit", action="store_true", help=f"fit on the corpus with SETTINGS and write {WEIGHTS.name}")
    p.add_argument("--cv", action="store_true", help="print grouped cross-validation figures of each setting in the grid")
    p.add_argument("--folds", type=int, default=5)
    args = p.parse_args(argv)
    rows = load_corpus()
    if args.cv:
        for s in grid():
            print(json.dumps({**asdict(s), **cross_validate(rows, s, args.folds)}), flush=True)
    if args.fit:
        save_weights(fit([r["text"] for r in rows], [r["label"] for r in rows], SETTINGS), SETTINGS)
        print(f"wrote {WEIGHTS} ({WEIGHTS.stat().st_size} bytes) from {len(rows)} messages with {SETTINGS}")
    if not (args.cv or args.fit):
        p.error("nothing to do: pass --fit and/or --cv")


if __name__ == "__main__":
    main()
