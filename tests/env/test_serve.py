"""``msc serve``: MultiSessionCollab-v0 over the OpenEnv protocol (loopback servers on free ports)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import secrets
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from personalization_env.env import MultiSessionCollabEnv

HAVE_SERVE = all(importlib.util.find_spec(m) is not None for m in ("openenv", "fastapi", "uvicorn", "httpx"))
needs_serve = pytest.mark.skipif(
    not HAVE_SERVE, reason="openenv-core, fastapi, uvicorn or httpx missing: pip install 'multisessioncollab[serve]'")

ENV_KW = {"n_users": 3, "tasks_per_dataset": 20}
REPLY = "The answer is 42."
TIMEOUT = 10.0  # every request of these tests


@contextlib.contextmanager
def serving(**kw):
    """A server on a free loopback port, in a thread, for the ``with`` block."""
    from personalization_env.serve import build_app, make_server

    server = make_server(build_app(ENV_KW, **kw), "127.0.0.1", 0, log_level="debug", access_log=True,
                         log_config=None)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def reference(seed: int, user_id: str, replies: list[str], sessions: int = 1) -> list:
    """The same sessions played on an in-process env: [opening, (user message, reward, terminated,
    truncated), ..., metrics] per session."""
    env = MultiSessionCollabEnv(**ENV_KW)
    out = []
    for s in range(sessions):
        obs, _ = env.reset(seed=seed if s == 0 else None, options={"user_id": user_id})
        turns = [obs["message"]]
        for reply in replies:
            obs, reward, te, tr, info = env.step(reply)
            turns.append((obs["message"], reward, te, tr))
            if te or tr:
                turns.append(info["metrics"])
                break
        out.append(turns)
    return out


def play(env, seed: int | None, user_id: str | None, replies: list[str], pause: float = 0.0) -> list:
    """One session through an OpenEnv client, in the form of :func:`reference`."""
    kw = {k: v for k, v in (("seed", seed), ("user_id", user_id)) if v is not None}
    result = env.reset(**kw)
    assert result.reward is None and not result.done and result.observation.turn == 0
    turns = [result.observation.message]
    for reply in replies:
        time.sleep(pause)
        result = env.step(reply)
        o = result.observation
        turns.append((o.message, result.reward, o.terminated, o.truncated))
        if result.done:
            turns.append(o.metrics)
            break
    return turns


def http(method: str, url: str, **kw):
    """One request, never through a proxy (the servers are on this machine)."""
    import httpx

    kw.setdefault("timeout", TIMEOUT)
    return httpx.request(method, url, trust_env=False, **kw)


def keys_of(x) -> set[str]:
    if isinstance(x, dict):
        return set(x) | set().union(*(keys_of(v) for v in x.values()))
    if isinstance(x, list):
        return set().union(*(keys_of(v) for v in x))
    return set()


def assert_one_line_4xx(response, status: int, words: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and len(detail) < 300, detail
    assert words.lower() in detail.lower(), detail


# ---- a session, and sessions side by side ---------------------------------------------------------
@needs_serve
def test_a_full_session_through_the_openenv_client_equals_the_env_and_shows_no_oracle():
    from openenv.core import GenericEnvClient

    from personalization_env.serve import MSCClient

    expected = reference(0, "msc-0001", [REPLY] * 20, sessions=2)
    with serving() as url:
        with MSCClient(url).sync() as env:
            assert play(env, 0, "msc-0001", [REPLY] * 20) == expected[0]
            state = env.state()
            assert state.done and state.user_id == "msc-0001" and state.session == 0
            assert state.step_count == len(expected[0]) - 2
            second = play(env, None, None, [REPLY] * 20)  # reset again: the same user's next session
            assert second == expected[1] and env.state().session == 1
        # the wire: the observation's fields, the env's public info, never info["oracle"]
        r = http("POST", f"{url}/reset", json={"seed": 0, "user_id": "msc-0001"})
        eid = r.json()["observation"]["episode_id"]
        payloads = [r.json()]
        while not payloads[-1]["done"]:
            payloads.append(http("POST", f"{url}/step", json={"episode_id": eid, "action": {"message": REPLY}}).json())
        assert [p["observation"]["message"] for p in payloads] == [expected[0][0]] + [t[0] for t in expected[0][1:-1]]
        assert payloads[-1]["observation"]["metrics"] == expected[0][-1]
        assert set(payloads[-1]["observation"]) == {"message", "user_id", "session", "turn", "episode_id",
                                                    "terminated", "truncated", "metrics", "info"}
        assert set(payloads[-1]["observation"]["info"]) == {"task_id", "dataset", "feedback_label", "reward_terms"}
        assert not keys_of(payloads) & {"oracle", "verdicts", "enforced_ids", "draft_answer", "draft_correct"}
        # OpenEnv's generic client (what a trainer without this package uses) plays too
        with GenericEnvClient(base_url=url).sync() as env:
            result = env.reset(seed=0, user_id="msc-0001")
            assert result.observation["message"] == expected[0][0]
            assert env.step({"message": REPLY}).observation["message"] == expected[0][1][0]


@needs_serve
def test_concurrent_episodes_keep_separate_lifetimes():
    from personalization_env.serve import MSCClient

    replies = [REPLY, "Sure! Here it is, step by step:\n- 6x = 84\n- x = 14\nThe answer is 70.", REPLY] * 5
    with serving(max_sessions=8) as url:

        def over_socket(seed: int, user: str) -> list:
            with MSCClient(url).sync() as env:
                return [play(env, seed, user, replies, pause=0.005), play(env, None, None, replies, pause=0.005)]

        def over_http(seed: int, user: str) -> list:
            out = []
            eid = None
            for s in range(2):
                body = {"seed": seed, "user_id": user} if s == 0 else {"episode_id": eid}
                r = http("POST", f"{url}/reset", json=body).json()
                eid = r["observation"]["episode_id"]
                turns = [r["observation"]["message"]]
                for reply in replies:
                    r = http("POST", f"{url}/step", json={"episode_id": eid, "action": {"message": reply}}).json()
                    o = r["observation"]
                    turns.append((o["message"], r["reward"], o["terminated"], o["truncated"]))
                    if r["done"]:
                        turns.append(o["metrics"])
                        break
                out.append(turns)
            return out

        jobs = [(over_socket, 0, "msc-0000"), (over_socket, 0, "msc-0000"), (over_socket, 3, "msc-0002"),
                (over_http, 0, "msc-0000"), (over_http, 7, "msc-0001")]
        with ThreadPoolExecutor(len(jobs)) as pool:
            futures = [pool.submit(f, seed, user) for f, seed, user in jobs]
            results = [f.result(timeout=60) for f in futures]
    for (_, seed, user), got in zip(jobs, results):
        # each episode is its own lifetime: two sockets on the same user and seed both get its sessions 0 and 1
        assert got == reference(seed, user, replies, sessions=2), (seed, user)


# ---- security and bounds ---------------------------------------------------------------------------
@needs_serve
def test_the_token_is_required_and_never_echoed_or_logged(caplog, monkeypatch):
    from personalization_env.serve import MSCClient

    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("MSC_SERVE_TOKEN", raising=False)
    token = "tok-" + secrets.token_urlsafe(16)
    texts = []
    with serving(token=token) as url:
        assert http("GET", f"{url}/health").status_code == 200  # health needs no token
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": token},
                        {"Authorization": f"Basic {token}"}, {"X-Token": token}):
            for method, path in (("POST", "/reset"), ("POST", "/step"), ("GET", "/state"), ("GET", "/schema"),
                                 ("GET", "/docs"), ("GET", "/nowhere")):
                r = http(method, url + path, json={}, headers=headers)
                assert_one_line_4xx(r, 401, "bearer token")
                texts.append(r.text + str(r.headers))
        for bad in (None, "nope"):
            with pytest.raises(ConnectionError, match="401"):
                asyncio.run(MSCClient(url, token=bad).connect())
        good = {"Authorization": f"Bearer {token}"}
        r = http("POST", f"{url}/reset", json={"seed": 1}, headers=good)
        assert r.status_code == 200
        texts.append(r.text + str(r.headers))
        r = http("POST", f"{url}/step", headers=good, timeout=TIMEOUT,
                       json={"episode_id": r.json()["observation"]["episode_id"], "action": {"message": REPLY}})
        assert r.status_code == 200
        texts.append(r.text + str(r.headers))
        client = MSCClient(url, token=token)
        assert token not in repr(client)
        with client.sync() as env:
            assert env.reset(seed=1).observation.message
            texts.append(repr(env.step(REPLY)))
        monkeypatch.setenv("MSC_SERVE_TOKEN", token)  # the client's default
        with MSCClient(url).sync() as env:
            assert env.reset().observation.message
    assert "POST /reset" in caplog.text and "401" in caplog.text  # the access log was captured
    assert token not in caplog.text
    assert not any(token in t for t in texts)


@needs_serve
def test_bad_requests_get_a_one_line_4xx_while_a_good_session_goes_on():
    from websockets.sync.client import connect

    from personalization_env.serve import MSCClient, frame_limit

    token = secrets.token_urlsafe(16)
    auth = {"Authorization": f"Bearer {token}"}
    expected = reference(0, "msc-0001", [REPLY] * 20)[0]
    with serving(token=token, max_sessions=8, max_message_chars=2000) as url:
        ended = http("POST", f"{url}/reset", json={"seed": 2}, headers=auth).json()
        eid = ended["observation"]["episode_id"]
        while not ended["done"]:
            ended = http("POST", f"{url}/step", json={"episode_id": eid, "action": {"message": REPLY}},
                         headers=auth).json()

        def body(x) -> dict:
            return {"content": x if isinstance(x, (str, bytes)) else json.dumps(x)}

        bad = [  # (method, path, request, status, words in the reason)
            ("POST", "/step", body("{not json"), 400, "not valid JSON"),
            ("POST", "/step", body(b"\xff\xfe{"), 400, "JSON"),
            ("POST", "/step", body("[1, 2]"), 400, "JSON object"),
            ("POST", "/step", body({"episode_id": eid, "action": {"message": 5}}), 422, "valid string"),
            ("POST", "/step", body({"episode_id": eid, "action": "hi"}), 422, "action"),
            ("POST", "/step", body({"episode_id": eid}), 422, "action"),
            ("POST", "/step", body({"episode_id": eid, "action": {"message": REPLY, "x": 1}}), 422, "extra"),
            ("POST", "/step", body({"action": {"message": REPLY}}), 422, "episode_id is required"),
            ("POST", "/step", body({"episode_id": 7, "action": {"message": REPLY}}), 422, "episode_id"),
            ("POST", "/step", body({"episode_id": "nope", "action": {"message": REPLY}}), 404, "unknown episode_id"),
            ("POST", "/step", body({"episode_id": eid, "action": {"message": REPLY}}), 409, "has ended"),
            ("POST", "/step", body({"episode_id": eid, "action": {"message": "x" * 2001}}), 413, "--max-message"),
            ("POST", "/step", body({"episode_id": eid, "action": {"message": "  "}}), 422, "empty"),
            ("POST", "/step", body("x" * (frame_limit(2000) + 1)), 413, "--max-message-chars"),
            ("POST", "/reset", body({"seed": -1}), 422, "seed"),
            ("POST", "/reset", body({"seed": "zero"}), 422, "seed"),
            ("POST", "/reset", body({"user_id": "msc-0010"}), 422, "unknown user_id"),
            ("POST", "/reset", body({"user_index": 3}), 422, "user_index"),
            ("POST", "/reset", body({"user_id": "msc-0001", "user_index": 1}), 422, "either"),
            ("POST", "/reset", body({"colour": "red"}), 422, "unknown reset argument"),
            ("POST", "/reset", body({"episode_id": "no-such-episode"}), 404, "unknown episode_id"),
            ("GET", "/state", {}, 422, "episode_id is required"),
            ("GET", "/state", {"params": {"episode_id": "no-such-episode"}}, 404, "unknown episode_id"),
            ("POST", "/close", body({"episode_id": "no-such-episode"}), 404, "unknown episode_id"),
        ]
        headers = {**auth, "content-type": "application/json"}
        jobs = [(m, p, {**req, "headers": headers}, s, w) for m, p, req, s, w in bad]
        jobs += [("POST", "/reset", {"json": {}}, 401, "bearer token"),
                 ("GET", "/nowhere", {"headers": auth}, 404, "not found")]

        def send_bad(job) -> None:
            method, path, req, status, words = job
            assert_one_line_4xx(http(method, url + path, timeout=TIMEOUT, **req), status, words)

        def send_bad_socket() -> list[str]:
            codes = []
            with connect(url.replace("http", "ws") + "/ws", additional_headers=auth, open_timeout=TIMEOUT,
                         proxy=None) as ws:
                for msg in ['{"type": "step", "data": {"message": "hi"}}', "{oops", '{"type": "dance"}',
                            '{"type": "step", "data": {"message": 5}}', '{"type": "reset", "data": {"seed": "x"}}',
                            '{"type": "reset", "data": {"user_id": "msc-0099"}}', '{"type": "reset", "data": {}}',
                            json.dumps({"type": "step", "data": {"message": "y" * 2001}})]:
                    ws.send(msg)
                    answer = json.loads(ws.recv(timeout=TIMEOUT))
                    codes.append(answer["type"] == "error" and answer["data"]["message"].splitlines()[0])
                ws.send(json.dumps({"type": "step", "data": {"message": REPLY}}))  # the socket still plays
                codes.append(json.loads(ws.recv(timeout=TIMEOUT))["type"])
            return codes

        with MSCClient(url, token=token).sync() as env, ThreadPoolExecutor(6) as pool:
            good = pool.submit(play, env, 0, "msc-0001", [REPLY] * 20, 0.02)
            sock = pool.submit(send_bad_socket)
            for f in [pool.submit(send_bad, job) for job in jobs * 2]:
                f.result(timeout=30)
            assert good.result(timeout=30) == expected
            codes = sock.result(timeout=30)
        assert "step before reset" in codes[0] and "Invalid JSON" in codes[1] and "Unknown message type" in codes[2]
        assert codes[3] == "Invalid message" and "seed must be" in codes[4] and "unknown user_id" in codes[5]
        assert codes[6] is False and "--max-message-chars" in codes[7] and codes[8] == "observation"
        # the ended episode is unharmed too: its user's next session
        r = http("POST", f"{url}/reset", json={"episode_id": eid}, headers=auth).json()
        assert r["observation"]["session"] == 1


@needs_serve
def test_idle_sessions_are_dropped_and_active_ones_kept():
    from personalization_env.serve import MSCClient

    with serving(idle_timeout=0.5, max_sessions=2) as url:
        eid = http("POST", f"{url}/reset", json={}).json()["observation"]["episode_id"]
        with MSCClient(url).sync() as idle:
            idle.reset(seed=0)
            time.sleep(1.0)
            with pytest.raises(Exception, match="idle"):  # the server closed the socket (1001)
                idle.step(REPLY)
        r = http("POST", f"{url}/step", json={"episode_id": eid, "action": {"message": REPLY}})
        assert_one_line_4xx(r, 404, "unknown episode_id")
        # both slots are free again; a session that keeps talking outlives the timeout
        with MSCClient(url).sync() as a, MSCClient(url).sync() as b:
            a.reset(seed=0)
            b.reset(seed=1)
            for _ in range(6):
                time.sleep(0.2)
                a.step(REPLY) if not a.state().done else a.reset()
                b.state()  # asking counts as activity
            assert a.state().user_id and b.state().user_id


@needs_serve
def test_max_sessions_is_enforced_over_sockets_and_http():
    from personalization_env.serve import MSCClient

    with serving(max_sessions=2) as url:
        with MSCClient(url).sync() as a:
            a.reset(seed=0)
            eid = http("POST", f"{url}/reset", json={}).json()["observation"]["episode_id"]
            with pytest.raises(ConnectionError, match="429"):
                asyncio.run(MSCClient(url).connect())
            assert_one_line_4xx(http("POST", f"{url}/reset", json={}), 429, "--max-sessions")
            assert http("POST", f"{url}/close", json={"episode_id": eid}).json()["closed"]
            with MSCClient(url).sync() as c:  # the freed slot
                assert c.reset(seed=0).observation.message
                a.step(REPLY)  # the first session never noticed
        deadline = time.monotonic() + 5
        while (r := http("POST", f"{url}/reset", json={})).status_code == 429:
            assert time.monotonic() < deadline, "closed sockets did not free their slots"
            time.sleep(0.05)
        assert r.status_code == 200


@needs_serve
def test_oversize_replies_are_refused_and_the_session_goes_on():
    from personalization_env.serve import MSCClient, frame_limit

    with serving(max_message_chars=100) as url:
        eid = http("POST", f"{url}/reset", json={"seed": 0}).json()["observation"]["episode_id"]
        r = http("POST", f"{url}/step", json={"episode_id": eid, "action": {"message": "é" * 101}})
        assert_one_line_4xx(r, 413, "101 characters")
        r = http("POST", f"{url}/step", content=b"{" + b" " * frame_limit(100))
        assert_one_line_4xx(r, 413, "request body over")
        r = http("POST", f"{url}/step", json={"episode_id": eid, "action": {"message": "é" * 100}})
        assert r.status_code == 200 and r.json()["observation"]["turn"] == 1
        with MSCClient(url).sync() as env:
            env.reset(seed=0)
            with pytest.raises(RuntimeError, match="over the server's --max-message-chars=100"):
                env.step("x" * 101)
            assert env.step("x" * 100).observation.turn == 1
        with MSCClient(url).sync() as env:
            env.reset(seed=0)
            with pytest.raises(Exception, match="1009|message over"):  # past the frame bound: the socket closes
                env.step("x" * (frame_limit(100) + 1))


# ---- the module and its command line -----------------------------------------------------------------
def test_importing_the_package_or_the_module_imports_no_server_library():
    code = ("import sys, personalization_env, personalization_env.serve as s; print(sorted(m for m in "
            "('openenv', 'fastapi', 'uvicorn', 'starlette', 'websockets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_missing_server_library_names_the_extra(monkeypatch):
    import personalization_env.serve as serve

    monkeypatch.setitem(sys.modules, "openenv.core.env_server", None)
    with pytest.raises(ImportError, match=r"pip install 'multisessioncollab\[serve\]'"):
        serve._require_serve_deps()


@needs_serve
def test_serve_main_refuses_bad_options_in_one_line(capsys, monkeypatch):
    from personalization_env.serve import serve_main

    monkeypatch.delenv("MSC_SERVE_TOKEN", raising=False)
    for argv, words in ((["--max-sessions", "0"], "max_sessions"), (["--idle-timeout", "0"], "idle_timeout"),
                        (["--max-message-chars", "-5"], "max_message_chars"), (["--port", "70000"], "--port"),
                        (["--profiles", "nope"], "unknown profile set"), (["--users", "-1"], "--users"),
                        (["--host", "0.0.0.0"], "MSC_SERVE_TOKEN")):
        assert serve_main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("msc serve: error:") and "\n" not in err and words in err, err
    monkeypatch.setenv("MSC_SERVE_TOKEN", " ")
    assert serve_main([]) == 2 and "empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the token is never a command-line option
        serve_main(["--token", "abc"])
