"""Statistics for result tables: means with confidence intervals, paired tests over users and the
share of the vanilla-to-oracle gap a method closes."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable, Sequence

import numpy as np

from personalization_env.naming import did_you_mean

Z95 = 1.959964  # two-sided 95 % normal quantile

# two-sided 95 % Student t quantiles (df -> t); between entries interpolated linearly in 1/df
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
        29: 2.045, 30: 2.042, 40: 2.021, 50: 2.009, 60: 2.000, 80: 1.990, 100: 1.984, 120: 1.980}


def t95(df: int) -> float:
    """Two-sided 95 % t quantile: exact to three decimals for df <= 30, interpolated in 1/df beyond
    (error below 0.001; the normal 1.96 as df grows)."""
    if df <= 0:
        return float("nan")
    if df in _T95:
        return _T95[df]
    keys = sorted(_T95)
    lo = max(k for k in keys if k < df)
    hi = min((k for k in keys if k > df), default=math.inf)
    t_hi = _T95[hi] if hi != math.inf else Z95
    w = (1 / lo - 1 / df) / (1 / lo - 1 / hi)
    return _T95[lo] + w * (t_hi - _T95[lo])


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % confidence interval (t interval; NaN below 2 values)."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    m = sum(values) / n
    if n == 1:
        return m, float("nan")
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return m, t95(n - 1) * math.sqrt(var / n)


def wilson_ci(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n`` (inside [0, 1] for every n >= 1,
    sensible at 0 or n successes, where the normal interval collapses); NaN for n = 0."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact ends where rounding would miss them
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return lo, hi


def metric_ci(values: Sequence[float], *, binary: bool = False, low: float = -math.inf,
              high: float = math.inf) -> tuple[float, float, float]:
    """Mean and 95 % interval ``(mean, lo, hi)`` suited to a metric's values.

    Binary values (all 0 or 1, with ``binary``) get the Wilson score interval; other values the t
    interval clipped to the metric's possible range ``[low, high]``. Without a meaningful interval
    (fewer than 2 values for the t interval, none for Wilson) ``lo`` and ``hi`` are NaN.
    """
    n = len(values)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    m = sum(values) / n
    if binary and all(v in (0.0, 1.0) for v in values):
        lo, hi = wilson_ci(sum(values), n)
        return m, lo, hi
    _, half = mean_ci(values)
    if math.isnan(half):
        return m, float("nan"), float("nan")
    return m, max(m - half, min(low, m)), min(m + half, max(high, m))


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


def _check_methods(rows: Sequence[dict[str, Any]], *names: str) -> None:
    known = list(dict.fromkeys(r["method"] for r in rows))
    for name in names:
        if name not in known:
            raise ValueError(f"unknown method {name!r}{did_you_mean(name, known)} (the rows have: "
                             f"{', '.join(known) or 'none'})")


def compare_methods(rows: list[dict[str, Any]], a: str, b: str, metric: str = "user_effort",
                    min_session: int = 0) -> dict[str, float]:
    """Paired test of ``a`` vs ``b`` over the users both ran.

    Raises:
        ValueError: ``a`` or ``b`` has no rows (the message names the known methods), or fewer
            than 2 users ran both.
    """
    _check_methods(rows, a, b)
    ma, mb = per_user_means(rows, a, metric, min_session), per_user_means(rows, b, metric, min_session)
    users = sorted(set(ma) & set(mb))
    return {"a": a, "b": b, "metric": metric, "min_session": min_session,
            **paired_test([ma[u] for u in users], [mb[u] for u in users])}


def gap_share(rows: list[dict[str, Any]], method: str, metric: str = "user_effort", *, baseline: str = "vanilla",
              target: str = "oracle", min_session: int = 0, draws: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Share of the ``baseline``-to-``target`` gap in ``metric`` that ``method`` closes, with a
    bootstrap 95 % interval over users.

    The share is ``(baseline - method) / (baseline - target)`` of the means over users of each
    user's mean over sessions >= ``min_session`` (0 = as the baseline, 1 = as the target; the same
    formula for a metric where higher is better, such as task success). The interval is the 2.5 and
    97.5 percentiles of the share over ``draws`` resamples of the users with replacement, the same
    users for all three methods. Only users all three ran count. A resample whose baseline and target
    means are equal has no share and is left out (counted in ``undefined_draws``); with fewer than 2
    users there is no interval (NaN). ``gap`` is ``baseline - target`` with its bootstrap interval
    (``gap_ci_low``, ``gap_ci_high``): where that interval holds 0, the share is not meaningful.

    Raises:
        ValueError: a method has no rows, or no user ran all three.
    """
    _check_methods(rows, baseline, target, method)
    per = [per_user_means(rows, m, metric, min_session) for m in (baseline, target, method)]
    users = sorted(set(per[0]) & set(per[1]) & set(per[2]))
    if not users:
        raise ValueError(f"no user ran {baseline}, {target} and {method} (sessions >= {min_session})")
    x = np.array([[p[u] for p in per] for u in users], dtype=np.float64)  # users x (baseline, target, method)

    def share(means: np.ndarray) -> np.ndarray:
        gap = means[..., 0] - means[..., 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gap != 0, (means[..., 0] - means[..., 2]) / gap, np.nan)

    means = x.mean(axis=0)
    lo = hi = gap_lo = gap_hi = float("nan")
    undefined = 0
    if len(users) >= 2:
        idx = np.random.default_rng(seed).integers(0, len(users), size=(draws, len(users)))
        boot_means = x[idx].mean(axis=1)  # draws x 3
        boot = share(boot_means)
        finite = boot[np.isfinite(boot)]
        undefined = int(draws - finite.size)
        if finite.size:
            lo, hi = (float(v) for v in np.percentile(finite, [2.5, 97.5]))
        gap_lo, gap_hi = (float(v) for v in np.percentile(boot_means[:, 0] - boot_means[:, 1], [2.5, 97.5]))
    return {"method": method, "metric": metric, "baseline": baseline, "target": target, "min_session": min_session,
            "n": len(users), "share": float(share(means)), "ci_low": lo, "ci_high": hi,
            "baseline_mean": float(means[0]), "target_mean": float(means[1]), "method_mean": float(means[2]),
            "gap": float(means[0] - means[1]), "gap_ci_low": gap_lo, "gap_ci_high": gap_hi, "draws": draws,
            "undefined_draws": undefined}
