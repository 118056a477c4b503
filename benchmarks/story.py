"""The plain-language close of ``msc run``: what the run shows, and where its results are.

With vanilla (no memory) and the oracle (told the user's preferences) in the run, it says how much
effort each costs the user in the later half of the sessions, the share of that gap each memory
method closed (with its 95 % bootstrap interval over users), which methods the intervals tell apart,
and how each method's effort moved from the first session to the last.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from benchmarks.report import gap_shares


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _effort(rows: list[dict[str, Any]], method: str, sessions: Sequence[int]) -> float:
    return _mean([float(r["user_effort"]) for r in rows if r["method"] == method and r["session"] in sessions])


def closing_summary(rows: list[dict[str, Any]], methods: Sequence[str], sessions: int, out: str | Path,
                    report: dict[str, Any] | None = None, tensorboard: bool = True) -> str:
    """The text (see module docstring); an empty string when the run has no vanilla or no oracle."""
    ok = [r for r in rows if r.get("status") == "ok"]
    present = {r["method"] for r in ok}
    lines = []
    if {"vanilla", "oracle"} <= present and sessions >= 2:
        late = sessions // 2
        window = list(range(late, sessions))
        shares, _ = gap_shares(ok, methods, ["user_effort"], from_session=late)
        lines.append(f"In short, over sessions {late}-{sessions - 1}, after the methods had time to learn:")
        lines.append(f"  vanilla, which remembers nothing, cost the user {_effort(ok, 'vanilla', window):.2f} "
                     f"enforcing turns a session; the oracle, told the user's preferences, "
                     f"{_effort(ok, 'oracle', window):.2f}.")
        if shares:
            lines.append("  Share of that gap each method closed (95 % interval over users), and its effort in the "
                         f"first and the last session:")
            width = max(len(s["method"]) for s in shares)
            for s in sorted(shares, key=lambda s: -s["share"] if not math.isnan(s["share"]) else 0):
                ci = ("" if math.isnan(s["ci_low"]) else
                      f" [{100 * s['ci_low']:.0f}, {100 * s['ci_high']:.0f}]")
                first, last = _effort(ok, s["method"], [0]), _effort(ok, s["method"], [sessions - 1])
                lines.append(f"    {s['method']:<{width}}  {100 * s['share']:4.0f} %{ci:<11}  effort {first:.2f} -> "
                             f"{last:.2f}")
            apart = []
            ordered = sorted((s for s in shares if not math.isnan(s["ci_low"])), key=lambda s: -s["share"])
            for a, b in zip(ordered, ordered[1:]):
                apart.append(f"{a['method']} {'>' if a['ci_low'] > b['ci_high'] else '~'} {b['method']}")
            if apart:
                lines.append(f"  Ranked by share (> : intervals apart; ~ : they overlap): {', '.join(apart)}.")
    out = Path(out)
    if report:
        plots = report.get("plots") or {}
        lines.append(f"Full tables: {report['summary_md']} (also .csv and .json)"
                     + (f"; plots: {out / 'report'}/curve_<metric>.png ({len(plots)})" if plots else ""))
    if tensorboard and (out / "tensorboard").exists():
        lines.append(f"Curves over sessions: tensorboard --logdir {out / 'tensorboard'}")
    return "\n".join(lines)
