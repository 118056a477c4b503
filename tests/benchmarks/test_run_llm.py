"""msc run through real-backend code paths: LLM user simulator and LLM agent over the OpenAI client,
against the local scripted server with injected faults; server down, resume, replay, API key."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

pytest.importorskip("openai")

from benchmarks.cli import main  # noqa: E402
from benchmarks.run import RunConfig, run  # noqa: E402
from benchmarks.scripted_server import Faults, ScriptedServer  # noqa: E402
from personalization_env.llm.base import BackendUnavailableError  # noqa: E402
from personalization_env.tasks import load_tasks  # noqa: E402

STABLE = ("method", "user_id", "session", "task_id", "status", "task_success", "user_effort", "turns", "timeout",
          "compliance", "labels", "return")


@pytest.fixture(autouse=True)
def fast_client(monkeypatch):
    # a few embedded replies take ~0.6 s (math-verify on distractors): the client timeout must stay above
    # that, and the injected hang above the timeout, or slow replies would count as injected timeouts
    monkeypatch.setenv("MSC_LLM_TIMEOUT", "2.0")
    monkeypatch.setenv("MSC_LLM_BACKOFF", "0.005")
    monkeypatch.setenv("MSC_LLM_MAX_RETRIES", "8")
    for d in ("gen_math", "gen_logic", "gen_mc"):
        load_tasks(d)  # the scripted user looks the task up by its text


def cfg(url: str, out: Path, user: str = "llm", **kw) -> RunConfig:
    spec = f"openai:scripted@{url}"
    base = dict(methods=["vanilla", "reflection"], n_users=3, sessions=2, user=f"{user}:{spec}", agent_model=spec,
                out=str(out), progress=False)
    return RunConfig(**{**base, **kw})


def stable(rows, keys=STABLE):
    return sorted(tuple(json.dumps(r.get(k)) for k in keys) for r in rows)


def test_full_run_with_20_percent_faults_completes_and_counts_every_fault(tmp_path):
    srv = ScriptedServer(faults=Faults(rate=0.2, kinds=("429", "500", "timeout", "malformed", "bad_content"),
                                       hang=3.0, seed=5)).start()
    try:
        rows = run(cfg(srv.base_url, tmp_path / "r", feedback=f"llm:openai:scripted@{srv.base_url}"))
    finally:
        srv.stop()
    assert len(rows) == 2 * 3 * 2 and all(r["status"] == "ok" for r in rows)
    assert {(r["method"], r["user_id"], r["session"]) for r in rows} == \
        {(m, r["user_id"], s) for m in ("vanilla", "reflection") for r in rows for s in (0, 1)}
    client = {}
    for r in rows:
        for d in r["llm"].values():
            for k, v in d["faults"].items():
                client[k] = client.get(k, 0) + v
    injected = srv.faults.injected
    assert sum(injected.values()) >= 20
    for kind in ("429", "500", "malformed", "timeout"):  # every HTTP-level fault was seen, retried and recorded
        assert client.get(kind, 0) == injected.get(kind, 0), (kind, client, injected)
    # the faults changed nothing: the same run in process, without HTTP, gives the same sessions
    local = run(RunConfig(methods=["vanilla", "reflection"], n_users=3, sessions=2, user="llm:scripted",
                          agent_model="scripted", feedback="llm:scripted", out=str(tmp_path / "local"), progress=False))
    # (the env's return is left out: a judge reply repaired after a broken one is a new sample, seed + 1)
    keys = tuple(k for k in STABLE if k != "return")
    assert stable(rows, keys) == stable(local, keys)
    meta = json.loads((tmp_path / "r" / "metadata.json").read_text())
    assert meta["llm"]["user"]["calls"] > 0 and meta["llm"]["sim_checker"]["turns"] > 0
    assert (tmp_path / "r" / "cache" / "responses.sqlite").exists()


def test_server_down_stops_with_one_line_then_resumes_and_replays(tmp_path, capsys):
    srv = ScriptedServer().start()
    url, port = srv.base_url, srv.port
    srv.stop()
    out = tmp_path / "r"
    args = ["run", "--methods", "vanilla,reflection", "--profiles", "msc", "--users", "3", "--sessions", "2", "--user",
            f"llm:openai:scripted@{url}", "--agent-model", f"openai:scripted@{url}", "--out", str(out),
            "--no-progress", "--summary-only"]
    assert main(args) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not up" in err and "--resume" in err

    # uninterrupted reference run on a healthy server
    ref_srv = ScriptedServer().start()
    try:
        ref = run(cfg(ref_srv.base_url, tmp_path / "ref"))
    finally:
        ref_srv.stop()

    # the server dies mid-run: finished sessions stay, the interrupted ones are not recorded
    srv = ScriptedServer(port=port, die_after=60).start()
    with pytest.raises(BackendUnavailableError):
        run(cfg(url, out))
    partial = [json.loads(x) for x in (out / "sessions.jsonl").read_text().splitlines()]
    assert 1 <= len(partial) < 12 and all(r["status"] == "ok" for r in partial)

    srv = ScriptedServer(port=port).start()
    try:
        assert main([*args, "--resume"]) == 0
    finally:
        srv.stop()
    rows = [json.loads(x) for x in (out / "sessions.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and stable(rows) == stable(ref)  # identical to the uninterrupted run

    # replay from the cache with the server down: no model calls, identical rows
    replayed = run(cfg(url, tmp_path / "replay", cache=str(out / "cache"), replay=True))
    assert stable(replayed) == stable(ref)


def test_hybrid_simulator_run(tmp_path):
    srv = ScriptedServer().start()
    try:
        rows = run(cfg(srv.base_url, tmp_path / "h", user="hybrid", methods=["vanilla"]))
    finally:
        srv.stop()
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    assert srv.counts.get("chat_ok_user", 0) >= sum(r["turns"] for r in rows)  # every user message was written by the model


def test_api_key_never_reaches_outputs_or_logs(tmp_path, monkeypatch, capsys, caplog):
    key = "sk-canary-5e6f7a8b"
    monkeypatch.setenv("MSC_API_KEY", key)
    srv = ScriptedServer(api_key=key).start()
    caplog.set_level(logging.DEBUG)
    try:
        rc = main(["run", "--methods", "vanilla", "--users", "2", "--sessions", "1", "--user",
                   f"llm:openai:scripted@{srv.base_url}", "--agent-model", f"openai:scripted@{srv.base_url}",
                   "--out", str(tmp_path / "k"), "--no-progress"])
    finally:
        srv.stop()
    assert rc == 0
    assert srv.auth_hashes  # the key was sent ...
    captured = capsys.readouterr()
    assert key not in captured.out and key not in captured.err and key not in caplog.text
    for f in (tmp_path / "k").rglob("*"):  # ... and is in no output file, the cache included
        if f.is_file():
            assert key.encode() not in f.read_bytes(), f


def test_concurrent_lanes_account_each_session_s_own_model_calls(tmp_path):
    srv = ScriptedServer().start()
    try:
        one = run(cfg(srv.base_url, tmp_path / "one", lanes=1, cache=str(tmp_path / "c1")))
        chats = srv.counts["chat"]
        many = run(cfg(srv.base_url, tmp_path / "many", lanes=6, cache=str(tmp_path / "c2")))
        # a request two lanes send at once (the llm user's opening is the same for both methods) is asked once
        assert srv.counts["chat"] == 2 * chats
    finally:
        srv.stop()

    def calls(rows):
        return {(r["method"], r["user_id"], r["session"]): {role: (d["calls"], d["tokens"]) for role, d in r["llm"].items()}
                for r in rows}

    assert calls(many) == calls(one)  # each session's calls, counted in its own lane whatever runs beside it
    assert sum(d["calls"] - d["cache_hits"] for r in many for d in r["llm"].values()) == chats
    assert stable(many) == stable(one)
