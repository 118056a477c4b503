"""The runner's lanes: identical rows whatever the concurrency, session checkpoints, --continue-from,
run identity, failed and timed-out sessions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import lanes
from benchmarks.checkpoint import RunLock, RunLockedError, load_all
from benchmarks.cli import main
from benchmarks.run import RunConfig, RunExistsError, RunMismatchError, run
from personalization_env import __version__

ALL = ["vanilla", "contextual", "reflection", "all_memory", "rag", "rag_vector", "oracle"]


def cfg(out: Path, **kw) -> RunConfig:
    base = dict(methods=ALL, profiles="complex", n_users=3, sessions=3, out=str(out), progress=False)
    return RunConfig(**{**base, **kw})


def stable(rows):
    """Rows keyed by (method, user, session), without the wall-clock field."""
    return {(r["method"], r["user_id"], r["session"]): {k: v for k, v in r.items() if k != "seconds"} for r in rows}


def file_rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "sessions.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Every method, 3 users x 6 sessions, one lane in one process."""
    out = tmp_path_factory.mktemp("ref")
    rows = run(cfg(out, sessions=6, lanes=1))
    assert len(rows) == 7 * 3 * 6 and all(r["status"] == "ok" for r in rows)
    return stable(rows)


def test_rows_are_identical_whatever_the_lanes_and_workers(tmp_path, reference):
    for i, kw in enumerate([dict(lanes=5), dict(workers=2, lanes=3)]):
        out = tmp_path / str(i)
        rows = run(cfg(out, sessions=6, **kw))
        assert stable(rows) == reference, kw
        assert stable(file_rows(out)) == reference, kw  # the file holds the same rows, once each
        assert len(file_rows(out)) == len(reference)


def test_continue_from_3_to_6_sessions_equals_a_6_session_run(tmp_path, reference):
    short = tmp_path / "short"
    run(cfg(short, sessions=3, lanes=4))
    assert {ck.sessions_done for ck in load_all(short).values()} == {3}
    # into another folder: the 3-session run stays as it was
    longer = run(cfg(tmp_path / "longer", sessions=6, continue_from=str(short), lanes=4))
    assert stable(longer) == reference
    assert len(file_rows(short)) == 7 * 3 * 3
    # in place, through the CLI
    assert main(["run", "--methods", ",".join(ALL), "--profiles", "complex", "--users", "3", "--sessions", "6",
                 "--continue-from", str(short), "--no-progress", "--summary-only"]) == 0
    assert stable(file_rows(short)) == reference
    meta = json.loads((short / "metadata.json").read_text())
    assert meta["config"]["sessions"] == 6 and meta["sessions_kept"] == 63 and meta["sessions_run"] == 63


def test_resume_restarts_each_lane_at_its_first_unfinished_session(tmp_path, reference):
    out = tmp_path / "r"
    run(cfg(out, sessions=6, lanes=3))
    # forget the last sessions of some lanes, as if the run had been killed: rewind their checkpoints
    from benchmarks.checkpoint import lane_path, save

    for method, user, keep in (("rag_vector", "complex-0001", 2), ("reflection", "complex-0000", 0), ("vanilla", "complex-0002", 5)):
        if keep == 0:
            lane_path(out, method, user).unlink()
            continue
        short = run(cfg(tmp_path / f"{method}-{keep}", methods=[method], sessions=keep, lanes=1))
        earlier = load_all(tmp_path / f"{method}-{keep}")[(method, user)]
        assert [r["session"] for r in earlier.rows] == list(range(keep)) and short
        save(out, earlier)  # the lane's checkpoint after `keep` sessions
    seen = []
    rows = run(cfg(out, sessions=6, resume=True, lanes=3), on_row=seen.append)
    assert sorted((r["method"], r["user_id"], r["session"]) for r in seen) == sorted(
        [("rag_vector", "complex-0001", s) for s in range(2, 6)] + [("reflection", "complex-0000", s) for s in range(6)] +
        [("vanilla", "complex-0002", 5)])  # only the unfinished sessions ran
    assert stable(rows) == reference and stable(file_rows(out)) == reference
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["sessions_run"] == len(seen) and meta["sessions_kept"] == len(reference) - len(seen)
    assert [r["method"] for r in rows] == sorted((r["method"] for r in rows), key=ALL.index)  # the run's order


def test_continuing_refuses_another_configuration_in_one_line(tmp_path):
    out = tmp_path / "r"
    run(cfg(out, methods=["vanilla"], sessions=2))
    with pytest.raises(RunMismatchError, match=r"seed=0, this run has seed=1"):
        run(cfg(out, methods=["vanilla"], sessions=2, resume=True, seed=1))
    with pytest.raises(RunMismatchError, match="n_users"):
        run(cfg(out, methods=["vanilla"], sessions=4, continue_from=str(out), n_users=2))
    with pytest.raises(RunMismatchError, match="--continue-from"):
        run(cfg(out, methods=["vanilla"], sessions=4, resume=True))
    meta = json.loads((out / "metadata.json").read_text())
    meta["identity"]["package_version"] = "0.0.1"
    (out / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(RunMismatchError, match=r"package version=\"0.0.1\""):
        run(cfg(out, methods=["vanilla"], sessions=2, resume=True))
    meta["identity"]["package_version"] = __version__
    if meta["identity"]["git"]:  # this checkout is a git repository
        meta["identity"]["git"]["commit"] = "0" * 40
        (out / "metadata.json").write_text(json.dumps(meta))
        with pytest.raises(RunMismatchError, match="git revision 0000000000"):
            run(cfg(out, methods=["vanilla"], sessions=2, resume=True))
        assert run(cfg(out, methods=["vanilla"], sessions=2, resume=True, allow_code_change=True))
    # the CLI says it in one line and exits 2
    rc = main(["run", "--methods", "vanilla", "--profiles", "complex", "--users", "3", "--sessions", "2", "--seed", "5",
               "--out", str(out), "--resume", "--no-progress"])
    assert rc == 2


def test_a_folder_with_a_run_is_not_overwritten_by_accident_and_a_locked_one_is_refused(tmp_path, capsys):
    out = tmp_path / "r"
    run(cfg(out, methods=["vanilla"], sessions=1))
    with pytest.raises(RunExistsError, match="--resume"):
        run(cfg(out, methods=["vanilla"], sessions=1))
    assert run(cfg(out, methods=["oracle"], sessions=1, overwrite=True))
    assert {r["method"] for r in file_rows(out)} == {"oracle"}
    with RunLock(out):
        with pytest.raises(RunLockedError, match="another msc run"):
            run(cfg(out, methods=["oracle"], sessions=1, resume=True))
    assert run(cfg(tmp_path / "fresh", methods=["vanilla"], sessions=1, resume=True))  # --resume starts a new run


def test_a_failed_session_is_recorded_its_lane_stops_and_resume_retries_it(tmp_path, monkeypatch, capsys):
    plug = "tests.benchmarks.plugins:FailingAgent"
    monkeypatch.setenv("MSC_TEST_FAIL_AT", "complex-0001/2")
    out = tmp_path / "r"
    args = ["run", "--methods", f"vanilla,{plug}", "--profiles", "complex", "--users", "3", "--sessions", "4",
            "--out", str(out), "--no-progress", "--summary-only", "--lanes", "3"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "1 session(s) failed" in err and "complex-0001 / session 2: ValueError: injected failure" in err
    rows = file_rows(out)
    bad = [r for r in rows if r["status"] != "ok"]
    assert [(r["method"], r["user_id"], r["session"]) for r in bad] == [(plug, "complex-0001", 2)]
    assert not any(r["method"] == plug and r["user_id"] == "complex-0001" and r["session"] == 3 for r in rows)  # lane stopped
    assert sum(r["status"] == "ok" for r in rows) == 2 * 3 * 4 - 2  # every other lane finished
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["failures"] == [{"method": plug, "user_id": "complex-0001", "session": 2, "error": "ValueError: injected failure"}]
    monkeypatch.delenv("MSC_TEST_FAIL_AT")
    assert main([*args, "--resume"]) == 0
    ref = run(cfg(tmp_path / "ref", methods=["vanilla", plug], sessions=4))
    assert stable(file_rows(out)) == stable(ref)


def test_a_failed_checkpoint_write_fails_its_session_and_stops_only_that_lane(tmp_path, monkeypatch):
    from benchmarks import checkpoint

    started: list[tuple[str, int]] = []
    real_run_session, real_prepare = lanes.run_session, checkpoint.LaneWriter.prepare

    def counting_run_session(env, agent, user_id, session, **kw):
        started.append((user_id, session))
        return real_run_session(env, agent, user_id, session, **kw)

    def prepare(self, ck):
        write = real_prepare(self, ck)
        if ck.user_id == "complex-0001" and ck.sessions_done == 2:  # the disk fails on this lane's 2nd checkpoint

            def broken() -> None:
                raise OSError(28, "No space left on device")
            return broken
        return write

    monkeypatch.setattr(lanes, "run_session", counting_run_session)
    monkeypatch.setattr(checkpoint.LaneWriter, "prepare", prepare)
    out = tmp_path / "r"
    rows = run(cfg(out, methods=["vanilla"], sessions=5, lanes=2))
    bad = [r for r in rows if r["status"] != "ok"]
    assert [(r["user_id"], r["session"]) for r in bad] == [("complex-0001", 1)]
    assert bad[0]["error"].startswith("CheckpointError: OSError")
    assert sum(r["status"] == "ok" for r in rows) == 2 * 5 + 1  # the other lanes finished
    # the lane ran at most one session past the failed write (the write happens while it runs on), never to the end
    assert max(s for u, s in started if u == "complex-0001") <= 2
    assert load_all(out)[("vanilla", "complex-0001")].sessions_done == 1  # its last good checkpoint
    for user in ("complex-0000", "complex-0002"):  # each lane's rows reach the file in session order
        assert [r["session"] for r in file_rows(out) if r["user_id"] == user] == list(range(5))


def test_a_wedged_session_is_given_up_without_stalling_other_lanes(tmp_path, monkeypatch):
    monkeypatch.setattr(lanes, "WEDGE_GRACE_S", 0.5)
    monkeypatch.setenv("MSC_TEST_WEDGE_AT", "complex-0000/1")
    rows = run(cfg(tmp_path / "r", methods=["tests.benchmarks.plugins:WedgedAgent"], sessions=3, lanes=2,
                   session_timeout=1.0))
    bad = [r for r in rows if r["status"] != "ok"]
    assert len(bad) == 1 and bad[0]["user_id"] == "complex-0000" and bad[0]["session"] == 1
    assert bad[0]["error"].startswith("WedgedSession")
    assert sum(r["status"] == "ok" for r in rows) == 3 * 3 - 2  # the wedged lane stopped; the others finished


def test_session_time_limit_stops_a_session_at_its_next_model_call(tmp_path, monkeypatch):
    pytest.importorskip("openai")
    from benchmarks.scripted_server import Faults, ScriptedServer

    srv = ScriptedServer(faults=Faults(latency=0.25)).start()
    try:
        spec = f"openai:scripted@{srv.base_url}"
        rows = run(RunConfig(methods=["vanilla"], n_users=2, sessions=2, agent_model=spec, out=str(tmp_path / "r"),
                             progress=False, session_timeout=0.6))
    finally:
        srv.stop()
    assert rows and all(r["status"] == "error" and r["error"].startswith("DeadlineExceeded") for r in rows)
    assert {r["session"] for r in rows} == {0}  # each lane stopped at its first failed session
    assert all(0.5 < r["seconds"] < 5 for r in rows)


def test_bad_lane_settings_name_the_value(tmp_path):
    with pytest.raises(ValueError, match="lanes must be a positive int"):
        RunConfig(lanes=0)
    with pytest.raises(ValueError, match="session_timeout must be a positive number"):
        RunConfig(session_timeout=-1)
    with pytest.raises(ValueError, match="exclude each other"):
        RunConfig(resume=True, continue_from="x")
    with pytest.raises(FileNotFoundError, match="no run there"):
        run(cfg(tmp_path / "x", continue_from=str(tmp_path / "nothing")))


def test_the_runner_never_hands_agents_the_ground_truth(tmp_path):
    rows = run(cfg(tmp_path / "r", methods=["tests.benchmarks.plugins:OracleSpyAgent"], sessions=2))
    assert rows and all(r["status"] == "ok" for r in rows), [r.get("error") for r in rows]


def test_agent_args_and_profiles_reach_only_the_agents_that_take_them(tmp_path):
    from benchmarks.run import World

    class Peek(dict):
        pass

    cfg_ = cfg(tmp_path / "r", methods=["vanilla", "rag_vector", "oracle", "tests.benchmarks.plugins:ProfileReader"],
               agent_args={"K": 8, "ppo_policy": "x", "preset": "paper"})
    w = World(cfg_)
    kw = {m: w._kwargs[m] for m in cfg_.methods}
    assert kw["rag_vector"]["K"] == 8 and kw["rag_vector"]["preset"] == "paper"  # named by RAGAgent / RAGVectorAgent
    assert "K" not in kw["vanilla"] and "ppo_policy" not in kw["rag_vector"]  # named by no class of theirs
    assert "profiles" in kw["oracle"]  # the oracle declares it reads the true profiles ...
    assert "profiles" not in kw["tests.benchmarks.plugins:ProfileReader"]  # ... a plug-in merely taking them does not


def test_large_arrays_go_to_side_files_written_only_when_they_change(tmp_path):
    import numpy as np

    from benchmarks.checkpoint import LaneCheckpoint, LaneWriter, lane_path

    big, small = np.arange(20000, dtype=np.float64), np.arange(10.0)
    w = LaneWriter(tmp_path, "m", "u")
    w.save(LaneCheckpoint("m", "u", [{"session": 0}], {"P": big, "z": small}, {}))
    folder = lane_path(tmp_path, "m", "u").parent
    first = sorted(p.name for p in folder.glob("*.npy"))
    assert len(first) == 1  # the big array only
    w.save(LaneCheckpoint("m", "u", [{"session": 0}, {"session": 1}], {"P": big.copy(), "z": small + 1}, {}))
    assert sorted(p.name for p in folder.glob("*.npy")) == first  # same content: not written again
    w.save(LaneCheckpoint("m", "u", [{"session": 0}] * 3, {"P": big + 1, "z": small}, {}))
    now = sorted(p.name for p in folder.glob("*.npy"))
    assert len(now) == 1 and now != first  # changed: a new file, the old one removed
    (folder / "u.orphan0000000.npy").write_bytes(b"left by a killed writer")
    ck = load_all(tmp_path)[("m", "u")]
    assert np.array_equal(ck.agent["P"], big + 1) and np.array_equal(ck.agent["z"], small)
    assert sorted(p.name for p in folder.glob("*.npy")) == now  # the orphan is gone
