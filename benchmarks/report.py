"""Summary tables of session rows: mean and 95 % confidence interval per method (and session index)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from benchmarks.run import METRICS
from benchmarks.stats import mean_ci


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


def load_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """The session rows of a run folder (``sessions.jsonl``)."""
    path = Path(run_dir) / "sessions.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no sessions.jsonl in {str(run_dir)!r}; pass the folder 'msc run --out' wrote")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def vector_change_rate(rows: Iterable[dict[str, Any]], method: str = "rag_vector") -> dict[str, float]:
    """Fraction of retrieval turns in which the user vector changed the chosen top-J set."""
    turns = changed = updates = 0
    for r in rows:
        st = r.get("agent_stats") or {}
        if r.get("method") == method and "changed" in st:
            turns += st["turns"]
            changed += st["changed"]
            updates += st.get("updates", 0)
    return {"method": method, "turns": turns, "changed": changed, "updates": updates,
            "change_rate": changed / turns if turns else float("nan")}
