"""The OpenAI-compatible backend, structured output and the response cache, against the local
scripted server (loopback) with injected faults."""

from __future__ import annotations

import pickle

import pytest

pytest.importorskip("openai")

from benchmarks.scripted_server import Faults, ScriptedServer  # noqa: E402
from personalization_env.llm import ChatRequest, make_backend  # noqa: E402
from personalization_env.llm.base import BackendUnavailableError  # noqa: E402
from personalization_env.llm.cache import CachedBackend, CacheMissError  # noqa: E402
from personalization_env.llm.openai_backend import OpenAIBackend, split_model_url  # noqa: E402
from personalization_env.llm.structured import StructuredOutputError, extract_json, generate_json, validate  # noqa: E402
from personalization_env.types import Message  # noqa: E402

SCHEMA = {"type": "object", "properties": {"label": {"type": "string", "enum": ["a", "b"]}}, "required": ["label"]}


@pytest.fixture
def server():
    srv = ScriptedServer().start()
    yield srv
    srv.stop()


def fast(url: str, **kw) -> OpenAIBackend:
    kw = {"timeout": 0.5, "backoff": 0.005, "max_backoff": 0.02, **kw}
    return make_backend(f"openai:scripted@{url}", **kw)  # type: ignore[return-value]


def reqs(n: int, purpose: str = "reply") -> list[ChatRequest]:
    return [ChatRequest((Message("user", f"What is {i} + {i}?"),), purpose=purpose, seed=i) for i in range(n)]


def test_spec_and_batch_order(server):
    assert split_model_url("org/m@x@http://h:1/v1", None) == ("org/m@x", "http://h:1/v1")
    b = fast(server.base_url)
    assert (b.model, b.base_url) == ("scripted", server.base_url)
    out = b.generate(reqs(6, "judge"))
    assert len(out) == 6 and all(o.completion_tokens > 0 for o in out)
    assert server.counts["chat_ok_judge"] == 6  # the role reached the server in the purpose header
    assert b.usage["judge"]["calls"] == 6 and b.usage["judge"]["latency_s"] > 0
    # same request -> same text (the scripted model is deterministic given the seed)
    assert b.generate(reqs(1, "judge"))[0].text == out[0].text


def test_injected_http_faults_are_retried_and_counted():
    srv = ScriptedServer(faults=Faults(rate=0.5, kinds=("429", "500", "malformed"), seed=1)).start()
    try:
        b = fast(srv.base_url, max_retries=10, timeout=5.0)  # no client timeouts here: they are tested below
        out = b.generate(reqs(30))
        assert len(out) == 30 and all(o.text for o in out)
        injected = dict(srv.faults.injected)
        assert sum(injected.values()) >= 10
        assert b.stats["faults"] == injected  # every fault the server injected was seen and counted
        assert b.stats["retries"] == sum(injected.values())
        import json
        import urllib.request

        with urllib.request.urlopen(srv.base_url.removesuffix("/v1") + "/stats") as r:
            assert json.load(r)["faults_injected"] == injected
    finally:
        srv.stop()


def test_timeouts_retry_and_exhaustion_stops_with_one_line():
    srv = ScriptedServer(faults=Faults(rate=1.0, kinds=("timeout",), hang=1.0)).start()
    try:
        b = fast(srv.base_url, timeout=0.2, max_retries=2)
        with pytest.raises(BackendUnavailableError) as e:
            b.generate(reqs(1))
        msg = str(e.value)
        assert "\n" not in msg and srv.base_url in msg and "failed 3 times" in msg
        assert b.stats["faults"] == {"timeout": 3}
    finally:
        srv.stop()


def test_server_down_health_and_call_fail_clearly():
    srv = ScriptedServer().start()
    url = srv.base_url
    srv.stop()
    b = fast(url, max_retries=1)
    with pytest.raises(BackendUnavailableError, match="is not up"):
        b.health()
    with pytest.raises(BackendUnavailableError, match="--resume"):
        b.generate(reqs(1))
    assert b.stats["faults"] == {"connection": 2}


def test_api_key_comes_from_env_is_sent_and_never_stored(monkeypatch):
    key = "sk-canary-0a1b2c"
    srv = ScriptedServer(api_key=key).start()
    try:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        monkeypatch.setenv("MSC_API_KEY", "wrong")
        with pytest.raises(BackendUnavailableError):
            fast(srv.base_url, max_retries=0).generate(reqs(1))  # 401: a bad key is not retried
        monkeypatch.setenv("MSC_API_KEY", key)
        b = fast(srv.base_url)
        assert b.generate(reqs(1))[0].text
        blob = pickle.dumps(b)
        assert key.encode() not in blob and key not in repr(b) and key not in str(vars(b))
    finally:
        srv.stop()


def test_structured_output_guided_then_repaired():
    srv = ScriptedServer(faults=Faults(rate=0.5, kinds=("bad_content",), seed=2)).start()
    try:
        b = fast(srv.base_url)
        reqs_ = [ChatRequest((Message("system", "judge"), Message("user", f"thanks, great {i}")), purpose="judge",
                             seed=i) for i in range(12)]
        schema = {"type": "object", "properties": {"label": {"type": "string"}, "confidence": {"type": "number"}},
                  "required": ["label", "confidence"]}
        out = generate_json(b, reqs_, schema, max_repairs=6)
        assert all(isinstance(o["label"], str) for o in out)
        assert b.stats["repairs"] >= 1  # broken replies were asked again, and counted
    finally:
        srv.stop()


def test_validator_and_extraction():
    assert extract_json('Sure:\n```json\n{"label": "a"}\n```') == {"label": "a"}
    assert extract_json('noise {"label": "b", "x": "}"} tail') == {"label": "b", "x": "}"}
    validate({"label": "a"}, SCHEMA)
    with pytest.raises(StructuredOutputError, match="not one of"):
        validate({"label": "c"}, SCHEMA)
    with pytest.raises(StructuredOutputError, match="missing required key 'label'"):
        validate({}, SCHEMA)
    with pytest.raises(StructuredOutputError, match="no JSON object"):
        extract_json("no json here")


def test_cache_hits_make_no_calls_and_replay_misses_fail(server, tmp_path):
    b = CachedBackend(fast(server.base_url), tmp_path / "c")
    first = b.generate(reqs(4))
    calls = server.counts["chat"]
    again = b.generate(reqs(4))
    assert [r.text for r in again] == [r.text for r in first] and server.counts["chat"] == calls
    assert (b.hits, b.misses) == (4, 4) and len(b) == 4
    replay = CachedBackend(fast(server.base_url), tmp_path / "c", replay=True)
    assert [r.text for r in replay.generate(reqs(4))] == [r.text for r in first]
    with pytest.raises(CacheMissError, match="replay"):
        replay.generate([ChatRequest((Message("user", "new question"),))])
    assert server.counts["chat"] == calls
    assert pickle.loads(pickle.dumps(b)).generate(reqs(1))[0].text == first[0].text


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="max_concurrency"):
        OpenAIBackend("m@http://x/v1", max_concurrency=0)
    with pytest.raises(ValueError, match="guided"):
        OpenAIBackend("m@http://x/v1", guided="sometimes")
    with pytest.raises(ValueError, match="needs a model"):
        OpenAIBackend("")


def test_server_embedder_and_reranker_through_the_memory_stack(server):
    from agents import make_agent
    from agents.memory import make_embedder, make_reranker

    emb = make_embedder(f"server:e5@{server.base_url}")
    x = emb.encode(["use bullet points", "keep answers short"])
    assert x.shape == (2, emb.dim) and abs(float((x[0] ** 2).sum()) - 1.0) < 1e-5
    rr = make_reranker(f"server:rr@{server.base_url}")
    s = rr.score("bullet points please", ["use bullet points", "keep answers short"])
    assert s[0] > s[1]
    assert server.counts["embeddings"] >= 1 and server.counts["score"] == 1
    agent = make_agent("rag", embedder=f"server:e5@{server.base_url}", reranker=f"server:rr@{server.base_url}")
    obs = {"user_id": "u", "session": 0, "turn": 0, "message": "Please always use bullet points. What is 2+2?"}
    assert agent.act(obs)
    with pytest.raises(ValueError, match="server:<model>@<url>"):
        make_embedder("srv:x")


def test_server_embedder_down_is_a_clear_error(monkeypatch):
    from agents.memory import make_embedder

    monkeypatch.setenv("MSC_LLM_MAX_RETRIES", "0")
    srv = ScriptedServer().start()
    url = srv.base_url
    srv.stop()
    with pytest.raises(BackendUnavailableError, match="embeddings at"):
        make_embedder(f"server:e5@{url}").encode(["x"])
