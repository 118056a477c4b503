"""Summary tables of session rows: mean and 95 % confidence interval per method (and session index)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable, Sequence

from benchmarks.run import METRICS

# two-sided 95 % Student t quantiles for small n (df -> t); normal beyond
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}


def t95(df: int) -> float:
    """Two-sided 95 % t quantile (conservative: nearest tabulated df below)."""
    if df <= 0:
        return float("nan")
    keys = [k for k in _T95 if k <= df]
    return _T95[max(keys)] if df <= 120 else 1.96


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its 95 % confidence interval."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    m = sum(values) / n
    if n == 1:
        return m, float("nan")
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return m, t95(n - 1) * math.sqrt(var / n)


def summarize(rows: Iterable[dict[str, Any]], by_session: bool = False) -> list[dict[str, Any]]:
    """One record per method (and session index) with mean/ci of each metric."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    order: list[tuple] = []
    for r in rows:
        if r.get("status") != "ok":
            continue
        key = (r["method"], r["session"]) if by_session else (r["method"],)
        if key not in groups:
            order.append(key)
        groups[key].append(r)
    out = []
    for key in order:
        g = groups[key]
        rec: dict[str, Any] = {"method": key[0], "n": len(g)}
        if by_session:
            rec["session"] = key[1]
        for m in METRICS:
            rec[m], rec[m + "_ci"] = mean_ci([float(x[m]) for x in g])
        out.append(rec)
    methods = list(dict.fromkeys(k[0] for k in order))
    out.sort(key=lambda r: (methods.index(r["method"]), r.get("session", 0)))
    return out


def format_table(records: Sequence[dict[str, Any]], by_session: bool = False) -> str:
    """A plain-text table: success and timeout in %, effort and turns per session, compliance in %."""
    head = ["method"] + (["session"] if by_session else []) + ["n", "success %", "effort", "turns", "timeout %",
                                                               "compliance %"]
    lines = []
    for r in records:
        cells = [r["method"]] + ([str(r["session"])] if by_session else []) + [str(r["n"])]
        for m, scale in (("task_success", 100), ("user_effort", 1), ("turns", 1), ("timeout", 100),
                         ("compliance", 100)):
            v, ci = r[m] * scale, r[m + "_ci"] * scale
            digits = 1 if scale == 100 else 2
            cells.append(f"{v:.{digits}f}" + ("" if math.isnan(ci) else f" ±{ci:.{digits}f}"))
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = "  ".join("{:<%d}" % w if i == 0 else "{:>%d}" % w for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head), fmt.format(*["-" * w for w in widths])] + [fmt.format(*c) for c in lines])
