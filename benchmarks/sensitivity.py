"""Which of the README's method-ranking conclusions survive moving the world's assumptions?

``docs/assumptions.md`` lists every parameter of the embedded world with its source. Each row whose
source starts with "assumption" (rows marked ``(group X)`` move together, as one parameter X) is
moved to x0.5 and x1.5 of its default, clipped to the row's range (integers rounded half up), and
the same grid as ``msc run`` (:func:`benchmarks.run.run`) is run at each move beside one run at the
defaults. Each conclusion the README draws from ``msc run`` (:data:`CONCLUSIONS`, with its README
wording) is a predicate over the per-method summary of a run; the report says, per conclusion and
parameter, whether it holds at -50 %, at the defaults and at +50 %, and ends with one line per
conclusion: "robust" or "holds except under ...". The table is read, never copied: a row added to
it is swept by the next run.

Rows not swept, with the reason in the report: a value that is not a number (None, a switch), a
parameter that changes none of the methods' results under ``msc run``'s defaults (its "methods"
cell starts with "none"), a per-dataset skill of a dataset outside the grid, and a parameter no run
option reaches (no hook below). The hooks: the scripted agent model's parameters (``ScriptedConfig``,
``DEFAULT_SKILL``, ``DEFAULT_HABITS``) go through a backend spec registered here
(``scripted_sweep:<json overrides>``, the smallest hook that needs no change to the runner); user
traits through ``user_args``; agent knobs through ``agent_args``; ``max_turns`` through the run
config.

``--world NAME`` sweeps around a world preset (:mod:`personalization_env.worlds`) instead: the
preset's values are the base the moves scale, and a per-dataset skill its skill table leaves out is
not a parameter there.

Results are simulated (rule user + scripted agent model), as every embedded-world figure.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from benchmarks.progress import Progress
from personalization_env.llm.base import BACKENDS
from personalization_env.llm.scripted import ScriptedBackend

TABLE = Path(__file__).resolve().parent.parent / "docs" / "assumptions.md"
FACTORS: tuple[float, float] = (0.5, 1.5)
MEMORY_METHODS: tuple[str, ...] = ("contextual", "reflection", "all_memory", "rag", "rag_vector")
_GROUP = re.compile(r"\(group ([A-Za-z_][\w.]*)\)")
_INTERVAL = re.compile(r"^([\[(])\s*(-?[\d.e+-]+)\s*,\s*(-?[\d.e+-]+)\s*([\])])$")
_BOUND = re.compile(r"^(>=|>)\s*(-?[\d.e+-]+)$")


# ---- the table -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bounds:
    """A parameter's valid values: ``low``/``high`` (None = unbounded), each closed unless ``*_open``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False


def parse_range(cell: str) -> Bounds:
    """``"[0, 1]"``, ``"(0, 1)"``, ``">= 1"``, ``"> 0"`` or ``"-"`` (any value) as :class:`Bounds`."""
    s = cell.strip().strip("`")
    if s in ("-", ""):
        return Bounds()
    m = _INTERVAL.match(s)
    if m:
        return Bounds(float(m.group(2)), float(m.group(3)), m.group(1) == "(", m.group(4) == ")")
    m = _BOUND.match(s)
    if m:
        return Bounds(float(m.group(2)), None, m.group(1) == ">")
    raise ValueError(f"range {cell!r} is not understood; write '[lo, hi]', '(lo, hi)', '>= lo', '> lo' or '-'")


def parse_value(cell: str) -> Any:
    """A value cell as a Python literal (``0.5``, ``None``, ``'none'``); anything else stays text (a
    mapping-valued field names the rows that hold its entries, e.g. ``DEFAULT_SKILL``)."""
    s = cell.strip().strip("`").strip()
    try:
        return ast.literal_eval(s)
    except (ValueError, SyntaxError):
        return s


@dataclass(frozen=True)
class Row:
    """One row of ``docs/assumptions.md``."""

    name: str
    value: Any
    range: Bounds
    does: str
    source: str
    methods: str

    @property
    def assumption(self) -> bool:
        return self.source.strip().lower().startswith("assumption")

    @property
    def group(self) -> str | None:
        m = _GROUP.search(self.source)
        return m.group(1) if m else None

    @property
    def inert(self) -> bool:
        """It changes no method's results under ``msc run``'s defaults (the table says so)."""
        return self.methods.strip().lower().startswith("none")

    @property
    def numeric(self) -> bool:
        return isinstance(self.value, (int, float)) and not isinstance(self.value, bool)


_COLUMNS = ("parameter", "value", "range", "what it does", "source", "methods")


def parse_table(text: str) -> list[Row]:
    """The rows of the first markdown table whose header is :data:`_COLUMNS`.

    Raises:
        ValueError: no such table, a row with the wrong number of cells (named by its line number), a
            bad range, or a parameter listed twice.
    """
    rows: list[Row] = []
    inside = False
    for n, line in enumerate(text.splitlines(), 1):
        if not line.startswith("|"):
            if inside:
                break
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not inside:
            if tuple(c.lower() for c in cells) == _COLUMNS:
                inside = True
            continue
        if set("".join(cells)) <= set("-: "):
            continue  # the separator line
        if len(cells) != len(_COLUMNS):
            raise ValueError(f"assumptions table line {n} has {len(cells)} cells, expected {len(_COLUMNS)}: {line!r}")
        name = cells[0].strip("`")
        try:
            bounds = parse_range(cells[2])
        except ValueError as e:
            raise ValueError(f"assumptions table line {n} ({name}): {e}") from None
        rows.append(Row(name, parse_value(cells[1]), bounds, cells[3], cells[4], cells[5]))
    if not inside:
        raise ValueError(f"no table with the header | {' | '.join(_COLUMNS)} | found")
    seen: set[str] = set()
    for r in rows:
        if r.name in seen:
            raise ValueError(f"parameter {r.name!r} is listed twice in the assumptions table; keep one row")
        seen.add(r.name)
    return rows


def load_table(path: str | Path = TABLE) -> list[Row]:
    return parse_table(Path(path).read_text(encoding="utf-8"))


# ---- moves -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Move:
    """A parameter's value at ``factor`` x its default: ``value`` after rounding and clipping."""

    factor: float
    base: float
    value: float
    clipped: bool
    rounded: bool

    @property
    def note(self) -> str:
        raw = self.base * self.factor
        parts = []
        if self.rounded:
            parts.append(f"{raw:g} rounded to {self.value:g}" if not self.clipped else "rounded")
        if self.clipped:
            parts.append(f"{raw:g} clipped to {self.value:g}")
        if self.value == self.base:
            parts.append("no change")
        return ", ".join(parts)


def move(value: float, factor: float, bounds: Bounds = Bounds()) -> Move:
    """``value`` x ``factor``: an int stays an int (rounded half up), then clipped into ``bounds``.

    Raises:
        ValueError: ``value`` is not a number, or the move leaves an open bound (no value to clip to).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"only numbers can be moved, got {value!r}")
    raw = float(f"{value * factor:.12g}")  # 0.3 x 1.5 is 0.45, not 0.44999999999999996
    x: float = raw
    rounded = False
    if isinstance(value, int):
        x = int(math.floor(raw + 0.5))
        rounded = x != raw
    clipped = False
    lo, hi = bounds.low, bounds.high
    if lo is not None and (x < lo or (bounds.low_open and x <= lo)):
        if bounds.low_open:
            raise ValueError(f"{value!r} x {factor} = {raw!r} leaves the open bound > {lo}; narrow the move")
        x, clipped = (int(math.ceil(lo)) if isinstance(value, int) else lo), True
    if hi is not None and (x > hi or (bounds.high_open and x >= hi)):
        if bounds.high_open:
            raise ValueError(f"{value!r} x {factor} = {raw!r} leaves the open bound < {hi}; narrow the move")
        x, clipped = (int(math.floor(hi)) if isinstance(value, int) else hi), True
    return Move(factor, value, x, clipped, rounded)


_BUILT_IN = ("vanilla", *MEMORY_METHODS, "oracle")


def affected_methods(cell: str, methods: Sequence[str]) -> list[str]:
    """The methods of ``methods`` a "methods" cell names ("all", "all, on logiqa", "rag, rag_vector",
    ...); a method the table cannot name (a plug-in) is always included, and a cell naming no known
    method means all."""
    tokens = [t.strip().strip("`") for t in cell.split("(")[0].split(",")]
    if not tokens or not tokens[0] or tokens[0].split()[0] == "all":
        return list(methods)
    named = [m for m in methods if m in tokens or m not in _BUILT_IN]
    return named if any(m in tokens for m in methods) else list(methods)


@dataclass(frozen=True)
class Unit:
    """What one sweep step moves: one row, or every row of a group together."""

    name: str
    rows: tuple[Row, ...]

    def methods(self, methods: Sequence[str]) -> list[str]:
        """The methods whose results the move can change (per the table's "methods" column)."""
        hit = {m for r in self.rows for m in affected_methods(r.methods, methods)}
        return [m for m in methods if m in hit]

    def moved(self, factor: float) -> tuple[dict[str, Any], str]:
        """The changed values by row name, and a note on rounding and clipping."""
        moves = {r.name: move(r.value, factor, r.range) for r in self.rows}
        changes = {n: m.value for n, m in moves.items()}
        if len(moves) == 1:
            return changes, next(iter(moves.values())).note
        clipped = [n.rpartition(".")[2] for n, m in moves.items() if m.clipped]
        notes = []
        if clipped:
            notes.append(f"{len(clipped)} of {len(moves)} clipped ({', '.join(clipped)})")
        same = [n.rpartition(".")[2] for n, m in moves.items() if m.value == m.base]
        if same:
            notes.append(f"{len(same)} unchanged ({', '.join(same)})")
        return changes, "; ".join(notes)


def plan(rows: Sequence[Row], *, names: Sequence[str] | None = None, datasets: Sequence[str] = (),
         profiles: str = "complex") -> tuple[list[Unit], list[tuple[str, str]]]:
    """The units to sweep and the (name, reason) of the assumption rows left out.

    Args:
        rows: the table.
        names: sweep only these (row or group names; any row with a number and a hook may be named).
        datasets: the grid's datasets (a per-dataset skill of another dataset is left out).
        profiles: the grid's profile set (the profile generator's arguments move only ``complex``).

    Raises:
        ValueError: a name in ``names`` is neither a row nor a group.
    """
    by_name = {r.name: r for r in rows}
    groups: dict[str, list[Row]] = {}
    for r in rows:
        if r.group:
            groups.setdefault(r.group, []).append(r)
    if names is not None:
        from personalization_env.naming import did_you_mean

        known = [*by_name, *groups]
        for n in names:
            if n not in known:
                raise ValueError(f"unknown parameter {n!r}{did_you_mean(n, known)} (names are the first column of "
                                 f"{TABLE.name}, or a group such as DEFAULT_HABITS)")
    units: list[Unit] = []
    skipped: list[tuple[str, str]] = []
    done_groups: set[str] = set()
    for r in rows:
        wanted = (r.assumption if names is None else (r.name in names or (r.group in names)))
        if not wanted:
            continue
        if r.group and (names is None or r.group in names):
            if r.group not in done_groups:
                done_groups.add(r.group)
                members = tuple(m for m in groups[r.group] if m.numeric)
                units.append(Unit(r.group, members))
            continue
        reason = _why_not(r, datasets, profiles)
        if reason:
            skipped.append((r.name, reason))
        else:
            units.append(Unit(r.name, (r,)))
    return units, skipped


def _why_not(r: Row, datasets: Sequence[str], profiles: str) -> str:
    if not r.numeric:
        return f"value {r.value!r} is not a number"
    if r.inert:
        return f"changes no method's results under msc run's defaults ({r.methods})"
    head, _, key = r.name.partition(".")
    if head == "DEFAULT_SKILL" and key not in datasets:
        return f"dataset {key} is not in the grid (--datasets)"
    if head in ("generate_profiles", "VARS_MIX") and profiles != "complex":
        return f"the grid's profiles ({profiles}) are not the generated complex set"
    if not has_hook(r.name):
        return "no run option reaches it (no hook in benchmarks/sensitivity.py)"
    return ""


def world_values(rows: Sequence[Row], world: str) -> list[Row]:
    """The rows with the values world preset ``world`` gives them (its agent-model fields, skills and
    user traits, its turn limit); a per-dataset skill the preset's skill table leaves out is dropped
    (in that world it is not a parameter)."""
    from personalization_env.worlds import get_world

    w = get_world(world)
    agent, traits = dict(w.agent), dict(w.user_traits)
    out = []
    for r in rows:
        head, _, key = r.name.partition(".")
        value: Any = r.value
        if head == "ScriptedConfig" and key in agent and key != "skill":
            value = agent[key]
        elif head == "DEFAULT_SKILL" and "skill" in agent:
            if key not in agent["skill"]:
                continue
            value = agent["skill"][key]
        elif head == "DEFAULT_HABITS" and agent.get("habits") is not None:
            value = agent["habits"].get(key, value)
        elif head == "DEFAULT_TRAITS" and key in traits:
            value = traits[key]
        elif head == "MultiSessionCollabEnv" and getattr(w, key, None) is not None and key in ("max_turns",
                                                                                              "tasks_per_dataset"):
            value = getattr(w, key)
        out.append(dataclasses.replace(r, value=value))
    return out


# ---- hooks: a moved value into the run's configuration ---------------------------------------------
class SweptScriptedBackend(ScriptedBackend):
    """The scripted agent model with :class:`~personalization_env.llm.scripted.ScriptedConfig`
    overrides given as a JSON object in the spec (``scripted_sweep:{"misapply_prob": 0.075}``); the
    key ``recognizer_min_words`` sets its recogniser's ``min_words``."""

    def __init__(self, model: str = "{}", **kwargs: Any):
        config = json.loads(model)
        self._min_words = config.pop("recognizer_min_words", None)
        super().__init__(config, model=model, **kwargs)

    @property
    def recognizer(self) -> Any:
        if self._recognizer is None and self._min_words is not None:
            from personalization_env.llm.recognize import PreferenceRecognizer
            from personalization_env.preferences import load_catalogue

            self._recognizer = PreferenceRecognizer(load_catalogue(), self.config.recognition_threshold,
                                                    min_words=int(self._min_words))
        return super().recognizer


BACKENDS.setdefault("scripted_sweep", "benchmarks.sensitivity:SweptScriptedBackend")

_AGENT_ARGS = {"ContextualAgent.budget_tokens": "budget_tokens"}


_NAMED_HOOKS = ("MultiSessionCollabEnv.max_turns", "HashingEmbedder.dim", "PreferenceRecognizer.min_words",
                "generate_profiles.p_conditional")


def has_hook(name: str) -> bool:
    head, _, _ = name.partition(".")
    return (head in ("ScriptedConfig", "DEFAULT_SKILL", "DEFAULT_HABITS", "DEFAULT_TRAITS", "RAGAgent",
                     "UserVectorConfig")
            or name in _AGENT_ARGS or name in _NAMED_HOOKS)


def _regenerated_profiles(profiles: str, workdir: Path, **generator_args: Any) -> str:
    """The shipped ``complex`` set regenerated with other generator arguments, as a JSONL file (the
    shipped set is ``generate_profiles(200, 43, style="complex", seed=0)``; a test holds it to that)."""
    from personalization_env.profiles.generator import generate_profiles
    from personalization_env.profiles.io import dump_profiles

    if profiles != "complex":
        raise ValueError(f"generator arguments can be moved only for --profiles complex, got {profiles!r}")
    tag = "-".join(f"{k}{v:g}" for k, v in sorted(generator_args.items()))
    path = workdir / f"profiles-complex-{tag}.jsonl"
    if not path.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        dump_profiles(generate_profiles(200, 43, style="complex", seed=0, **generator_args), path)
    return str(path)


def _plain(obj: Any) -> Any:
    """Nested mappings (a world's read-only views) as plain dicts, for JSON."""
    return {k: _plain(v) for k, v in obj.items()} if isinstance(obj, Mapping) else obj


def run_overrides(changes: Mapping[str, Any], *, profiles: str = "complex",
                  workdir: str | Path = "runs/sensitivity/profiles", world: str = "default") -> dict[str, Any]:
    """:class:`~benchmarks.run.RunConfig` fields that set ``changes`` (row name -> value).

    Args:
        changes: row name -> value.
        profiles: the run's profile set (generator arguments regenerate it).
        workdir: where regenerated profile files are written.
        world: the run's world preset: a moved agent-model value joins the preset's agent-model values
            (the swept backend replaces the one the world would configure); traits and the turn limit
            given to the run already win over the preset's.

    Raises:
        ValueError: a row no run option reaches.
    """
    from personalization_env.llm.render import DEFAULT_HABITS
    from personalization_env.llm.scripted import DEFAULT_SKILL
    from personalization_env.worlds import get_world

    preset = _plain(get_world(world).agent)
    scripted: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    agent_args: dict[str, Any] = {}
    policy: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for name, v in changes.items():
        head, _, key = name.partition(".")
        if head == "ScriptedConfig":
            scripted[key] = v
        elif head == "DEFAULT_SKILL":
            scripted.setdefault("skill", dict(preset.get("skill") or DEFAULT_SKILL))[key] = v
        elif head == "DEFAULT_HABITS":
            scripted.setdefault("habits", dict(preset.get("habits") or DEFAULT_HABITS))[key] = v
        elif head == "DEFAULT_TRAITS":
            traits[key] = v
        elif head == "RAGAgent":  # rag takes it as an argument; rag_vector takes K, J and the cap from its policy
            agent_args[key] = v
            policy[key] = v
        elif head == "UserVectorConfig":
            policy[key] = v
        elif name in _AGENT_ARGS:
            agent_args[_AGENT_ARGS[name]] = v
        elif name == "HashingEmbedder.dim":
            agent_args["embedder"] = f"hashing:{v}"
        elif name == "MultiSessionCollabEnv.max_turns":
            out["max_turns"] = v
        elif name == "PreferenceRecognizer.min_words":
            scripted["recognizer_min_words"] = v
        elif name == "generate_profiles.p_conditional":
            out["profiles"] = _regenerated_profiles(profiles, Path(workdir), p_conditional=v)
        else:
            raise ValueError(f"no run option reaches {name!r}; sweep it by adding a hook to benchmarks/sensitivity.py")
    if scripted:
        out["agent_model"] = "scripted_sweep:" + json.dumps({**preset, **scripted}, sort_keys=True)
    if traits:
        out["user_args"] = {"traits": traits}
    if policy:
        agent_args["policy"] = policy
    if agent_args:
        out["agent_args"] = agent_args
    return out


# ---- summaries and conclusions ---------------------------------------------------------------------
def summarize_run(rows: list[dict[str, Any]], methods: Sequence[str], sessions: int) -> dict[str, dict[str, float]]:
    """Per method: effort and success (mean, 95 % interval over sessions) and, but for vanilla and the
    oracle, the share of the vanilla-to-oracle effort gap closed over the later half of the sessions
    (95 % bootstrap interval over users), as ``msc run`` reports them."""
    from benchmarks.report import gap_shares, summarize

    ok = [r for r in rows if r.get("status") == "ok"]
    out: dict[str, dict[str, float]] = {}
    for rec in summarize(ok, metrics=("user_effort", "task_success"), methods=methods):
        out[rec["method"]] = {k: float(rec[k]) for k in ("user_effort", "user_effort_lo", "user_effort_hi",
                                                        "task_success", "task_success_lo", "task_success_hi")}
    shares, _ = gap_shares(ok, methods, ("user_effort",), from_session=sessions // 2)
    for s in shares:
        out[s["method"]].update(share=float(s["share"]), share_lo=float(s["ci_low"]), share_hi=float(s["ci_high"]))
    if "rag" in out and "rag_vector" in out:  # the README's paired test, over all sessions
        from benchmarks.stats import compare_methods

        t = compare_methods(ok, "rag_vector", "rag", "user_effort")
        out["rag_vector"].update(vs_rag_effort_diff=float(t["mean_diff"]), vs_rag_effort_p=float(t["p"]))
    return out


Summary = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class Conclusion:
    """A method-ranking conclusion of the README as a predicate over a run's summary (None: the run
    lacks a method it needs)."""

    key: str
    text: str
    readme: str
    test: Callable[[Summary], bool | None] = field(repr=False)


def _need(s: Summary, *methods: str, share: bool = False) -> bool:
    return all(m in s and (not share or "share" in s[m]) for m in methods)


def _overlap(a: Mapping[str, float], b: Mapping[str, float], key: str) -> bool:
    return a[key + "_lo"] <= b[key + "_hi"] and b[key + "_lo"] <= a[key + "_hi"]


def _memory_beats_vanilla(s: Summary) -> bool | None:
    ms = [m for m in MEMORY_METHODS if m in s]
    if not ms or not _need(s, *ms, share=True):
        return None
    return all(s[m]["share_lo"] > 0 for m in ms)


def _oracle_lowest(s: Summary) -> bool | None:
    if "oracle" not in s or len(s) < 2:
        return None
    return all(s["oracle"]["user_effort"] < v["user_effort"] for m, v in s.items() if m != "oracle")


def _all_memory_largest(s: Summary) -> bool | None:
    others = [m for m in MEMORY_METHODS if m != "all_memory" and m in s]
    if not others or not _need(s, "all_memory", *others, share=True):
        return None
    return all(s["all_memory"]["share_lo"] > s[m]["share_hi"] for m in others)


def _ahead(a: str, b: str) -> Callable[[Summary], bool | None]:
    def test(s: Summary) -> bool | None:
        return s[a]["share"] > s[b]["share"] if _need(s, a, b, share=True) else None
    return test


def _tied(a: str, b: str) -> Callable[[Summary], bool | None]:
    def test(s: Summary) -> bool | None:
        return _overlap(s[a], s[b], "share") if _need(s, a, b, share=True) else None
    return test


def _rag_vector_not_better(s: Summary) -> bool | None:
    if "vs_rag_effort_p" not in s.get("rag_vector", {}):
        return None
    v = s["rag_vector"]
    return not (v["vs_rag_effort_diff"] < 0 and v["vs_rag_effort_p"] < 0.05)


def _memory_success(s: Summary) -> bool | None:
    ms = [m for m in MEMORY_METHODS if m in s]
    if not ms or "vanilla" not in s:
        return None
    return all(s[m]["task_success_lo"] > s["vanilla"]["task_success_hi"] for m in ms)


def _all_memory_best_success(s: Summary) -> bool | None:
    others = [m for m in MEMORY_METHODS if m != "all_memory" and m in s]
    if not others or "all_memory" not in s:
        return None
    return all(s["all_memory"]["task_success"] > s[m]["task_success"] for m in others)


#: The README's conclusions about the methods (its "What you just saw" and "Measured figures").
CONCLUSIONS: tuple[Conclusion, ...] = (
    Conclusion("memory_lt_vanilla", "every memory method has lower user effort than vanilla (share of the gap "
               "above 0, interval over users)", "vanilla remembers nothing and pays it every session",
               _memory_beats_vanilla),
    Conclusion("oracle_lowest", "the oracle has the lowest user effort", "the oracle is told the user's true "
               "preferences", _oracle_lowest),
    Conclusion("all_memory_largest", "all_memory closes the largest share of the vanilla-to-oracle gap, its "
               "interval above every other memory method's", "all_memory > reflection", _all_memory_largest),
    Conclusion("reflection_gt_contextual", "reflection closes more of the gap than contextual (point estimates)",
               "share of the gap: reflection 52-53 %, contextual 47-49 % (both README runs)", _ahead("reflection", "contextual")),
    Conclusion("reflection_tied_contextual", "reflection and contextual are within each other's interval",
               "reflection ~ contextual", _tied("reflection", "contextual")),
    Conclusion("contextual_gt_rag", "contextual closes more of the gap than rag (point estimates)",
               "contextual > rag", _ahead("contextual", "rag")),
    Conclusion("rag_tied_rag_vector", "rag and rag_vector are within each other's interval", "rag ~ rag_vector",
               _tied("rag", "rag_vector")),
    Conclusion("rag_vector_not_better", "rag_vector does not beat rag: its user effort is not lower by a paired "
               "test over users at p < 0.05", "rag_vector does not beat rag here", _rag_vector_not_better),
    Conclusion("memory_success_gt_vanilla", "every memory method has a higher task success than vanilla "
               "(intervals apart)", "success %: vanilla 34.7, the memory methods 53.0-61.9 (full table)", _memory_success),
    Conclusion("all_memory_best_success", "all_memory has the highest task success of the memory methods "
               "(point estimates)", "success %: all_memory 61.9, the highest of the memory methods (full table)", _all_memory_best_success),
)


def evaluate(summary: Summary, conclusions: Sequence[Conclusion] = CONCLUSIONS) -> dict[str, bool | None]:
    """Each conclusion's verdict on one run's summary."""
    return {c.key: c.test(summary) for c in conclusions}


def verdict(base: bool | None, moves: Mapping[str, Mapping[str, bool | None]]) -> str:
    """"robust", "holds except under ..." or why not, from the verdict at the defaults and at each
    move (``moves[unit]["-50 %" | "+50 %"]``)."""
    if base is None:
        return "not evaluated (a method it needs is not in the run)"
    broken = [f"{u} {label}" for u, by in moves.items() for label, ok in by.items() if ok is False]
    if not base:
        held = [f"{u} {label}" for u, by in moves.items() for label, ok in by.items() if ok]
        return "does not hold at the defaults" + (f" (holds under {', '.join(held)})" if held else "")
    return "robust" if not broken else "holds except under " + ", ".join(broken)


# ---- the sweep -------------------------------------------------------------------------------------
@dataclass
class SweepConfig:
    """Arguments of ``python -m benchmarks.sensitivity``."""

    users: int = 60
    sessions: int = 10
    profiles: str | None = None
    """profile set (None: "complex" in the default world, else the world's)"""
    methods: str = "all"
    datasets: str | None = None
    """task datasets (None: the world's, else the generated sets)"""
    world: str = "default"
    """world preset; its values are the base the moves scale"""
    data_dir: str | None = None
    """folder of the MultiSessionCollab files (worlds and datasets that read them)"""
    params: str | None = None
    """comma-separated row or group names (default: every assumption row of the table)"""
    workers: int = 0
    """worker processes per run (0: one per core, at most 8)"""
    rerun_all: bool = False
    """run every method at every move (default: only the methods the table's "methods" cell names;
    the others' rows are the base run's, which they would equal)"""
    seed: int = 0
    out: str = "runs/sensitivity"
    table: str = str(TABLE)
    progress: bool = True


def _label(factor: float) -> str:
    return f"{(factor - 1) * 100:+.0f} %"


def sweep(cfg: SweepConfig) -> dict[str, Any]:
    """Run the base grid and every move; returns the report (also written under ``cfg.out``)."""
    from benchmarks.run import RunConfig, run

    workers = cfg.workers or max(1, min(os.cpu_count() or 1, 8))
    profiles = cfg.profiles or ("complex" if cfg.world == "default" else None)
    base_kw = dict(methods=[m.strip() for m in cfg.methods.split(",")], profiles=profiles, n_users=cfg.users,
                   sessions=cfg.sessions, datasets=cfg.datasets, seed=cfg.seed, workers=workers, progress=False,
                   tensorboard=False, overwrite=True, world=cfg.world, data_dir=cfg.data_dir)
    probe = RunConfig(**base_kw, out=str(Path(cfg.out) / "runs" / "base"))  # the world's defaults filled in
    methods, profiles, datasets = probe.methods, str(probe.profiles), str(probe.datasets)
    rows = load_table(cfg.table)
    if cfg.world != "default":
        rows = world_values(rows, cfg.world)
    names = [n.strip() for n in cfg.params.split(",") if n.strip()] if cfg.params else None
    units, skipped = plan(rows, names=names, datasets=[d.strip() for d in datasets.split(",")], profiles=profiles)
    workdir = Path(cfg.out) / "profiles"
    jobs: list[tuple[str, str, float | None, dict[str, Any], str, list[str]]] = [("base", "base", None, {}, "", methods)]
    for u in units:
        rerun = methods if cfg.rerun_all else u.methods(methods)
        for f in FACTORS:
            changes, note = u.moved(f)
            same = all(changes[r.name] == r.value for r in u.rows)  # clipped or rounded back: the base run stands
            jobs.append((f"{u.name}{'-' if f < 1 else '+'}50", u.name, f, changes, note, [] if same else rerun))
    bar = Progress(sum(len(j[5]) for j in jobs) * cfg.users * cfg.sessions, "sensitivity", "session",
                   enabled=cfg.progress)
    t0 = time.perf_counter()
    summaries: dict[str, Any] = {}
    results: dict[str, dict[str, dict[str, bool | None]]] = {}
    moves: list[dict[str, Any]] = []
    failed: dict[str, int] = {}
    base_verdicts: dict[str, bool | None] = {}
    base_rows: list[dict[str, Any]] = []
    try:
        for run_name, unit, factor, changes, note, rerun in jobs:
            got = []
            if rerun:
                kw = {**base_kw, "methods": rerun,
                      **run_overrides(changes, profiles=profiles, workdir=workdir, world=cfg.world)}
                got = run(RunConfig(**kw, out=str(Path(cfg.out) / "runs" / run_name)), on_row=lambda _r: bar.update())
            bad = sum(1 for r in got if r.get("status") != "ok")
            if bad:
                failed[run_name] = bad
            if factor is None:
                base_rows = got
            else:
                got = got + [r for r in base_rows if r["method"] not in rerun]
            summary = summarize_run(got, methods, cfg.sessions)
            summaries[run_name] = summary
            verdicts = evaluate(summary)
            if factor is None:
                base_verdicts = verdicts
                continue
            moves.append({"parameter": unit, "factor": factor, "values": changes, "note": note, "run": run_name,
                          "methods_rerun": rerun})
            for key, ok in verdicts.items():
                results.setdefault(key, {}).setdefault(unit, {})[_label(factor)] = ok
    finally:
        bar.close()
    report = {
        "config": dataclasses.asdict(cfg), "methods": methods, "seconds": round(time.perf_counter() - t0, 1),
        "simulated": True, "table": str(cfg.table), "moves": moves,
        "skipped": [{"parameter": n, "reason": why} for n, why in skipped], "failed_sessions": failed,
        "conclusions": [{"key": c.key, "text": c.text, "readme": c.readme, "base": base_verdicts[c.key],
                         "moves": results.get(c.key, {}),
                         "verdict": verdict(base_verdicts[c.key], results.get(c.key, {}))} for c in CONCLUSIONS],
        "summaries": summaries,
    }
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sensitivity.json").write_text(json.dumps(_finite(report), indent=1) + "\n", encoding="utf-8")
    (out / "sensitivity.md").write_text(markdown(report), encoding="utf-8")
    return report


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def markdown(report: Mapping[str, Any]) -> str:
    """The report as markdown: the moves, the conclusion x parameter table, one verdict per conclusion,
    the share of the gap per method and run, and what was not swept."""
    c = report["config"]
    units = list(dict.fromkeys(m["parameter"] for m in report["moves"]))
    command = " ".join(["python -m benchmarks.sensitivity", f"--users {c['users']}", f"--sessions {c['sessions']}",
                        *(f"--{k.replace('_', '-')} {c[k]}" for k in ("world", "profiles", "datasets", "methods", "params")
                          if c[k] and not (k == "world" and c[k] == "default"))])
    lines = ["# Sensitivity of the README's conclusions to the world's assumptions (simulated)", "",
             f"`{command}`: {len(report['moves']) + 1} runs in {report['seconds']} s; each swept parameter of "
             f"`{Path(report['table']).name}` at x0.5 and x1.5.", ""]
    if report["failed_sessions"]:
        lines += [f"Failed sessions (left out of the summaries): {report['failed_sessions']}", ""]
    lines += ["## Moves", "", "Methods re-run: those the table's \"methods\" cell names; the others keep the base "
              "run's rows" + (" (here every method was re-run)." if c.get("rerun_all") else "."), "",
              "| parameter | -50 % | +50 % | methods re-run |", "|---|---|---|---|"]
    for u in units:
        cells = []
        unit_moves = [m for m in report["moves"] if m["parameter"] == u]
        for m in unit_moves:
            vals = m["values"]
            v = next(iter(vals.values())) if len(vals) == 1 else f"{len(vals)} values x{m['factor']:g}"
            cells.append(f"{v:g}" + (f" ({m['note']})" if m["note"] else "") if isinstance(v, (int, float))
                         else v + (f" ({m['note']})" if m["note"] else ""))
        reruns = ["all" if m["methods_rerun"] == report["methods"] else ", ".join(m["methods_rerun"])
                  or "none (no change)" for m in unit_moves]
        cells.append(" / ".join(reruns) if len(set(reruns)) > 1 else reruns[0])
        lines.append(f"| {u} | " + " | ".join(cells) + " |")
    lines += ["", "## Conclusions x parameters", "",
              "Each cell: holds at -50 % / the defaults / +50 % (yes, NO, - = not evaluated).", ""]
    for i, con in enumerate(report["conclusions"], 1):
        lines.append(f"- C{i} `{con['key']}`: {con['text']} (README: \"{con['readme']}\")")
    lines += ["", "| parameter | " + " | ".join(f"C{i}" for i in range(1, len(report["conclusions"]) + 1)) + " |",
              "|---|" + "---|" * len(report["conclusions"])]
    for u in units:
        cells = []
        for con in report["conclusions"]:
            by = con["moves"].get(u, {})
            cells.append("/".join([_mark(by.get("-50 %")), _mark(con["base"]), _mark(by.get("+50 %"))]))
        lines.append(f"| {u} | " + " | ".join(cells) + " |")
    lines += ["", "## Verdicts", ""]
    for i, con in enumerate(report["conclusions"], 1):
        lines.append(f"- C{i} {con['text']}: **{con['verdict']}**")
    share_methods = [m for m in report["methods"] if m not in ("vanilla", "oracle")]
    lines += ["", f"## Share of the vanilla-to-oracle effort gap (sessions {c['sessions'] // 2}-{c['sessions'] - 1})",
              "", "| run | vanilla effort | oracle effort | " + " | ".join(share_methods) + " |",
              "|---|---|---|" + "---|" * len(share_methods)]
    for name, s in report["summaries"].items():
        cells = [f"{s[m]['share'] * 100:.0f} % [{s[m]['share_lo'] * 100:.0f}, {s[m]['share_hi'] * 100:.0f}]"
                 if m in s and "share" in s[m] and math.isfinite(s[m]["share_lo"]) else "-" for m in share_methods]
        eff = [f"{s[m]['user_effort']:.2f}" if m in s else "-" for m in ("vanilla", "oracle")]
        lines.append(f"| {name} | " + " | ".join(eff + cells) + " |")
    if report["skipped"]:
        lines += ["", "## Assumptions not swept", ""]
        lines += [f"- `{s['parameter']}`: {s['reason']}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    d = SweepConfig()
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.sensitivity",
        description="Move every assumption of docs/assumptions.md to x0.5 and x1.5 and check which of the "
                    "README's method-ranking conclusions still hold. The default size (the main job's grid: "
                    "7 methods x 60 complex users x 10 sessions, one run at the defaults and two per assumption) "
                    "takes about 10 minutes on 2 cores.")
    p.add_argument("--users", type=int, default=d.users, help="users per run (default: %(default)s)")
    p.add_argument("--sessions", type=int, default=d.sessions, help="sessions per user (default: %(default)s)")
    p.add_argument("--world", default=d.world, help="world preset whose values the moves scale (default: %(default)s)")
    p.add_argument("--profiles", default=None, help="profile set (default: complex, or the world's)")
    p.add_argument("--methods", default=d.methods, help="methods, comma-separated, or 'all' (default: %(default)s)")
    p.add_argument("--datasets", default=None, help="task datasets (default: the world's, else the generated sets)")
    p.add_argument("--data-dir", default=None, help="folder of the MultiSessionCollab files (worlds that read them)")
    p.add_argument("--params", default=None,
                   help="only these rows or groups, comma-separated (default: every assumption of the table)")
    p.add_argument("--workers", type=int, default=d.workers, help="processes per run (default: one per core)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--table", default=d.table, help="the assumptions table (default: docs/assumptions.md)")
    p.add_argument("--out", default=d.out, help="report folder: sensitivity.md, sensitivity.json and runs/ "
                                                "(default: %(default)s)")
    p.add_argument("--rerun-all", action="store_true",
                   help="run every method at every move (default: only the methods the table's methods cell names)")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the markdown")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    cfg = SweepConfig(users=args.users, sessions=args.sessions, profiles=args.profiles, methods=args.methods,
                      datasets=args.datasets, world=args.world, data_dir=args.data_dir, params=args.params,
                      workers=args.workers, seed=args.seed,
                      out=args.out, table=args.table, progress=not args.no_progress,
                      rerun_all=args.rerun_all)
    try:
        report = sweep(cfg)
    except (ValueError, FileNotFoundError) as e:  # a bad name, table path or data folder: one line
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(_finite(report), indent=1) if args.json else markdown(report))
    print(f"report: {Path(cfg.out) / 'sensitivity.md'} and {Path(cfg.out) / 'sensitivity.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
