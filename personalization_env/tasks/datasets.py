"""``load_tasks``: one entry point for the offline generators and the MultiSessionCollab caches."""

from __future__ import annotations

import difflib
import logging
import os
from typing import Callable

import numpy as np

from personalization_env.tasks import gen_code, gen_logic, gen_math, gen_mc
from personalization_env.tasks.msc_loader import MSC_DATASETS, load_msc
from personalization_env.tasks.registry import normalise_problem, register_tasks
from personalization_env.types import Task

logger = logging.getLogger(__name__)

GENERATORS: dict[str, Callable[[np.random.Generator, int, str], Task]] = {
    "gen_math": gen_math.make_task,
    "gen_logic": gen_logic.make_task,
    "gen_mc": gen_mc.make_task,
    "gen_code": gen_code.make_task,
}

#: Every dataset name :func:`load_tasks` knows: seeded generators first, then MultiSessionCollab caches.
DATASETS: tuple[str, ...] = tuple(GENERATORS) + MSC_DATASETS

DEFAULT_N = 100
_MAX_ATTEMPTS = 50


def _check_dataset(dataset: object) -> str:
    if not isinstance(dataset, str):
        raise TypeError(f"dataset must be a name (str), got {type(dataset).__name__}; known: {', '.join(DATASETS)}")
    if dataset in DATASETS:
        return dataset
    close = difflib.get_close_matches(dataset.strip().lower(), DATASETS, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"unknown dataset {dataset!r}; {hint}known: {', '.join(DATASETS)}")


def load_tasks(dataset: str, *, n: int | None = None, seed: int = 0,
               data_dir: str | os.PathLike[str] | None = None) -> list[Task]:
    """Load or generate tasks and register them for :func:`~personalization_env.tasks.lookup_task`.

    Generators (``gen_*``) are deterministic given ``seed``: task ``i`` is drawn from
    ``numpy.random.default_rng([seed, i, attempt])`` (``attempt`` > 0 only to avoid a duplicate problem),
    so the first ``k`` tasks do not depend on ``n``. Cache datasets (``math_hard``, ``math_500``,
    ``logiqa``, ``mmlu``, ``medqa``) are read from ``{data_dir}/{name}_test20.json`` (or any
    ``{name}*.json`` there) and ``n`` keeps the first ``n`` items in file order; ``seed`` is ignored.

    Args:
        dataset: one of :data:`DATASETS`.
        n: number of tasks (default 100 for generators, the whole file for caches).
        seed: generator seed.
        data_dir: folder with MultiSessionCollab caches (default: ``$MSC_DATA_DIR``).

    Returns:
        The tasks, with ids ``{dataset}-0000``, ``{dataset}-0001``, ...

    Raises:
        ValueError: unknown dataset (with a suggestion), a bad ``n``, or a malformed cache file.
        FileNotFoundError: a cache file cannot be found (the message names the file and the fix).
    """
    name = _check_dataset(dataset)
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0):
        raise ValueError(f"n must be a non-negative integer or None, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if name in GENERATORS:
        tasks = _generate(name, DEFAULT_N if n is None else int(n), int(seed))
    else:
        tasks = load_msc(name, n=None if n is None else int(n), data_dir=data_dir)
    register_tasks(tasks)
    logger.debug("loaded %d tasks from %s", len(tasks), name)
    return tasks


def _generate(name: str, n: int, seed: int) -> list[Task]:
    make = GENERATORS[name]
    seen: set[str] = set()
    tasks: list[Task] = []
    for i in range(n):
        task = None
        for attempt in range(_MAX_ATTEMPTS):
            task = make(np.random.default_rng([seed, i, attempt]), i, name)
            key = normalise_problem(task.problem)
            if key not in seen:
                break
        else:
            logger.warning("%s task %d repeats an earlier problem after %d attempts", name, i, _MAX_ATTEMPTS)
        assert task is not None
        seen.add(normalise_problem(task.problem))
        tasks.append(task)
    return tasks
