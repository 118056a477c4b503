"""The in-process vLLM backend. vLLM cannot run here (no GPU, and it is not installed in the dev venv), so
most tests inject a fake ``vllm`` module that records what the backend asks of it."""

from __future__ import annotations

import importlib.util
import pickle
import sys
import types
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from personalization_env.llm import ChatRequest, ChatResponse, make_backend
from personalization_env.llm.vllm_engine import VLLMBackend
from personalization_env.types import Message

SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}


def req(text: str, **kw) -> ChatRequest:
    return ChatRequest((Message("system", "be brief"), Message("user", text)), **kw)


# ---- a fake vllm -------------------------------------------------------------------------------
class FakeSamplingParams:
    def __init__(self, **kw):
        self.kw = kw


class FakeStructuredOutputsParams:
    def __init__(self, json=None):
        self.json = json


class FakeGuidedDecodingParams:
    def __init__(self, json=None):
        self.json = json


@dataclass
class FakeCompletion:
    text: str
    token_ids: list[int]
    finish_reason: str = "stop"


@dataclass
class FakeRequestOutput:
    prompt_token_ids: list[int]
    outputs: list[FakeCompletion] = field(default_factory=list)


class FakeLLM:
    """Answers each conversation with its last message upper-cased; token counts are word counts."""

    created: ClassVar[list[dict]] = []

    def __init__(self, model, **kw):
        FakeLLM.created.append({"model": model, **kw})
        self.calls: list[tuple] = []

    def chat(self, messages, sampling_params=None, use_tqdm=True):
        self.calls.append((messages, sampling_params, use_tqdm))
        out = []
        for conv in messages:
            prompt = " ".join(m["content"] for m in conv).split()
            reply = conv[-1]["content"].upper()
            out.append(FakeRequestOutput(list(range(len(prompt))),
                                         [FakeCompletion(reply, list(range(len(reply.split()))), "length")]))
        return out


def install_fake_vllm(monkeypatch, *, new_api: bool = True, cuda: bool = True) -> None:
    torch = pytest.importorskip("torch")
    FakeLLM.created = []
    vllm = types.ModuleType("vllm")
    sp = types.ModuleType("vllm.sampling_params")
    vllm.LLM, vllm.SamplingParams, sp.SamplingParams = FakeLLM, FakeSamplingParams, FakeSamplingParams
    if new_api:
        sp.StructuredOutputsParams = FakeStructuredOutputsParams
    else:
        sp.GuidedDecodingParams = FakeGuidedDecodingParams
    vllm.sampling_params = sp
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sp)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)


# ---- (a) vllm missing --------------------------------------------------------------------------
def test_missing_vllm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    b = make_backend("vllm:some/model")
    assert isinstance(b, VLLMBackend) and not b.loaded  # constructing imports nothing
    with pytest.raises(ImportError, match=r"pip install 'multisessioncollab\[vllm\]'") as e:
        b.generate([req("hi")])
    assert "own virtual environment on a GPU node" in str(e.value)


# ---- (b) requests -> SamplingParams, RequestOutputs -> ChatResponses ----------------------------
def test_requests_become_one_chat_call_with_per_request_params(monkeypatch):
    install_fake_vllm(monkeypatch)
    b = VLLMBackend("tiny/model", tensor_parallel_size=2, gpu_memory_utilization=0.5, max_model_len=256,
                    dtype="bfloat16", enforce_eager=True)
    reqs = [req("say hi", temperature=0.0, max_tokens=5, seed=1),
            req("label this one please", temperature=0.7, max_tokens=64, seed=None, purpose="judge",
                response_format=SCHEMA),
            req("three", temperature=1.2, max_tokens=9, seed=42, purpose="user")]
    out = b.generate(reqs)

    assert FakeLLM.created == [{"model": "tiny/model", "tensor_parallel_size": 2, "gpu_memory_utilization": 0.5,
                                "max_model_len": 256, "dtype": "bfloat16", "enforce_eager": True}]
    (messages, params, use_tqdm), = b._llm.calls
    assert use_tqdm is False
    assert messages == [[m.to_dict() for m in r.messages] for r in reqs]
    assert [p.kw["temperature"] for p in params] == [0.0, 0.7, 1.2]
    assert [p.kw["max_tokens"] for p in params] == [5, 64, 9]
    assert [p.kw["seed"] for p in params] == [1, None, 42]
    assert "structured_outputs" not in params[0].kw and "structured_outputs" not in params[2].kw
    guided = params[1].kw["structured_outputs"]
    assert isinstance(guided, FakeStructuredOutputsParams) and guided.json == SCHEMA

    assert all(isinstance(o, ChatResponse) for o in out)
    assert [o.text for o in out] == ["SAY HI", "LABEL THIS ONE PLEASE", "THREE"]
    assert [o.prompt_tokens for o in out] == [4, 6, 3]
    assert [o.completion_tokens for o in out] == [2, 4, 1]
    assert all(o.meta["finish_reason"] == "length" and o.meta["latency_s"] >= 0 for o in out)
    assert b.usage["judge"]["completion_tokens"] == 4 and b.usage["reply"]["prompt_tokens"] == 4


def test_older_vllm_gets_guided_decoding(monkeypatch):
    install_fake_vllm(monkeypatch, new_api=False)
    b = VLLMBackend("tiny/model")
    b.generate([req("label it", temperature=0.0, response_format=SCHEMA)])
    (_, params, _), = b._llm.calls
    assert "structured_outputs" not in params[0].kw
    assert isinstance(params[0].kw["guided_decoding"], FakeGuidedDecodingParams)
    assert params[0].kw["guided_decoding"].json == SCHEMA
    assert "max_model_len" not in FakeLLM.created[0]  # None means the model's own


def test_engine_starts_once_and_pickles_without_it(monkeypatch):
    install_fake_vllm(monkeypatch)
    b = VLLMBackend("tiny/model")
    b.generate([req("one")])
    b.generate([req("two"), req("three")])
    assert len(FakeLLM.created) == 1 and len(b._llm.calls) == 2
    clone = pickle.loads(pickle.dumps(b))
    assert not clone.loaded and clone.model == "tiny/model"
    assert clone.generate([req("four")])[0].text == "FOUR"
    assert len(FakeLLM.created) == 2


@pytest.mark.parametrize("kw, shown", [
    ({"tensor_parallel_size": 0}, "got 0"),
    ({"gpu_memory_utilization": 1.5}, "got 1.5"),
    ({"max_model_len": -3}, "got -3"),
    ({"model": ""}, "got ''"),
])
def test_bad_arguments_raise_naming_the_value(kw, shown):
    with pytest.raises(ValueError, match=shown):
        VLLMBackend(**{"model": "tiny/model", **kw})


# ---- (c) no GPU --------------------------------------------------------------------------------
def test_no_cuda_names_the_alternatives(monkeypatch):
    install_fake_vllm(monkeypatch, cuda=False)
    b = VLLMBackend("tiny/model")
    with pytest.raises(RuntimeError, match="needs a CUDA GPU") as e:
        b.generate([req("hi")])
    assert "openai:<model>@<url>" in str(e.value) and "hf:<path>" in str(e.value)
    assert FakeLLM.created == []  # no engine was started


def _real_vllm_and_gpu() -> bool:
    if importlib.util.find_spec("vllm") is None or importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_real_vllm_and_gpu(), reason="only meaningful where vLLM cannot run")
def test_without_fakes_the_failure_is_one_clear_line():
    b = VLLMBackend("tiny/model")
    with pytest.raises((ImportError, RuntimeError)) as e:
        b.generate([req("hi")])
    msg = str(e.value)
    if isinstance(e.value, ImportError):
        assert "multisessioncollab[vllm]" in msg
    else:
        assert "needs a CUDA GPU" in msg and "hf:<path>" in msg


# ---- (d) real engine ---------------------------------------------------------------------------
@pytest.mark.skipif(not _real_vllm_and_gpu(), reason="needs vllm installed and a CUDA GPU")
def test_real_vllm_on_a_tiny_model(tmp_path):
    from tests.tiny_models import build_chat_model

    path = build_chat_model(tmp_path)
    b = make_backend(f"vllm:{path}", gpu_memory_utilization=0.2, max_model_len=256, enforce_eager=True)
    reqs = [req("use bullet points", temperature=0.0, max_tokens=8),
            req("the answer is 42", temperature=1.0, max_tokens=8, seed=3),
            req("label it", temperature=0.0, max_tokens=32, response_format=SCHEMA)]
    out = b.generate(reqs)
    assert len(out) == 3 and all(o.prompt_tokens > 0 and o.completion_tokens >= 1 for o in out)
    assert b.generate([reqs[1]])[0].text == out[1].text  # a seeded sample repeats outside its batch
    assert out[2].text.lstrip().startswith("{")  # guided decoding makes even junk weights write JSON
