"""Loader for MultiSessionCollab-format task caches (``{name}_test20.json`` files).

Schemas differ per dataset (see the MultiSessionCollab release):

* ``math_hard`` / ``math_500``: ``{"problem", "solution", "level", "type"}``; the answer is the last
  ``\\boxed{...}`` in ``solution``.
* ``logiqa``: ``{"problem", "solution"}``; options ``(A)...`` .. ``(D)...`` sit in the problem after
  ``Answer Choices:``; solution looks like ``(B)option text``.
* ``mmlu``: options listed in the problem as ``0. ...`` .. ``3. ...`` after ``Choices:``; solution is the
  option text. The problem text is rewritten to list them as ``A. ...`` .. ``D. ...`` so that the
  letters in ``answer`` match what the user sees (the original is kept in ``meta["source_problem"]``).
* ``medqa``: options ``A. ...`` .. ``D. ...`` after ``Options:``; solution is the option text.

``n`` keeps the first ``n`` items in file order (no sampling; ``seed`` is ignored).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from personalization_env.naming import json_error
from personalization_env.tasks.scoring import boxed_contents
from personalization_env.types import Task

logger = logging.getLogger(__name__)

MSC_DATASETS: tuple[str, ...] = ("math_hard", "math_500", "logiqa", "mmlu", "medqa")
ENV_VAR = "MSC_DATA_DIR"
_LETTERS = "ABCD"


def find_cache_file(name: str, data_dir: str | os.PathLike[str] | None) -> Path:
    """Locate the cache file for dataset ``name``.

    Args:
        name: one of :data:`MSC_DATASETS`.
        data_dir: folder holding the caches; None means the ``MSC_DATA_DIR`` environment variable.

    Returns:
        ``{data_dir}/{name}_test20.json`` if present, else the first ``{data_dir}/{name}*.json`` by name.

    Raises:
        FileNotFoundError: one line naming the file looked for and how to point at it.
    """
    if data_dir is None:
        data_dir = os.environ.get(ENV_VAR) or None
    if data_dir is None:
        raise FileNotFoundError(
            f"dataset {name!r} needs the MultiSessionCollab cache file {name}_test20.json; "
            f"pass --data-dir DIR (data_dir=...) or set {ENV_VAR} to the folder that holds it"
        )
    folder = Path(data_dir).expanduser()
    exact = folder / f"{name}_test20.json"
    if exact.is_file():
        return exact
    others = sorted(p for p in folder.glob(f"{name}*.json") if p.is_file()) if folder.is_dir() else []
    if others:
        return others[0]
    raise FileNotFoundError(
        f"no cache file for dataset {name!r}: looked for {exact} (or {folder}/{name}*.json); "
        f"pass --data-dir DIR (data_dir=...) or set {ENV_VAR} to the folder that holds it"
    )


def load_msc(name: str, *, n: int | None = None, data_dir: str | os.PathLike[str] | None = None) -> list[Task]:
    """Load and normalise a MultiSessionCollab cache.

    Args:
        name: one of :data:`MSC_DATASETS`.
        n: keep the first ``n`` items (None keeps all).
        data_dir: folder holding the caches (default: ``$MSC_DATA_DIR``).

    Returns:
        Normalised tasks with ids ``{name}-0000``, ``{name}-0001``, ...

    Raises:
        FileNotFoundError: the cache file cannot be found.
        ValueError: the file is not valid JSON or an item does not fit the dataset's schema.
    """
    path = find_cache_file(name, data_dir)
    try:
        with path.open("r", encoding="utf-8") as fh:
            items = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({json_error(exc)}); re-download the cache") from exc
    if isinstance(items, dict):
        items = items.get("data", items.get("items"))
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of items, got {type(items).__name__}")
    if n is not None:
        if n > len(items):
            logger.warning("%s has %d items; asked for n=%d, returning all", path, len(items), n)
        items = items[:n]
    build = _build_math if name in ("math_hard", "math_500") else _build_mc
    tasks = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("problem"), str) or "solution" not in item:
            raise ValueError(f"{path} item {i}: expected an object with 'problem' and 'solution' strings")
        tasks.append(build(name, i, item, path))
    return tasks


# --------------------------------------------------------------------------------------------------


def _sentences(text: str) -> list[str]:
    text = re.sub(r"\[asy\].*?\[/asy\]", " ", text, flags=re.S)
    text = re.sub(r"\s+", " ", text).strip()
    parts = re.split(r"(?<=[.!?])(?<!Dr\.)(?<!Mr\.)(?<!Ms\.)(?<!Mrs\.)(?<!St\.)(?<!vs\.)(?<!\.g\.)(?<!\.e\.)"
                     r"\s+(?=[A-Z$\\(])", text)
    return [p.strip() for p in parts if p.strip()]


def _math_steps(solution: str) -> tuple[str, ...]:
    sents = _sentences(solution)
    if len(sents) <= 5:
        return tuple(sents)
    last = next((s for s in reversed(sents) if "\\boxed" in s), sents[-1])
    head = [s for s in sents[:4] if s != last]
    return tuple(head + [last])


def _build_math(name: str, i: int, item: dict[str, Any], path: Path) -> Task:
    solution = str(item["solution"])
    boxes = boxed_contents(solution)
    if not boxes:
        raise ValueError(f"{path} item {i}: solution has no \\boxed{{...}} answer")
    meta = {"source": name, "source_file": str(path), "solution": solution,
            "level": item.get("level"), "type": item.get("type")}
    return Task(task_id=f"{name}-{i:04d}", dataset=name, kind="math", problem=item["problem"],
                answer=boxes[-1].strip(), steps=_math_steps(solution), meta=meta)


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().rstrip(".").strip().casefold()


def _parse_logiqa(problem: str) -> tuple[str, list[str], str]:
    head, sep, tail = problem.partition("Answer Choices:")
    if not sep:
        raise ValueError("no 'Answer Choices:' section")
    tail = re.split(r"\n\s*A:\s*Among", tail)[0]
    parts = re.split(r"\(([A-D])\)", tail)
    opts: dict[str, str] = {}
    for letter, text in zip(parts[1::2], parts[2::2]):
        opts[letter] = text.strip()
    return head, [opts.get(c, "") for c in _LETTERS], tail


def _parse_listed(problem: str, header: str, labels: str) -> tuple[str, list[str]]:
    idx = problem.rfind(header)
    if idx < 0:
        raise ValueError(f"no '{header}' section")
    head, tail = problem[:idx], problem[idx + len(header):]
    opts: dict[str, str] = {}
    for m in re.finditer(rf"(?m)^\s*([{labels}])\.\s?(.*)$", tail):
        opts.setdefault(m.group(1), m.group(2).strip())
    return head, [opts.get(c, "") for c in labels]


def _build_mc(name: str, i: int, item: dict[str, Any], path: Path) -> Task:
    problem, solution = item["problem"], str(item["solution"]).strip()
    source_problem = problem
    try:
        if name == "logiqa":
            _, choices, _ = _parse_logiqa(problem)
            m = re.match(r"^\(([A-D])\)\s*(.*)$", solution, re.S)
            if not m:
                raise ValueError(f"solution {solution[:40]!r} does not start with '(A)'..'(D)'")
            letter = m.group(1)
        else:
            if name == "mmlu":
                head, choices = _parse_listed(problem, "Choices:", "0123")
                problem = head.rstrip() + "\n\nChoices:\n" + "\n".join(
                    f"{_LETTERS[k]}. {c}" for k, c in enumerate(choices))
            else:
                head, choices = _parse_listed(problem, "Options:", "ABCD")
            hits = [k for k, c in enumerate(choices) if _norm(c) == _norm(solution)]
            if not hits:
                raise ValueError(f"solution {solution[:40]!r} matches none of the options")
            letter = _LETTERS[hits[0]]
        if any(not c for c in choices):
            raise ValueError(f"could not parse all four options (got {choices!r})")
    except ValueError as exc:
        raise ValueError(f"{path} item {i}: {exc}") from exc
    text = choices[_LETTERS.index(letter)]
    steps = (
        "Read the question and weigh each option against what it states.",
        f"Option ({letter}), \"{text}\", is the one that fits.",
    )
    meta = {"source": name, "source_file": str(path), "answer_text": text, "solution": solution,
            "source_problem": source_problem}
    return Task(task_id=f"{name}-{i:04d}", dataset=name, kind="multiple_choice", problem=problem,
                answer=letter, choices=tuple(choices), steps=steps, meta=meta)
