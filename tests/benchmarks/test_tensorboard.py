"""TensorBoard curves of msc run, read back with TensorBoard's own reader."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from benchmarks.run import RunConfig, run  # noqa: E402


def scalars(path, tag):
    acc = EventAccumulator(str(path))
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(tag)}


def test_curves_per_method_match_the_rows(tmp_path):
    out = tmp_path / "r"
    rows = run(RunConfig(methods=["vanilla", "rag_vector"], profiles="complex", n_users=3, sessions=4, out=str(out),
                         progress=False, lanes=3))
    for method in ("vanilla", "rag_vector"):
        mine = [r for r in rows if r["method"] == method]
        for metric in ("user_effort", "task_success", "return", "turns", "compliance"):
            got = scalars(out / "tensorboard" / method, f"by_session/{metric}")
            want = {s: sum(float(r[metric]) for r in mine if r["session"] == s) / 3 for s in range(4)}
            assert got.keys() == want.keys() and all(abs(got[s] - want[s]) < 1e-5 for s in want), metric
        blocks = scalars(out / "tensorboard" / method, "sessions/user_effort")
        assert sorted(blocks) == [3, 6, 9, 12]  # a point per block of 3 sessions (one per user)
        assert sum(blocks.values()) * 3 == pytest.approx(sum(float(r["user_effort"]) for r in mine))
    norms = scalars(out / "tensorboard" / "rag_vector", "by_session/vector_norm")
    assert len(norms) == 4 and all(v >= 0 for v in norms.values())
    rate = scalars(out / "tensorboard" / "rag_vector", "by_session/vector_change_rate")
    assert all(0.0 <= v <= 1.0 for v in rate.values())


def test_resumed_runs_rewrite_the_curves_without_duplicates_and_the_flag_turns_them_off(tmp_path):
    out = tmp_path / "r"
    run(RunConfig(methods=["vanilla"], n_users=2, sessions=2, out=str(out), progress=False))
    run(RunConfig(methods=["vanilla"], n_users=2, sessions=4, out=str(out), progress=False, continue_from=str(out)))
    assert sorted(scalars(out / "tensorboard" / "vanilla", "sessions/turns")) == [2, 4, 6, 8]
    assert sorted(scalars(out / "tensorboard" / "vanilla", "by_session/turns")) == [0, 1, 2, 3]
    run(RunConfig(methods=["vanilla"], n_users=1, sessions=1, out=str(tmp_path / "off"), progress=False,
                  tensorboard=False))
    assert not (tmp_path / "off" / "tensorboard").exists()
