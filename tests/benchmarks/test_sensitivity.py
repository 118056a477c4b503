"""benchmarks.sensitivity: the table parser, the x0.5 / x1.5 moves, the conclusions' predicates, the
hooks into the run, and a tiny end-to-end sweep."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import sensitivity as S
from benchmarks.sensitivity import Bounds, Row, evaluate, move, parse_range, parse_table, plan, verdict

TABLE = """Some prose.

| parameter | value | range | what it does | source | methods |
|---|---|---|---|---|---|
| `A.prob` | 0.8 | [0, 1] | a probability | assumption | all |
| `A.count` | 3 | >= 1 | a count | assumption | rag |
| `A.rate` | 0.01 | > 0 | a rate | VARS, eta | rag_vector |
| `A.none` | None | - | off | assumption | all |
| `A.inert` | 0.1 | [0, 1] | unused | assumption | none under the defaults (judge) |
| `H.x` | 0.4 | [0, 1] | habit x | assumption (group H) | all |
| `H.y` | 0.9 | [0, 1] | habit y | assumption (group H) | all |
| `A.mode` | 'none' | - | a switch | design | rag_vector |

Text after the table.
"""


def test_parse_table_reads_every_row_with_typed_values() -> None:
    rows = parse_table(TABLE)
    assert [r.name for r in rows] == ["A.prob", "A.count", "A.rate", "A.none", "A.inert", "H.x", "H.y", "A.mode"]
    by = {r.name: r for r in rows}
    assert by["A.prob"].value == 0.8 and isinstance(by["A.prob"].value, float)
    assert by["A.count"].value == 3 and isinstance(by["A.count"].value, int)
    assert by["A.none"].value is None
    assert by["A.mode"].value == "none"
    assert by["A.prob"].range == Bounds(0.0, 1.0)
    assert by["A.count"].range == Bounds(1.0, None)
    assert by["A.rate"].range == Bounds(0.0, None, low_open=True)
    assert by["A.mode"].range == Bounds()
    assert by["A.prob"].assumption and not by["A.rate"].assumption
    assert by["H.x"].group == "H" and by["A.prob"].group is None
    assert by["A.inert"].inert and not by["A.prob"].inert


def test_parse_table_refuses_bad_rows() -> None:
    with pytest.raises(ValueError, match="line 5 has 5 cells"):
        parse_table(TABLE.replace("| `A.prob` | 0.8 | [0, 1] |", "| `A.prob` | 0.8 |"))
    with pytest.raises(ValueError, match="listed twice"):
        parse_table(TABLE.replace("`A.count`", "`A.prob`"))
    with pytest.raises(ValueError, match="range 'sometimes'"):
        parse_table(TABLE.replace("| >= 1 |", "| sometimes |"))
    with pytest.raises(ValueError, match="no table"):
        parse_table("| a | b |\n|---|---|\n| 1 | 2 |\n")


def test_parse_range_forms() -> None:
    assert parse_range("(0, 1)") == Bounds(0.0, 1.0, True, True)
    assert parse_range("[-1, 1]") == Bounds(-1.0, 1.0)
    assert parse_range("> 0") == Bounds(0.0, None, True)
    assert parse_range("-") == Bounds()


def test_move_scales_rounds_and_clips() -> None:
    m = move(0.3, 0.5, Bounds(0.0, 1.0))
    assert m.value == pytest.approx(0.15) and not m.clipped and not m.rounded and m.note == ""
    m = move(0.8, 1.5, Bounds(0.0, 1.0))
    assert m.value == 1.0 and m.clipped and "clipped to 1" in m.note
    m = move(3, 0.5, Bounds(1.0, None))
    assert m.value == 2 and isinstance(m.value, int) and m.rounded  # 1.5 rounds half up
    m = move(3, 1.5, Bounds(1.0, None))
    assert m.value == 5 and isinstance(m.value, int)  # 4.5 rounds half up
    m = move(1, 0.5, Bounds(1.0, None))
    assert m.value == 1 and m.clipped is False and m.rounded and "no change" in m.note  # 0.5 rounds to 1
    m = move(2, 0.5, Bounds(2.0, None))
    assert m.value == 2 and m.clipped and "1 clipped to 2" in m.note and "no change" in m.note
    m = move(0.0, 1.5, Bounds(0.0, 1.0))
    assert m.value == 0.0 and "no change" in m.note
    m = move(10, 0.5, Bounds(8.0, None))
    assert m.value == 8 and m.clipped
    with pytest.raises(ValueError, match="only numbers"):
        move(None, 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only numbers"):
        move(True, 0.5)


def test_plan_sweeps_assumptions_and_says_why_others_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S, "has_hook", lambda name: name != "A.count")
    units, skipped = plan(parse_table(TABLE))
    assert [u.name for u in units] == ["A.prob", "H"]
    assert [r.name for r in units[1].rows] == ["H.x", "H.y"]
    reasons = dict(skipped)
    assert set(reasons) == {"A.count", "A.none", "A.inert"}
    assert "no run option" in reasons["A.count"] and "not a number" in reasons["A.none"]
    assert "changes no method" in reasons["A.inert"]
    changes, note = units[1].moved(1.5)
    assert changes == {"H.x": pytest.approx(0.6), "H.y": 1.0} and "1 of 2 clipped (y)" in note
    units, _ = plan(parse_table(TABLE), names=["H.y"])
    assert [u.name for u in units] == ["H.y"]
    with pytest.raises(ValueError, match="unknown parameter 'A.prb'"):
        plan(parse_table(TABLE), names=["A.prb"])


def test_skill_of_a_dataset_outside_the_grid_is_left_out() -> None:
    rows = [Row("DEFAULT_SKILL.logiqa", 0.55, Bounds(0, 1), "", "assumption", "all, on logiqa")]
    units, skipped = plan(rows, datasets=["gen_math"])
    assert units == [] and "logiqa is not in the grid" in skipped[0][1]
    units, skipped = plan(rows, datasets=["logiqa"])
    assert [u.name for u in units] == ["DEFAULT_SKILL.logiqa"] and skipped == []


def _share(s: float, lo: float, hi: float, effort: float, success: float, s_lo: float, s_hi: float) -> dict:
    return {"share": s, "share_lo": lo, "share_hi": hi, "user_effort": effort, "user_effort_lo": effort - 0.1,
            "user_effort_hi": effort + 0.1, "task_success": success, "task_success_lo": s_lo, "task_success_hi": s_hi}


#: a hand-made summary shaped like the README's main job (values typed here, not computed)
SUMMARY = {
    "vanilla": {"user_effort": 7.9, "user_effort_lo": 7.8, "user_effort_hi": 8.0, "task_success": 0.36,
                "task_success_lo": 0.33, "task_success_hi": 0.40},
    "contextual": _share(0.49, 0.45, 0.54, 5.45, 0.56, 0.52, 0.60),
    "reflection": _share(0.53, 0.47, 0.59, 5.38, 0.558, 0.518, 0.598),
    "all_memory": _share(0.90, 0.84, 0.95, 3.90, 0.615, 0.575, 0.653),
    "rag": _share(0.41, 0.35, 0.46, 5.96, 0.54, 0.50, 0.579),
    "rag_vector": {**_share(0.39, 0.35, 0.44, 6.07, 0.542, 0.502, 0.581), "vs_rag_effort_diff": 0.112,
                   "vs_rag_effort_p": 0.3129},
    "oracle": {"user_effort": 2.23, "user_effort_lo": 2.0, "user_effort_hi": 2.5, "task_success": 0.70,
               "task_success_lo": 0.66, "task_success_hi": 0.73},
}


def test_predicates_on_a_hand_made_summary() -> None:
    assert evaluate(SUMMARY) == {
        "memory_lt_vanilla": True, "oracle_lowest": True, "all_memory_largest": True,
        "reflection_gt_contextual": True, "reflection_tied_contextual": True, "contextual_gt_rag": True,
        "rag_tied_rag_vector": True, "rag_vector_not_better": True, "memory_success_gt_vanilla": True,
        "all_memory_best_success": True,
    }


def test_predicates_turn_when_the_summary_does() -> None:
    s = json.loads(json.dumps(SUMMARY))
    s["rag"].update(share=-0.02, share_lo=-0.10, share_hi=0.05)  # rag no better than vanilla
    s["reflection"].update(share=0.86, share_lo=0.80, share_hi=0.92)  # overlaps all_memory, far above contextual
    s["rag_vector"].update(task_success=0.70, task_success_lo=0.39, task_success_hi=0.75,
                           vs_rag_effort_diff=-0.3, vs_rag_effort_p=0.01)
    s["oracle"]["user_effort"] = 4.0  # above all_memory's 3.90
    got = evaluate(s)
    assert got == {
        "memory_lt_vanilla": False, "oracle_lowest": False, "all_memory_largest": False,
        "reflection_gt_contextual": True, "reflection_tied_contextual": False, "contextual_gt_rag": True,
        "rag_tied_rag_vector": False, "rag_vector_not_better": False, "memory_success_gt_vanilla": False,
        "all_memory_best_success": False,
    }


def test_predicates_need_their_methods() -> None:
    got = evaluate({"vanilla": SUMMARY["vanilla"], "all_memory": {k: v for k, v in SUMMARY["all_memory"].items()
                                                                  if not k.startswith("share")}})
    assert got["reflection_tied_contextual"] is None and got["oracle_lowest"] is None
    assert got["memory_lt_vanilla"] is None  # no shares without the oracle
    assert got["memory_success_gt_vanilla"] is True


def test_verdict_lines() -> None:
    assert verdict(True, {"A": {"-50 %": True, "+50 %": True}}) == "robust"
    assert verdict(True, {"A": {"-50 %": False, "+50 %": True}, "B": {"-50 %": True, "+50 %": False}}) == \
        "holds except under A -50 %, B +50 %"
    assert verdict(False, {"A": {"-50 %": True, "+50 %": False}}) == "does not hold at the defaults (holds under A -50 %)"
    assert verdict(None, {}).startswith("not evaluated")


def test_run_overrides_reach_the_run_config() -> None:
    from personalization_env.llm.render import DEFAULT_HABITS

    kw = S.run_overrides({"ScriptedConfig.misapply_prob": 0.075, "DEFAULT_HABITS.emoji": 0.05,
                          "DEFAULT_TRAITS.verify_prob": 0.45, "RAGAgent.J": 2, "UserVectorConfig.s0_floor": 0.5,
                          "ContextualAgent.budget_tokens": 1500, "MultiSessionCollabEnv.max_turns": 15})
    family, _, overrides = kw["agent_model"].partition(":")
    assert family == "scripted_sweep"
    cfg = json.loads(overrides)
    assert cfg["misapply_prob"] == 0.075 and cfg["habits"] == {**DEFAULT_HABITS, "emoji": 0.05}
    assert kw["user_args"] == {"traits": {"verify_prob": 0.45}}
    assert kw["agent_args"] == {"J": 2, "budget_tokens": 1500, "policy": {"J": 2, "s0_floor": 0.5}}
    assert kw["max_turns"] == 15
    with pytest.raises(ValueError, match="no run option reaches 'VARS_MIX.verbosity'"):
        S.run_overrides({"VARS_MIX.verbosity": 2})


def test_swept_backend_takes_its_overrides_from_the_spec() -> None:
    from personalization_env.llm.base import make_backend

    b = make_backend('scripted_sweep:{"misapply_prob": 0.3, "skill": {"mmlu": 0.5}}')
    assert b.config.misapply_prob == 0.3 and b.config.skill == {"mmlu": 0.5} and b.config.p_max == 0.98


def test_every_assumption_of_the_real_table_is_swept_or_has_a_reason(tmp_path) -> None:
    rows = S.load_table()
    units, skipped = plan(rows, datasets=["gen_math", "gen_logic", "gen_mc"])
    covered = {r.name for u in units for r in u.rows} | {n for n, _ in skipped}
    grouped_nonnumeric = {r.name for r in rows if r.group and not r.numeric}
    assert {r.name for r in rows if r.assumption} - grouped_nonnumeric <= covered
    for u in units:
        for f in S.FACTORS:
            S.run_overrides(u.moved(f)[0], workdir=tmp_path)  # every planned move reaches the run


def test_tiny_sweep_end_to_end(tmp_path) -> None:
    cfg = S.SweepConfig(users=2, sessions=2, params="DEFAULT_TRAITS.verify_prob", workers=1, out=str(tmp_path),
                        progress=False)
    report = S.sweep(cfg)
    assert [m["parameter"] for m in report["moves"]] == ["DEFAULT_TRAITS.verify_prob"] * 2
    assert [m["values"]["DEFAULT_TRAITS.verify_prob"] for m in report["moves"]] == [pytest.approx(0.15),
                                                                                    pytest.approx(0.45)]
    assert set(report["summaries"]) == {"base", "DEFAULT_TRAITS.verify_prob-50", "DEFAULT_TRAITS.verify_prob+50"}
    assert report["methods"] == ["vanilla", "contextual", "reflection", "all_memory", "rag", "rag_vector", "oracle"]
    assert [c["key"] for c in report["conclusions"]] == [c.key for c in S.CONCLUSIONS]
    for c in report["conclusions"]:
        assert set(c["moves"]) == {"DEFAULT_TRAITS.verify_prob"}
        assert set(c["moves"]["DEFAULT_TRAITS.verify_prob"]) == {"-50 %", "+50 %"}
        assert isinstance(c["verdict"], str) and c["verdict"]
    for s in report["summaries"].values():
        assert set(s) == set(report["methods"]) and math.isfinite(s["vanilla"]["user_effort"])
    on_disk = json.loads((tmp_path / "sensitivity.json").read_text())
    assert on_disk["conclusions"][0]["key"] == "memory_lt_vanilla"
    md = (tmp_path / "sensitivity.md").read_text()
    assert "| DEFAULT_TRAITS.verify_prob | 0.15 | 0.45 |" in md
    assert md.count("\n- C") == 2 * len(S.CONCLUSIONS)  # the legend and the verdicts
    rows = [json.loads(x) for x in (tmp_path / "runs" / "DEFAULT_TRAITS.verify_prob+50" / "sessions.jsonl").open()]
    assert len(rows) == 7 * 2 * 2
    meta = json.loads((tmp_path / "runs" / "DEFAULT_TRAITS.verify_prob+50" / "metadata.json").read_text())
    assert meta["config"]["user_args"] == {"traits": {"verify_prob": 0.45}}


def test_affected_methods_reads_the_methods_cell() -> None:
    ms = ["vanilla", "contextual", "reflection", "all_memory", "rag", "rag_vector", "oracle"]
    assert S.affected_methods("all", ms) == ms
    assert S.affected_methods("all, on logiqa", ms) == ms
    assert S.affected_methods("reflection", ms) == ["reflection"]
    assert S.affected_methods("all_memory, rag, rag_vector", ms) == ["all_memory", "rag", "rag_vector"]
    assert S.affected_methods("rag_vector", [*ms, "plugin:Agent"]) == ["rag_vector", "plugin:Agent"]
    assert S.affected_methods("something else", ms) == ms  # names no method: all, to be safe


def test_a_move_leaves_the_methods_outside_its_cell_unchanged(tmp_path) -> None:
    """What lets the sweep reuse the base run's rows for the methods a row's cell leaves out, checked
    on one row (reflection's note drop) against methods it does not name."""
    from benchmarks.run import RunConfig, run

    row = {r.name: r for r in S.load_table()}["ScriptedConfig.reflect_drop"]
    assert S.affected_methods(row.methods, ["vanilla", "reflection", "all_memory"]) == ["reflection"]
    kw = dict(methods=["vanilla", "reflection", "all_memory"], profiles="complex", n_users=2, sessions=3,
              progress=False, tensorboard=False)
    base = run(RunConfig(**kw, out=str(tmp_path / "a")))
    moved = run(RunConfig(**kw, out=str(tmp_path / "b"), **S.run_overrides({row.name: 0.9})))

    def key(rows, m):
        return [(r["user_id"], r["session"], r["user_effort"], r["task_success"], r["turns"])
                for r in rows if r["method"] == m]

    assert key(base, "vanilla") == key(moved, "vanilla") and key(base, "all_memory") == key(moved, "all_memory")
    assert key(base, "reflection") != key(moved, "reflection")  # and the move does reach reflection


def test_shipped_complex_set_is_the_generator_at_its_defaults() -> None:
    """The p_conditional hook regenerates 'complex' with one argument changed; that compares like with
    like only while the shipped set is the generator's output at its defaults."""
    from personalization_env.profiles.generator import generate_profiles
    from personalization_env.profiles.io import load_profiles

    assert load_profiles("complex") == generate_profiles(200, 43, style="complex", seed=0)


def test_profile_and_recogniser_hooks(tmp_path) -> None:
    from personalization_env.llm.base import make_backend
    from personalization_env.profiles.io import load_profiles

    kw = S.run_overrides({"generate_profiles.p_conditional": 0.25}, profiles="complex", workdir=tmp_path)
    moved = load_profiles(kw["profiles"])
    assert len(moved) == 200 and moved != load_profiles("complex")
    with pytest.raises(ValueError, match="only for --profiles complex"):
        S.run_overrides({"generate_profiles.p_conditional": 0.25}, profiles="msc", workdir=tmp_path)
    kw = S.run_overrides({"PreferenceRecognizer.min_words": 2})
    b = make_backend(kw["agent_model"])
    assert b.recognizer.min_words == 2 and make_backend("scripted").recognizer.min_words == 4


def test_a_move_clipped_back_to_the_default_reuses_the_base_run(tmp_path) -> None:
    """notice_prob is 1.0: x1.5 clips to 1.0, so that move is the base run, not run again."""
    report = S.sweep(S.SweepConfig(users=2, sessions=2, methods="vanilla,all_memory,oracle",
                                   params="DEFAULT_TRAITS.notice_prob", workers=1, out=str(tmp_path), progress=False))
    up = next(m for m in report["moves"] if m["factor"] == 1.5)
    assert up["values"] == {"DEFAULT_TRAITS.notice_prob": 1.0} and up["methods_rerun"] == []
    assert report["summaries"][up["run"]] == report["summaries"]["base"]
    assert not (tmp_path / "runs" / up["run"]).exists()
    down = next(m for m in report["moves"] if m["factor"] == 0.5)
    assert down["methods_rerun"] == ["vanilla", "all_memory", "oracle"]


def test_rag_vector_beats_rag_only_with_a_significant_lower_effort() -> None:
    def verdict_for(diff: float, p: float) -> bool | None:
        s = json.loads(json.dumps(SUMMARY))
        s["rag_vector"].update(vs_rag_effort_diff=diff, vs_rag_effort_p=p)
        return evaluate(s)["rag_vector_not_better"]

    assert verdict_for(-0.3, 0.2) is True  # lower, but not told apart
    assert verdict_for(+0.3, 0.01) is True  # significantly higher effort: still does not beat rag
    assert verdict_for(-0.3, 0.01) is False


def test_world_preset_values_are_the_base_of_the_moves() -> None:
    from personalization_env.worlds import get_world

    w = get_world("vars-llama8b")
    rows = {r.name: r for r in S.world_values(S.load_table(), "vars-llama8b")}
    assert rows["ScriptedConfig.p_max"].value == w.agent["p_max"] != 0.98
    assert rows["DEFAULT_SKILL.math_500"].value == w.agent["skill"]["math_500"]
    assert "DEFAULT_SKILL.logiqa" not in rows  # the preset's skill table has no logiqa: not a parameter there
    assert rows["ScriptedConfig.misapply_prob"].value == 0.15  # not set by the preset: the default
    kw = S.run_overrides({"ScriptedConfig.misapply_prob": 0.3}, world="vars-llama8b")
    cfg = json.loads(kw["agent_model"].partition(":")[2])
    assert cfg["misapply_prob"] == 0.3 and cfg["p_max"] == w.agent["p_max"] and cfg["skill"] == w.agent["skill"]


def test_profile_generator_rows_are_left_out_for_other_profile_sets() -> None:
    rows = [r for r in S.load_table() if r.name == "generate_profiles.p_conditional"]
    assert [u.name for u in plan(rows, profiles="complex")[0]] == ["generate_profiles.p_conditional"]
    units, skipped = plan(rows, profiles="msc")
    assert units == [] and "not the generated complex set" in skipped[0][1]
