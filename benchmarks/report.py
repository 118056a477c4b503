"""The results of run folders: tables with 95 % intervals per method and session index, paired tests,
the share of the vanilla-to-oracle gap closed, and the report folder ``msc report --out`` writes
(``summary.md``, ``summary.csv``, ``summary.json``, ``curve_<metric>.png``)."""

from __future__ import annotations

import csv
import json
import logging
import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from benchmarks.identity import ADDED_LATER
from benchmarks.run import METRICS
from benchmarks.stats import compare_methods, gap_share, mean_ci, metric_ci
from personalization_env.naming import did_you_mean

logger = logging.getLogger(__name__)

WORLD_FIELDS: tuple[str, ...] = ("world", "profiles", "datasets", "max_turns", "seed", "user", "agent_model", "feedback")
"""``metadata.json`` config fields that must agree for runs to be pooled (they define the world)."""



GAP_METRICS: tuple[str, ...] = ("user_effort", "task_success")
"""Metrics whose vanilla-to-oracle gap share the report gives."""


@dataclass(frozen=True)
class MetricSpec:
    """How a session metric is shown, and the range its interval is kept in."""

    name: str
    label: str
    """name in titles ("Task success")"""
    header: str
    """table column ("success %")"""
    axis: str
    """y-axis label with the unit"""
    scale: float
    """display value = stored value x scale (100 for rates shown in %)"""
    digits: int
    binary: bool
    """values are 0/1: Wilson score interval"""
    low: float
    high: float | None
    """upper end of the range; None: the run's max_turns"""

    def bounds(self, max_turns: int | None) -> tuple[float, float]:
        """The metric's possible range (in stored units)."""
        high = self.high if self.high is not None else (max_turns if max_turns is not None else math.inf)
        return self.low, float(high)


METRIC_SPECS: dict[str, MetricSpec] = {s.name: s for s in (
    MetricSpec("task_success", "Task success", "success %", "Task success (% of sessions)", 100, 1, True, 0, 1),
    MetricSpec("user_effort", "User effort", "effort", "User effort (enforcing user turns per session)", 1, 2, False,
               0, None),
    MetricSpec("turns", "Turns", "turns", "Turns (user messages per session)", 1, 2, False, 1, None),
    MetricSpec("timeout", "Timeout", "timeout %", "Timeout (% of sessions)", 100, 1, True, 0, 1),
    MetricSpec("compliance", "Compliance", "compliance %", "Compliance (% of graded replies)", 100, 1, False, 0, 1),
)}


def _check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    for m in metrics:
        if m not in METRIC_SPECS:
            raise ValueError(f"unknown metric {m!r}{did_you_mean(m, METRIC_SPECS)} (known: {', '.join(METRIC_SPECS)})")
    return tuple(metrics)


def summarize(rows: Iterable[dict[str, Any]], by_session: bool = False, *, metrics: Sequence[str] = METRICS,
              methods: Sequence[str] | None = None, max_turns: int | None = None) -> list[dict[str, Any]]:
    """One record per method (and session index) with each metric's mean and 95 % interval (ok rows).

    A record holds ``method``, ``n`` (sessions), ``session`` (with ``by_session``) and per metric
    ``<m>`` (mean), ``<m>_lo`` and ``<m>_hi`` (the interval suited to the metric, see
    :func:`benchmarks.stats.metric_ci`: Wilson for task success and timeout, the t interval clipped to
    the metric's range for the others, NaN where there is none) and ``<m>_ci`` (the half-width of the
    plain t interval, kept for older readers).

    Args:
        rows: session rows (failed ones are left out).
        by_session: one record per (method, session index) instead of per method.
        metrics: the metrics to summarise.
        methods: the order of the methods (others follow in order of appearance); default the order
            in which they appear.
        max_turns: the runs' max_turns, the upper end of effort and turns (None: unbounded).
    """
    metrics = _check_metrics(metrics)
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("status") != "ok":
            continue
        groups[(r["method"], r["session"]) if by_session else (r["method"],)].append(r)
    order = list(dict.fromkeys([*(methods or []), *(k[0] for k in groups)]))
    out = []
    for key in sorted(groups, key=lambda k: (order.index(k[0]), *k[1:])):
        g = groups[key]
        rec: dict[str, Any] = {"method": key[0], "n": len(g)}
        if by_session:
            rec["session"] = key[1]
        for m in metrics:
            spec = METRIC_SPECS[m]
            low, high = spec.bounds(max_turns)
            values = [float(x[m]) for x in g]
            rec[m], rec[m + "_lo"], rec[m + "_hi"] = metric_ci(values, binary=spec.binary, low=low, high=high)
            rec[m + "_ci"] = mean_ci(values)[1]
        out.append(rec)
    return out


def format_interval(mean: float, lo: float, hi: float, spec: MetricSpec) -> str:
    """``"12.5 ±3.1"`` when the interval is symmetric at the shown precision, else ``"12.5 [8.0, 20.1]"``;
    the mean alone without an interval (NaN)."""
    d = spec.digits
    v = mean * spec.scale
    if math.isnan(v):
        return "-"
    if math.isnan(lo) or math.isnan(hi):
        return f"{v:.{d}f}"
    lo, hi = lo * spec.scale, hi * spec.scale
    below, above = f"{v - lo:.{d}f}", f"{hi - v:.{d}f}"
    return f"{v:.{d}f} ±{above}" if below == above else f"{v:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"


def _record_cell(r: dict[str, Any], spec: MetricSpec) -> str:
    m = spec.name
    if m + "_lo" in r:
        return format_interval(r[m], r[m + "_lo"], r[m + "_hi"], spec)
    return format_interval(r[m], r[m] - r[m + "_ci"], r[m] + r[m + "_ci"], spec)  # a record of older code


def _table_cells(records: Sequence[dict[str, Any]], by_session: bool,
                 metrics: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    head = ["method"] + (["session"] if by_session else []) + ["n"] + [METRIC_SPECS[m].header for m in metrics]
    lines = [[r["method"]] + ([str(r["session"])] if by_session else []) + [str(r["n"])]
             + [_record_cell(r, METRIC_SPECS[m]) for m in metrics] for r in records]
    return head, lines


def format_table(records: Sequence[dict[str, Any]], by_session: bool = False, *,
                 metrics: Sequence[str] = METRICS) -> str:
    """A plain-text table: success and timeout in %, effort and turns per session, compliance in %,
    each with its 95 % interval (``±h`` when symmetric, ``[lo, hi]`` when not, none below 2 values)."""
    head, lines = _table_cells(records, by_session, metrics)
    widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = "  ".join("{:<%d}" % w if i == 0 else "{:>%d}" % w for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head), fmt.format(*["-" * w for w in widths])] + [fmt.format(*c) for c in lines])


def _markdown(head: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    right = [i > 0 for i in range(len(head))]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    out += ["| " + " | ".join(c) + " |" for c in lines]
    return "\n".join(out)


def load_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """The session rows of a run folder (``sessions.jsonl``)."""
    path = Path(run_dir) / "sessions.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no sessions.jsonl in {str(run_dir)!r}; pass the folder 'msc run --out' wrote")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_metadata(run_dir: str | Path) -> dict[str, Any]:
    """The ``metadata.json`` of a run folder."""
    path = Path(run_dir) / "metadata.json"
    if not path.exists():
        raise FileNotFoundError(f"no metadata.json in {str(run_dir)!r}; pass the folder 'msc run --out' wrote")
    return json.loads(path.read_text())


def _load(run_dirs: Sequence[str | Path]) -> list[tuple[str, list[dict[str, Any]], dict[str, Any]]]:
    """(folder, rows, metadata) of each run, checked to be poolable."""
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    if not run_dirs:
        raise ValueError("no run folder given; pass at least one folder 'msc run --out' wrote")
    runs: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = []
    owner: dict[tuple[str, str, int], str] = {}  # (method, user, session) -> the folder it came from
    for d in map(str, run_dirs):
        rows, meta = load_rows(d), load_metadata(d)
        if runs:
            first, cfg0, cfg = runs[0][0], runs[0][2].get("config", {}), meta.get("config", {})
            for f in WORLD_FIELDS:
                a, b = cfg0.get(f, ADDED_LATER.get(f)), cfg.get(f, ADDED_LATER.get(f))
                if a != b:
                    raise ValueError(f"runs {first!r} and {d!r} differ in config field {f!r} ({a!r} vs {b!r}): "
                                     f"they ran different worlds and cannot be pooled")
        keys = {(r["method"], r["user_id"], r["session"]) for r in rows}
        twice = sorted(keys & owner.keys())
        if twice:
            (method, user, session), more = twice[0], f" (and {len(twice) - 1} more)" if len(twice) > 1 else ""
            raise ValueError(f"method {method!r}, user {user!r}, session {session}{more} is in both "
                             f"{owner[twice[0]]!r} and {d!r}; pool runs of different methods or users, not the "
                             f"same sessions twice")
        owner.update(dict.fromkeys(keys, d))
        runs.append((d, rows, meta))
    return runs


def load_runs(run_dirs: Sequence[str | Path]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pooled session rows of several run folders, and the metadata of each.

    Raises:
        FileNotFoundError: a folder has no ``sessions.jsonl`` or ``metadata.json``.
        ValueError: two runs hold the same (method, user, session), or differ in a field of the
            world configuration (:data:`WORLD_FIELDS`); the message names them.
    """
    runs = _load(run_dirs)
    return [r for _, rows, _ in runs for r in rows], [meta for _, _, meta in runs]


def run_warnings(run_dir: str, rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    """What a reader of a run's results must know: sessions missing against users x sessions of its
    metadata (an unfinished run), and failed sessions (left out of every table), per method."""
    cfg = meta.get("config", {})
    users = meta.get("users") or cfg.get("n_users")
    sessions = cfg.get("sessions")
    have = Counter(r["method"] for r in rows)
    failed: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("status") != "ok":
            failed[r["method"]].append(r)
    out = []
    if users and sessions:
        expected = int(users) * int(sessions)
        for m in cfg.get("methods", []):
            if have[m] < expected:
                out.append(f"{run_dir}: unfinished: {m} has {have[m]} of {expected} sessions ({users} users x "
                           f"{sessions}), {expected - have[m]} missing")
    for m, bad in failed.items():
        first = bad[0]
        out.append(f"{run_dir}: {len(bad)} failed session(s) of {m}, left out of every table (first: user "
                   f"{first['user_id']} session {first['session']}: {first.get('error', first.get('status'))})")
    return out


def method_order(rows: Iterable[dict[str, Any]], metas: Sequence[dict[str, Any]]) -> list[str]:
    """The methods as the runs list them (run by run), then any other method of the rows."""
    names = [m for meta in metas for m in meta.get("config", {}).get("methods", [])]
    return list(dict.fromkeys([*names, *(r["method"] for r in rows)]))


def resolve_pairs(compare: Sequence[str] | None, methods: Sequence[str]) -> list[tuple[str, str]]:
    """The (A, B) pairs to test: ``compare`` ("A,B" each), or by default every method against
    vanilla (when vanilla is there) and rag_vector against rag (when both are)."""
    if not compare:
        pairs = [(m, "vanilla") for m in methods if m != "vanilla"] if "vanilla" in methods else []
        if "rag_vector" in methods and "rag" in methods:
            pairs.append(("rag_vector", "rag"))
        return list(dict.fromkeys(pairs))
    pairs = []
    for c in compare:
        parts = [p.strip() for p in c.split(",")] if isinstance(c, str) else list(c)
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"compare takes 'A,B' (two method names), got {c!r}")
        for name in parts:
            if name not in methods:
                raise ValueError(f"unknown method {name!r} in compare {c!r}{did_you_mean(name, methods)} "
                                 f"(the runs have: {', '.join(methods)})")
        if parts[0] == parts[1]:
            raise ValueError(f"compare {c!r} names one method twice")
        pairs.append((parts[0], parts[1]))
    return list(dict.fromkeys(pairs))


def paired_tests(rows: list[dict[str, Any]], pairs: Sequence[tuple[str, str]], metrics: Sequence[str], *,
                 from_session: int = 0, max_turns: int | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """:func:`benchmarks.stats.compare_methods` for every pair and metric, its 95 % interval clipped to
    the metric's possible differences (``ci_low``, ``ci_high``); notes for the pairs that cannot be tested."""
    tests, notes = [], []
    for a, b in pairs:
        for m in metrics:
            try:
                res = compare_methods(rows, a, b, m, from_session)
            except ValueError as e:
                notes.append(f"{a} vs {b}, {m}: not tested: {e}")
                continue
            low, high = METRIC_SPECS[m].bounds(max_turns)
            d, h = res["mean_diff"], res["ci95"]
            span = high - low
            res["ci_low"] = max(d - h, -span) if not math.isnan(h) else h
            res["ci_high"] = min(d + h, span) if not math.isnan(h) else h
            tests.append(res)
    return tests, notes


def gap_shares(rows: list[dict[str, Any]], methods: Sequence[str], metrics: Sequence[str] = GAP_METRICS, *,
               from_session: int = 0, draws: int = 2000, seed: int = 0) -> tuple[list[dict[str, Any]], list[str]]:
    """:func:`benchmarks.stats.gap_share` of every method but vanilla and oracle; notes for what is skipped."""
    absent = [m for m in ("vanilla", "oracle") if m not in {r["method"] for r in rows if r.get("status") == "ok"}]
    if absent:
        return [], [f"gap shares skipped: no {' and no '.join(absent)} sessions in the runs (run them beside the "
                    f"methods, e.g. --methods vanilla,...,oracle)"]
    shares, notes = [], []
    for method in methods:
        if method in ("vanilla", "oracle"):
            continue
        for m in metrics:
            try:
                shares.append(gap_share(rows, method, m, min_session=from_session, draws=draws, seed=seed))
            except ValueError as e:
                notes.append(f"gap share of {method}, {m}: skipped: {e}")
    by_metric: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in shares:
        by_metric[s["metric"]].append(s)
    for m, group in by_metric.items():
        s = group[0]  # vanilla and oracle are the same in every share of a metric (when the users are)
        if math.isnan(s["share"]):
            notes.append(f"{m}: no gap share (vanilla and oracle means are equal)")
        elif s["gap_ci_low"] <= 0 <= s["gap_ci_high"]:
            notes.append(f"{m}: the vanilla - oracle gap ({_signed(_fmt(s['gap'], m))}, 95 % CI "
                         f"[{_fmt(s['gap_ci_low'], m)}, {_fmt(s['gap_ci_high'], m)}]) is not told apart from 0, "
                         f"so its shares mean little")
        undefined = {x["undefined_draws"] for x in group if x["n"] >= 2}
        if undefined - {0}:
            notes.append(f"{m}: vanilla and oracle means were equal in {max(undefined)} of {s['draws']} resamples, "
                         f"left out of the share intervals")
    return shares, notes


def write_report(run_dirs: Sequence[str | Path], out_dir: str | Path, *, compare: Sequence[str] | None = None,
                 from_session: int = 0, metrics: Sequence[str] = METRICS, plots: bool = True, draws: int = 2000,
                 seed: int = 0) -> dict[str, Any]:
    """Write the results of run folders (pooled) into ``out_dir``.

    Files: ``summary.md`` (tables per method and per session index with 95 % intervals, paired tests,
    gap shares, warnings), ``summary.csv`` (one row per method and per (method, session index): mean,
    ci_low, ci_high and n of each metric, stored units: rates as fractions), ``summary.json``
    (everything) and, with ``plots``, ``curve_<metric>.png`` per metric (matplotlib).

    Args:
        run_dirs: folders ``msc run --out`` wrote; their rows are pooled (see :func:`load_runs`).
        out_dir: the report folder (created).
        compare: "A,B" pairs for the paired tests (default: every method vs vanilla, and rag_vector
            vs rag).
        from_session: paired tests and gap shares use sessions >= this index (the tables use all).
        metrics: the metrics of the tables, tests and plots.
        plots: draw the learning curves.
        draws: bootstrap resamples of the gap shares.
        seed: seed of the bootstrap.

    Returns:
        ``{"summary_md": Path, "summary_csv": Path, "summary_json": Path, "plots": {metric: Path},
        "warnings": [str]}``.

    Raises:
        ValueError: unknown method in ``compare`` or unknown metric, runs that cannot be pooled.
        FileNotFoundError: a folder is not a run.
        ImportError: ``plots`` without matplotlib (checked before anything is written).
    """
    metrics = _check_metrics(metrics)
    if not isinstance(from_session, int) or from_session < 0:
        raise ValueError(f"from_session must be an int >= 0, got {from_session!r}")
    if plots:
        from benchmarks.plots import require_matplotlib

        require_matplotlib()
    runs = _load(run_dirs)
    rows = [r for _, rs, _ in runs for r in rs]
    metas = [meta for _, _, meta in runs]
    methods = method_order(rows, metas)
    pairs = resolve_pairs(compare, methods)
    warnings = [w for d, rs, meta in runs for w in run_warnings(d, rs, meta)]
    for w in warnings:
        logger.warning("%s", w)
    world = {f: metas[0].get("config", {}).get(f) for f in WORLD_FIELDS}
    max_turns = world["max_turns"]

    table = summarize(rows, metrics=metrics, methods=methods, max_turns=max_turns)
    by_session = summarize(rows, by_session=True, metrics=metrics, methods=methods, max_turns=max_turns)
    tests, test_notes = paired_tests(rows, pairs, metrics, from_session=from_session, max_turns=max_turns)
    shares, gap_notes = gap_shares(rows, methods, [m for m in GAP_METRICS if m in metrics],
                                   from_session=from_session, draws=draws, seed=seed)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves: dict[str, Path] = {}
    if plots:
        from benchmarks.plots import plot_learning_curves

        curves = plot_learning_curves(by_session, out, methods=methods, metrics=metrics, max_turns=max_turns)
    run_info = [{"dir": d, "methods": meta.get("config", {}).get("methods", []), "users": meta.get("users"),
                 "sessions": meta.get("config", {}).get("sessions"), "rows": len(rs)} for d, rs, meta in runs]
    paths = {"summary_md": out / "summary.md", "summary_csv": out / "summary.csv", "summary_json": out / "summary.json"}
    paths["summary_md"].write_text(_summary_md(run_info, world, table, by_session, tests, test_notes, shares, gap_notes,
                                               warnings, metrics, from_session, draws), encoding="utf-8")
    _write_csv(paths["summary_csv"], table, by_session, metrics)
    doc = {"runs": run_info, "world": world, "from_session": from_session, "methods": methods,
           "metrics": {m: asdict(METRIC_SPECS[m]) for m in metrics},
           "intervals": "95 %: Wilson score for binary metrics; t interval clipped to the metric's range for the "
                        "others (none below 2 values); paired differences: t interval clipped to the possible range; "
                        f"gap shares: percentile bootstrap over users ({draws} resamples, seed {seed})",
           "summary": table, "by_session": by_session, "paired_tests": tests, "paired_test_notes": test_notes,
           "gap_shares": shares, "gap_notes": gap_notes, "warnings": warnings,
           "files": sorted(p.name for p in [*paths.values(), *curves.values()])}
    paths["summary_json"].write_text(json.dumps(_finite(doc), indent=1) + "\n", encoding="utf-8")
    logger.info("report of %d run(s) written to %s", len(runs), out)
    return {**paths, "plots": curves, "warnings": warnings}


def _finite(obj: Any) -> Any:
    """NaN and infinities as null (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _write_csv(path: Path, table: Sequence[dict[str, Any]], by_session: Sequence[dict[str, Any]],
               metrics: Sequence[str]) -> None:
    cols = ["method", "session"] + [f"{m}_{k}" for m in metrics for k in ("mean", "ci_low", "ci_high", "n")]

    def cell(v: float) -> str:
        return "" if math.isnan(v) else repr(float(v))

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in [*table, *by_session]:
            w.writerow([r["method"], r.get("session", "")]
                       + [x for m in metrics for x in (cell(r[m]), cell(r[m + "_lo"]), cell(r[m + "_hi"]), r["n"])])


def _p(p: float) -> str:
    return "<0.0001" if p < 0.0001 else f"{p:.4f}"


def _summary_md(runs: Sequence[dict[str, Any]], world: dict[str, Any], table: Sequence[dict[str, Any]],
                by_session: Sequence[dict[str, Any]], tests: Sequence[dict[str, Any]], test_notes: Sequence[str],
                shares: Sequence[dict[str, Any]], gap_notes: Sequence[str], warnings: Sequence[str],
                metrics: Sequence[str], from_session: int, draws: int) -> str:
    since = f"sessions >= {from_session}" if from_session else "all sessions"
    out = ["# Results", ""]
    out += [f"- run `{r['dir']}`: {', '.join(r['methods'])}; {r['users']} users x {r['sessions']} sessions; "
            f"{r['rows']} session rows" for r in runs]
    out += ["- world: " + ", ".join(f"{k} `{v}`" for k, v in world.items()), ""]
    rates = [METRIC_SPECS[m].header for m in metrics if METRIC_SPECS[m].binary]
    others = [METRIC_SPECS[m].header for m in metrics if not METRIC_SPECS[m].binary]
    note = ("Mean with 95 % interval over sessions: "
            + (f"Wilson score interval for {', '.join(rates)}" if rates else "")
            + ("; " if rates and others else "")
            + (f"t interval clipped to the metric's range for {', '.join(others)} (none below 2 sessions)"
               if others else "")
            + ". `±h` where the interval is symmetric, `[lo, hi]` where not. Effort and turns per session; "
              "compliance: share of graded replies satisfying every applicable checkable preference.")
    out += ["## Per method (all sessions pooled)", "", note, "", _markdown(*_table_cells(table, False, metrics)), ""]
    out += ["## Per session index", "", _markdown(*_table_cells(by_session, True, metrics)), ""]
    out += [f"## Paired tests over users ({since})", ""]
    if tests:
        out += ["Difference A - B of the users' mean over sessions, for the users both ran (rates in percentage "
                "points); 95 % t interval, clipped to the possible range; t statistic; two-sided sign-flip "
                "permutation p-value (no correction for multiple comparisons).", ""]
        lines = []
        for t in tests:
            spec = METRIC_SPECS[t["metric"]]
            lines.append([f"{t['a']} - {t['b']}", spec.header, str(t["n"]),
                          _signed(format_interval(t["mean_diff"], t["ci_low"], t["ci_high"], spec)),
                          "inf" if math.isinf(t["t"]) else f"{t['t']:.2f}", _p(t["p"])])
        out += [_markdown(["A - B", "metric", "users", "difference [95 % CI]", "t", "p"], lines), ""]
    else:
        out += ["No pairs to test (no vanilla in the runs; name pairs with --compare A,B).", ""]
    out += [f"- {n}" for n in test_notes] + ([""] if test_notes else [])
    out += [f"## Share of the vanilla-to-oracle gap closed ({since})", ""]
    if shares:
        gm = list(dict.fromkeys(s["metric"] for s in shares))
        out += ["(vanilla - method) / (vanilla - oracle) of the means over users of each user's mean over sessions "
                "(0 % = vanilla, 100 % = oracle); 95 % percentile bootstrap interval over users "
                f"({draws} resamples, the same users for vanilla, oracle and the method).", ""]
        cells: dict[str, dict[str, str]] = defaultdict(dict)
        users: dict[str, int] = {}
        for s in shares:
            share = "-" if math.isnan(s["share"]) else f"{_pct(s['share'])} %"
            if not math.isnan(s["ci_low"]):
                share += f" [{_pct(s['ci_low'])}, {_pct(s['ci_high'])}]"
            cells[s["method"]][s["metric"]] = share
            users[s["method"]] = s["n"]
        ref = {s["metric"]: s for s in shares}
        lines = [["vanilla", "", *(f"{_fmt(ref[m]['baseline_mean'], m)} (0 %)" for m in gm)],
                 ["oracle", "", *(f"{_fmt(ref[m]['target_mean'], m)} (100 %)" for m in gm)]]
        lines += [[m, str(users[m]), *(cells[m].get(x, "-") for x in gm)] for m in cells]
        out += [_markdown(["method", "users", *(f"{METRIC_SPECS[m].label.lower()} gap closed [95 % CI]" for m in gm)],
                          lines), ""]
    out += [f"- {n}" for n in gap_notes] + ([""] if gap_notes else [])
    out += ["## Warnings", ""] + ([f"- {w}" for w in warnings] if warnings else ["None."]) + [""]
    return "\n".join(out)


def _pct(share: float) -> str:
    return f"{100 * share + 0.0:.0f}".replace("-0", "0") if abs(share) < 0.005 else f"{100 * share:.0f}"


def _fmt(value: float, metric: str) -> str:
    spec = METRIC_SPECS[metric]
    return f"{value * spec.scale:.{spec.digits}f}"


def _signed(cell: str) -> str:
    return cell if cell.startswith("-") else "+" + cell


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
