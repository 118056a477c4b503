from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import struct
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from benchmarks.report import format_table, load_runs, summarize, write_report

METRIC_NAMES = ("task_success", "user_effort", "turns", "timeout", "compliance")
PNG_SIZE = (1050, 630)  # 7 x 4.2 inches at dpi 150


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    from benchmarks.run import RunConfig, run

    out = tmp_path_factory.mktemp("runs") / "base"
    run(RunConfig(methods=["vanilla", "all_memory", "oracle"], n_users=4, sessions=3, out=str(out), progress=False))
    return out


def copy_run(src: Path, dst: Path, keep=lambda r: True, edit=lambda r: r, **config) -> Path:
    """A copy of run ``src`` with some rows kept/edited and metadata config fields replaced."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("lanes", ".lock"))
    rows = [json.loads(line) for line in (src / "sessions.jsonl").read_text().splitlines()]
    (dst / "sessions.jsonl").write_text("".join(json.dumps(edit(dict(r))) + "\n" for r in rows if keep(r)))
    meta = json.loads((src / "metadata.json").read_text())
    meta["config"].update(config)
    (dst / "metadata.json").write_text(json.dumps(meta))
    return dst


def rows_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "sessions.jsonl").read_text().splitlines()]


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval, written out from its textbook form."""
    p = k / n
    centre = (p + z ** 2 / (2 * n)) / (1 + z ** 2 / n)
    half = (z / (1 + z ** 2 / n)) * math.sqrt(p * (1 - p) / n + z ** 2 / (4 * n ** 2))
    return centre - half, centre + half


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_report_writes_parseable_files_with_correct_numbers(base_run, tmp_path):
    res = write_report([base_run], tmp_path / "rep")
    rep = tmp_path / "rep"
    assert {p.name for p in rep.iterdir()} == {"summary.md", "summary.csv", "summary.json",
                                               *(f"curve_{m}.png" for m in METRIC_NAMES)}
    assert res["summary_md"] == rep / "summary.md" and set(res["plots"]) == set(METRIC_NAMES)
    assert res["warnings"] == []
    rows = rows_of(base_run)

    with open(rep / "summary.csv", newline="") as f:
        table = list(csv.DictReader(f))
    overall = [r for r in table if r["session"] == ""]
    per_session = [r for r in table if r["session"] != ""]
    assert [r["method"] for r in overall] == ["vanilla", "all_memory", "oracle"]  # the run's order
    assert len(per_session) == 3 * 3
    for metric in METRIC_NAMES:
        assert {f"{metric}_mean", f"{metric}_ci_low", f"{metric}_ci_high", f"{metric}_n"} <= set(table[0])
    van = overall[0]
    van_rows = [r for r in rows if r["method"] == "vanilla"]
    k = sum(int(r["task_success"]) for r in van_rows)
    assert int(van["task_success_n"]) == 12
    assert float(van["task_success_mean"]) == pytest.approx(k / 12)
    lo, hi = wilson(k, 12)
    assert float(van["task_success_ci_low"]) == pytest.approx(lo, abs=1e-6)
    assert float(van["task_success_ci_high"]) == pytest.approx(hi, abs=1e-6)
    effort = [r["user_effort"] for r in van_rows]
    assert float(van["user_effort_mean"]) == pytest.approx(sum(effort) / 12)
    s1 = [r for r in per_session if r["method"] == "all_memory" and r["session"] == "1"][0]
    turns1 = [r["turns"] for r in rows if r["method"] == "all_memory" and r["session"] == 1]
    assert int(s1["turns_n"]) == 4 and float(s1["turns_mean"]) == pytest.approx(sum(turns1) / 4)
    for r in table:  # every interval inside the metric's range (max_turns 10) and around its mean
        for metric, (low, high) in {"task_success": (0, 1), "timeout": (0, 1), "compliance": (0, 1),
                                    "user_effort": (0, 10), "turns": (1, 10)}.items():
            m, a, b = (float(r[f"{metric}_{k}"]) for k in ("mean", "ci_low", "ci_high"))
            assert low <= a <= m <= b <= high

    doc = json.loads((rep / "summary.json").read_text())
    assert doc["methods"] == ["vanilla", "all_memory", "oracle"] and doc["world"]["max_turns"] == 10
    pairs = {(t["a"], t["b"]) for t in doc["paired_tests"]}
    assert pairs == {("all_memory", "vanilla"), ("oracle", "vanilla")}  # default: every method vs vanilla
    by_user = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by_user[r["method"]][r["user_id"]].append(r["user_effort"])
    diffs = [sum(by_user["all_memory"][u]) / 3 - sum(by_user["vanilla"][u]) / 3 for u in by_user["vanilla"]]
    test = [t for t in doc["paired_tests"] if t["a"] == "all_memory" and t["metric"] == "user_effort"][0]
    assert test["n"] == 4 and test["mean_diff"] == pytest.approx(sum(diffs) / 4)
    assert {s["method"] for s in doc["gap_shares"]} == {"all_memory"}
    gap = [s for s in doc["gap_shares"] if s["metric"] == "user_effort"][0]
    v, o, a = (sum(sum(x) / 3 for x in by_user[m].values()) / 4 for m in ("vanilla", "oracle", "all_memory"))
    assert gap["share"] == pytest.approx((v - a) / (v - o))
    assert gap["ci_low"] <= gap["share"] <= gap["ci_high"]

    md = (rep / "summary.md").read_text()
    for section in ("## Per method", "## Per session index", "## Paired tests over users",
                    "## Share of the vanilla-to-oracle gap closed", "## Warnings"):
        assert section in md
    assert "| method | n | success % | effort | turns | timeout % | compliance % |" in md
    assert "| all_memory - vanilla | effort | 4 |" in md
    assert f"| all_memory | 4 | {100 * (v - a) / (v - o):.0f} % [" in md

    for metric in METRIC_NAMES:
        assert png_size(rep / f"curve_{metric}.png") == PNG_SIZE
    import matplotlib.image

    img = matplotlib.image.imread(rep / "curve_user_effort.png")
    assert img.shape[:2] == PNG_SIZE[::-1] and img[..., :3].std() > 0.05  # something is drawn


def test_tiny_samples_get_intervals_inside_the_metric_range():
    rows = [{"method": "m", "user_id": f"u{i}", "session": 0, "status": "ok", "task_success": float(i),
             "user_effort": 10.0 * i, "turns": 10.0 - 9 * i, "timeout": 0.0, "compliance": float(i)}
            for i in (0, 1)]
    [rec] = summarize(rows, max_turns=10)
    lo, hi = wilson(1, 2)
    assert (rec["task_success_lo"], rec["task_success_hi"]) == pytest.approx((lo, hi))
    assert 0 <= rec["timeout_lo"] <= rec["timeout_hi"] <= 1 and rec["timeout_hi"] == pytest.approx(wilson(0, 2)[1])
    assert (rec["user_effort_lo"], rec["user_effort_hi"]) == (0.0, 10.0)  # t interval 5 ± 63.5, clipped
    assert (rec["turns_lo"], rec["turns_hi"]) == (1.0, 10.0)
    assert (rec["compliance_lo"], rec["compliance_hi"]) == (0.0, 1.0)
    line = format_table([rec]).splitlines()[2]
    assert "±635" not in line and f"50.0 ±{100 * (hi - 0.5):.1f}" in line  # 1 of 2: Wilson is symmetric
    third = {**rows[0], "user_id": "u2"}
    [rec3] = summarize([*rows, third], max_turns=10)  # 1 of 3: asymmetric, shown as [lo, hi]
    lo, hi = wilson(1, 3)
    assert f"33.3 [{100 * lo:.1f}, {100 * hi:.1f}]" in format_table([rec3])
    [one] = summarize(rows[:1], max_turns=10)  # n = 1: no t interval at all
    assert math.isnan(one["user_effort_lo"]) and math.isnan(one["user_effort_hi"])
    assert format_table([one], metrics=["user_effort"]).splitlines()[2].split() == ["m", "1", "0.00"]


def test_gap_share_by_hand(tmp_path):
    """u1: vanilla 4, oracle 0, method 2; u2: vanilla 4, oracle 0, method 0 (sessions >= 1; session 0 is
    noise that from_session leaves out). Share = (4 - 1) / 4 = 75 %; a resample holds u1 twice (50 %),
    u2 twice (100 %) or both (75 %), so the 95 % interval is [50 %, 100 %]."""
    values = {"vanilla": (4.0, 4.0), "oracle": (0.0, 0.0), "mine": (2.0, 0.0)}
    rows = []
    for method, per_user in values.items():
        for u, v in zip(("u1", "u2"), per_user):
            for s, effort in ((0, 9.0), (1, v), (2, v)):
                rows.append({"method": method, "user_id": u, "session": s, "status": "ok", "task_success": 1.0,
                             "user_effort": effort, "turns": effort + 1, "timeout": 0.0, "compliance": 1.0})
    run_dir = tmp_path / "synthetic"
    run_dir.mkdir()
    (run_dir / "sessions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = {"methods": list(values), "sessions": 3, "n_users": 2, "profiles": "msc", "max_turns": 10}
    (run_dir / "metadata.json").write_text(json.dumps({"config": cfg, "users": 2}))
    res = write_report([run_dir], tmp_path / "rep", from_session=1, plots=False)
    doc = json.loads(res["summary_json"].read_text())
    [gap] = [s for s in doc["gap_shares"] if s["metric"] == "user_effort"]
    assert (gap["share"], gap["ci_low"], gap["ci_high"], gap["n"]) == (0.75, 0.5, 1.0, 2)
    md = res["summary_md"].read_text()
    assert "| mine | 2 | 75 % [50, 100] |" in md
    assert "task_success: no gap share (vanilla and oracle means are equal)" in md  # success 1.0 everywhere
    assert not any(p.suffix == ".png" for p in (tmp_path / "rep").iterdir())


def test_gap_shares_skipped_without_oracle(base_run, tmp_path):
    run = copy_run(base_run, tmp_path / "no_oracle", keep=lambda r: r["method"] != "oracle",
                   methods=["vanilla", "all_memory"])
    res = write_report([run], tmp_path / "rep", plots=False)
    md = res["summary_md"].read_text()
    assert "gap shares skipped: no oracle sessions" in md
    assert json.loads(res["summary_json"].read_text())["gap_shares"] == []


def test_pooled_runs_and_their_refusals(base_run, tmp_path):
    from benchmarks.run import RunConfig, run

    extra = tmp_path / "extra"
    run(RunConfig(methods=["contextual"], n_users=4, sessions=3, out=str(extra), progress=False))
    rows, metas = load_runs([base_run, extra])
    assert len(rows) == 4 * 12 and len(metas) == 2
    res = write_report([base_run, extra], tmp_path / "rep", plots=False)
    doc = json.loads(res["summary_json"].read_text())
    assert doc["methods"] == ["vanilla", "all_memory", "oracle", "contextual"]
    assert ("contextual", "vanilla") in {(t["a"], t["b"]) for t in doc["paired_tests"]}

    twin = copy_run(base_run, tmp_path / "twin", keep=lambda r: r["method"] == "oracle")
    with pytest.raises(ValueError, match="oracle") as e:
        load_runs([base_run, twin])
    assert str(base_run) in str(e.value) and str(twin) in str(e.value)

    other = copy_run(base_run, tmp_path / "other", keep=lambda r: False, max_turns=8)
    with pytest.raises(ValueError, match="'max_turns'.*10 vs 8"):
        load_runs([base_run, other])
    calibrated = copy_run(base_run, tmp_path / "calibrated", keep=lambda r: False, world="msc-llama70b")
    with pytest.raises(ValueError, match="'world'.*'default' vs 'msc-llama70b'"):
        load_runs([base_run, calibrated])
    seeded = copy_run(base_run, tmp_path / "seeded", keep=lambda r: False, seed=1)
    with pytest.raises(ValueError, match="'seed'"):
        write_report([base_run, seeded], tmp_path / "rep2", plots=False)
    with pytest.raises(FileNotFoundError, match="sessions.jsonl"):
        load_runs([tmp_path / "nothing"])


def test_unknown_compare_method_names_the_known_ones(base_run, tmp_path):
    with pytest.raises(ValueError, match=r"unknown method 'orcle'.*did you mean 'oracle'.*vanilla, all_memory"):
        write_report([base_run], tmp_path / "rep", compare=["all_memory,orcle"], plots=False)
    with pytest.raises(ValueError, match="'A,B'"):
        write_report([base_run], tmp_path / "rep", compare=["all_memory"], plots=False)
    res = write_report([base_run], tmp_path / "rep", compare=["oracle,all_memory"], from_session=1, plots=False)
    doc = json.loads(res["summary_json"].read_text())
    assert {(t["a"], t["b"], t["min_session"]) for t in doc["paired_tests"]} == {("oracle", "all_memory", 1)}


def test_unfinished_and_failed_runs_warn(base_run, tmp_path, caplog):
    def keep(r):  # two users' last all_memory session never ran
        return not (r["method"] == "all_memory" and r["session"] == 2 and r["user_id"] in ("msc-0000", "msc-0001"))

    def edit(r):  # one oracle session failed
        if r["method"] == "oracle" and r["user_id"] == "msc-0003" and r["session"] == 2:
            return {k: r[k] for k in ("method", "user_id", "session")} | {"status": "error", "error": "boom"}
        return r

    run = copy_run(base_run, tmp_path / "broken", keep=keep, edit=edit)
    with caplog.at_level(logging.WARNING, logger="benchmarks.report"):
        res = write_report([run], tmp_path / "rep", plots=False)
    unfinished = [w for w in res["warnings"] if ": unfinished: " in w]
    assert len(unfinished) == 1 and "all_memory has 10 of 12 sessions" in unfinished[0]
    assert "2 missing" in unfinished[0]
    failed = [w for w in res["warnings"] if "failed session" in w]
    assert len(failed) == 1 and "1 failed session(s) of oracle" in failed[0] and "boom" in failed[0]
    md = res["summary_md"].read_text()
    assert all(f"- {w}" in md for w in res["warnings"])
    assert [r.getMessage() for r in caplog.records] == res["warnings"]
    with open(res["summary_csv"], newline="") as f:
        counts = {r["method"]: int(r["user_effort_n"]) for r in csv.DictReader(f) if r["session"] == ""}
    assert counts == {"vanilla": 12, "all_memory": 10, "oracle": 11}


def test_plots_need_matplotlib(monkeypatch):
    from benchmarks.plots import require_matplotlib

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'multisessioncollab\[plot\]'"):
        require_matplotlib()
