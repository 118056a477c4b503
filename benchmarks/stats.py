"""Statistics for result tables: means with confidence intervals and paired tests over users."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable, Sequence

import numpy as np

# two-sided 95 % Student t quantiles (df -> t); normal beyond 120
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}


def t95(df: int) -> float:
    """Two-sided 95 % t quantile (conservative: the nearest tabulated df at or below ``df``)."""
    if df <= 0:
        return float("nan")
    if df > 120:
        return 1.96
    return _T95[max(k for k in _T95 if k <= df)]


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % confidence interval (t interval)."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    m = sum(values) / n
    if n == 1:
        return m, float("nan")
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return m, t95(n - 1) * math.sqrt(var / n)


def paired_test(a: Sequence[float], b: Sequence[float], *, draws: int = 20000, seed: int = 0) -> dict[str, float]:
    """Paired comparison of ``a`` and ``b`` (one value per user, same order).

    Returns the mean difference ``a - b`` with its 95 % CI, the paired t statistic, and a two-sided
    sign-flip permutation p-value (exact in distribution under the null of exchangeable signs; no
    normality assumption).
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.shape[0] < 2:
        raise ValueError(f"a paired test needs at least 2 pairs, got {d.shape[0]}")
    mean, ci = mean_ci(d.tolist())
    sd = float(d.std(ddof=1))
    t = mean / (sd / math.sqrt(len(d))) if sd > 0 else (0.0 if mean == 0 else math.inf)
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(draws, len(d)))
    null = np.abs((signs * d).mean(axis=1))
    p = float((np.count_nonzero(null >= abs(mean) - 1e-12) + 1) / (draws + 1))
    return {"n": int(len(d)), "mean_diff": float(mean), "ci95": float(ci), "t": float(t), "p": p}


def per_user_means(rows: Iterable[dict[str, Any]], method: str, metric: str,
                   min_session: int = 0) -> dict[str, float]:
    """Each user's mean ``metric`` for ``method`` over sessions >= ``min_session`` (ok rows only)."""
    acc: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.get("status") == "ok" and r["method"] == method and r["session"] >= min_session:
            acc[r["user_id"]].append(float(r[metric]))
    return {u: sum(v) / len(v) for u, v in acc.items()}


def compare_methods(rows: list[dict[str, Any]], a: str, b: str, metric: str = "user_effort",
                    min_session: int = 0) -> dict[str, float]:
    """Paired test of ``a`` vs ``b`` over the users both ran."""
    ma, mb = per_user_means(rows, a, metric, min_session), per_user_means(rows, b, metric, min_session)
    users = sorted(set(ma) & set(mb))
    return {"a": a, "b": b, "metric": metric, "min_session": min_session,
            **paired_test([ma[u] for u in users], [mb[u] for u in users])}
