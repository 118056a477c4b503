"""The local transformers backend, on a tiny random Llama built offline (tests/tiny_models.py)."""

from __future__ import annotations

import pickle
import shutil
import sys

import pytest

torch = pytest.importorskip("torch", reason="the HF backend tests need torch (pip install 'multisessioncollab[hf]')")
transformers = pytest.importorskip("transformers",
                                   reason="the HF backend tests need transformers (pip install 'multisessioncollab[hf]')")

from personalization_env.llm import ChatRequest, ChatResponse, make_backend
from personalization_env.llm.hf import HFBackend
from personalization_env.types import Message
from tests.tiny_models import build_chat_model

CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    return build_chat_model(tmp_path_factory.mktemp("hf_chat"))


@pytest.fixture(scope="module")
def backend(chat_model) -> HFBackend:
    b = make_backend(f"hf:{chat_model}", device="cpu")
    assert isinstance(b, HFBackend)
    return b


def req(text: str, system: str | None = None, **kw) -> ChatRequest:
    msgs = ((Message("system", system),) if system else ()) + (Message("user", text),)
    kw.setdefault("max_tokens", 8)
    return ChatRequest(msgs, **kw)


def prompt_length(model_dir, r: ChatRequest) -> int:
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    enc = tok.apply_chat_template([m.to_dict() for m in r.messages], add_generation_prompt=True, return_dict=True)
    return len(enc["input_ids"])


def direct_greedy(model_dir, r: ChatRequest) -> str:
    """The reply transformers gives for one request with no backend in between."""
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    lm = transformers.AutoModelForCausalLM.from_pretrained(model_dir)
    enc = tok.apply_chat_template([m.to_dict() for m in r.messages], add_generation_prompt=True, return_dict=True,
                                  return_tensors="pt")
    out = lm.generate(**enc, max_new_tokens=r.max_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


BATCH = [
    req("what is the area of the garden", temperature=0.0, max_tokens=5),
    req("show every step of the math", system="use bullet points", temperature=0.8, seed=1, max_tokens=7,
        purpose="user"),
    req("keep answers short please, and number the steps", temperature=1.3, max_tokens=9, purpose="judge"),
]


def test_weights_load_on_first_use(chat_model):
    b = make_backend(f"hf:{chat_model}", device="cpu")
    assert not b.loaded
    b.generate([BATCH[0]])
    assert b.loaded


def test_batch_gives_one_response_per_request_in_order(backend, chat_model):
    out = backend.generate(BATCH)
    assert len(out) == len(BATCH)
    for r, o in zip(BATCH, out):
        assert isinstance(o, ChatResponse) and isinstance(o.text, str)
        # order: each response's prompt count is its own request's templated length
        assert o.prompt_tokens == prompt_length(chat_model, r)
        assert 1 <= o.completion_tokens <= r.max_tokens
        assert o.meta["device"] == "cpu" and o.meta["latency_s"] > 0
    assert len({o.prompt_tokens for o in out}) == 3  # the check above can tell the requests apart


def test_padding_is_not_counted_as_prompt(backend, chat_model):
    reqs = [req("hi", temperature=0.0, max_tokens=3),
            req("show every step of the math and number the steps", system="be polite", temperature=0.0, max_tokens=3)]
    out = backend.generate(reqs)
    assert [o.meta["batch_size"] for o in out] == [2, 2]
    assert [o.prompt_tokens for o in out] == [prompt_length(chat_model, r) for r in reqs]
    assert out[0].prompt_tokens < out[1].prompt_tokens


def test_a_reply_ends_at_its_end_token(chat_model, monkeypatch):
    """In a batch, a row that ends early is padded to the longest; the padding is not the reply."""
    b = HFBackend(str(chat_model), device="cpu")
    b.generate([req("hi", temperature=0.0, max_tokens=1)])  # load
    tok = b._tokenizer
    words = tok("use bullet points", add_special_tokens=False)["input_ids"][:3]
    eos, pad = tok.eos_token_id, tok.pad_token_id
    tails = torch.tensor([[*words[:2], eos, pad, pad], [*words, words[0], words[1]]])

    def fake_generate(input_ids, **kw):
        assert kw["max_new_tokens"] == 5
        return torch.cat([input_ids, tails], dim=1)

    monkeypatch.setattr(b._model, "generate", fake_generate)
    out = b.generate([req("hi", temperature=0.0, max_tokens=5), req("the answer is 42", temperature=0.0, max_tokens=5)])
    assert [o.completion_tokens for o in out] == [3, 5]
    assert out[0].text == tok.decode(words[:2])
    assert out[1].text == tok.decode([*words, words[0], words[1]])


def test_greedy_matches_plain_transformers_and_repeats(backend, chat_model):
    r = req("give an example or analogy", temperature=0.0, max_tokens=6)
    first = backend.generate([r])[0].text
    assert first == direct_greedy(chat_model, r)
    assert backend.generate([r])[0].text == first
    # the same request twice in one batch, padded alongside a longer prompt
    out = backend.generate([r, req("state your confidence and end with a tl;dr line " * 3, temperature=0.0, max_tokens=6), r])
    assert out[1].meta["batch_size"] == 3
    assert out[0].text == out[2].text


def test_seeded_sampling_is_reproducible_whatever_the_batch(backend):
    r = req("use bullet points", temperature=1.0, seed=7, max_tokens=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(100)  # the global RNG state must not matter
        alone = backend.generate([r])[0].text
        torch.manual_seed(200)
        mixed = backend.generate([req("no preamble", temperature=1.0, seed=3, max_tokens=16),
                                  req("the answer is 42", temperature=1.0, max_tokens=16), r,
                                  req("be polite", temperature=0.0, max_tokens=16)])
    assert mixed[2].text == alone
    other_seed = backend.generate([req("use bullet points", temperature=1.0, seed=8, max_tokens=16)])[0].text
    greedy = backend.generate([req("use bullet points", temperature=0.0, max_tokens=16)])[0].text
    assert other_seed != alone and greedy != alone  # it really samples, and the seed matters


def test_seeded_sampling_leaves_the_global_rng_alone(backend):
    state = torch.get_rng_state()
    backend.generate([req("number the steps", temperature=1.0, seed=11)])
    assert torch.equal(torch.get_rng_state(), state)


def test_usage_is_accounted_per_purpose(chat_model):
    b = HFBackend(str(chat_model), device="cpu")
    out = b.generate(BATCH + [req("the answer is 42", temperature=0.0, max_tokens=4)])
    assert b.usage["reply"]["calls"] == 2 and b.usage["user"]["calls"] == 1 and b.usage["judge"]["calls"] == 1
    assert b.usage["reply"]["prompt_tokens"] == out[0].prompt_tokens + out[3].prompt_tokens
    assert b.usage["judge"]["completion_tokens"] == out[2].completion_tokens


def test_batches_are_capped_at_max_batch_size(chat_model):
    b = HFBackend(chat_model, device="cpu", max_batch_size=2)
    out = b.generate([req(f"the answer is {k}", temperature=0.0, max_tokens=3) for k in range(5)])
    assert len(out) == 5
    assert sorted(o.meta["batch_size"] for o in out) == [1, 2, 2, 2, 2]


def test_response_format_adds_nothing_to_the_prompt(backend):
    schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
    plain = req("label this message", temperature=0.0, max_tokens=6)
    guided = req("label this message", temperature=0.0, max_tokens=6, response_format=schema)
    a, b = backend.generate([plain])[0], backend.generate([guided])[0]
    assert (a.text, a.prompt_tokens) == (b.text, b.prompt_tokens)


def test_pickle_drops_the_model_and_reloads(backend):
    r = req("keep answers short", temperature=0.0, max_tokens=5)
    before = backend.generate([r])[0].text
    assert backend.loaded
    data = pickle.dumps(backend)
    assert len(data) < 20_000  # the weights alone are over 1 MB
    clone = pickle.loads(data)
    assert not clone.loaded and clone.model == backend.model
    assert clone.generate([r])[0].text == before


@pytest.mark.parametrize("kw, shown", [
    ({"device": "gpu0"}, "'gpu0'"),
    ({"device": "cuda:x"}, "'cuda:x'"),
    ({"max_batch_size": 0}, "0"),
    ({"dtype": "fp8"}, "'fp8'"),
])
def test_bad_arguments_raise_naming_the_value(chat_model, kw, shown):
    with pytest.raises(ValueError, match=f"got {shown}|{shown};"):
        HFBackend(str(chat_model), **kw)


def test_empty_model_is_rejected():
    with pytest.raises(ValueError, match="non-empty"):
        HFBackend("")


def test_model_without_chat_template_is_refused(chat_model, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(chat_model, plain)
    (plain / "chat_template.jinja").unlink()
    with pytest.raises(ValueError, match="no chat template"):
        HFBackend(str(plain), device="cpu").generate([req("hi")])


def test_missing_transformers_names_the_extra(chat_model, monkeypatch):
    b = HFBackend(str(chat_model))  # constructing needs nothing
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install 'multisessioncollab\[hf\]'"):
        b.generate([req("hi")])


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_runs_on_cuda(chat_model):
    b = HFBackend(str(chat_model), device="cuda")
    out = b.generate(BATCH)
    assert len(out) == 3 and all(o.meta["device"] == "cuda" and o.completion_tokens >= 1 for o in out)
    r = req("use bullet points", temperature=1.0, seed=7, max_tokens=16)
    assert b.generate([r])[0].text == b.generate([BATCH[0], r])[1].text
    greedy = req("give an example or analogy", temperature=0.0, max_tokens=6)
    assert b.generate([greedy])[0].text == b.generate([greedy])[0].text
