"""A local Hugging Face ``transformers`` chat model as a :class:`ChatBackend`.

Meant for small models and for exercising the model code path on a CPU; for throughput on a GPU use
the in-process vLLM backend (``"vllm:<model>"``) or a ``vllm serve`` endpoint (``"openai:<model>@<url>"``).
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

from personalization_env.llm.base import ChatBackend, ChatRequest, ChatResponse

logger = logging.getLogger(__name__)

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_DTYPES: tuple[str, ...] = ("auto", "float32", "float16", "bfloat16")
_INSTALL = "the HF backend needs torch and transformers: pip install 'multisessioncollab[hf]'"


class HFBackend(ChatBackend):
    """A chat model run locally with ``transformers`` (``make_backend("hf:<path or hub name>")``).

    The tokenizer and weights load on first use (the constructor only stores its arguments), and
    pickling drops them, so a backend can be sent to worker processes and reloads there.

    Requests are grouped by ``(temperature, max_tokens)`` and generated in left-padded batches of up
    to ``max_batch_size``. ``temperature == 0`` decodes greedily; otherwise tokens are sampled at
    that temperature (the model's own ``generation_config`` supplies ``top_p``/``top_k``).

    Determinism: a sampled request with a ``seed`` is generated alone, in a batch of one, under
    ``torch.manual_seed(seed)`` inside :func:`torch.random.fork_rng` (the global RNG is restored
    afterwards). Its text therefore depends only on the request, not on what else was in the call;
    the price is one ``generate`` call per seeded sampled request. Greedy requests and unseeded
    sampled requests are batched. Greedy results are identical for identical batches; across
    different batch compositions, padding can change floating-point rounding and, rarely, a token.

    Structured output: ``response_format`` gets no guided decoding here; the schema is not added to
    the prompt either, and the text is returned as generated. Parsing, validation and repair happen
    upstream (:func:`personalization_env.llm.structured.generate_json`).

    Args:
        model: a local directory or a hub name (hub names need network access or a warm cache).
        device: ``"auto"`` (``cuda`` when available, else ``cpu``), ``"cpu"``, ``"cuda"``, ``"cuda:N"``
            or ``"mps"``.
        dtype: ``"auto"`` (the checkpoint's dtype on GPU, float32 on CPU), ``"float32"``, ``"float16"``
            or ``"bfloat16"``.
        max_batch_size: most requests per ``generate`` call.
        trust_remote_code: passed to ``from_pretrained`` (runs code shipped with the model).

    Each response's ``meta`` holds ``latency_s`` (wall time of the ``generate`` call that produced
    it, shared by a batch), ``device`` and ``batch_size``.
    """

    name = "hf"

    def __init__(self, model: str | os.PathLike[str], device: str = "auto", dtype: str = "auto", max_batch_size: int = 8,
                 trust_remote_code: bool = False):
        super().__init__()
        if isinstance(model, os.PathLike):
            model = os.fspath(model)
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty path or hub name, got {model!r}")
        if not isinstance(device, str) or not _DEVICE.match(device):
            raise ValueError(f"unknown device {device!r}; expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
        if dtype not in _DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; expected one of {_DTYPES}")
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ValueError(f"max_batch_size must be an integer >= 1, got {max_batch_size!r}")
        self.model = model
        self.device = device
        self.dtype = dtype
        self.max_batch_size = max_batch_size
        self.trust_remote_code = bool(trust_remote_code)
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_model"] = state["_tokenizer"] = state["_device"] = None  # reloaded lazily after unpickling
        return state

    @property
    def loaded(self) -> bool:
        """Whether the weights are in memory."""
        return self._model is not None

    # ---- loading -------------------------------------------------------------------------------
    @staticmethod
    def _import() -> tuple[Any, Any]:
        try:
            import torch
            import transformers
        except ImportError as e:
            raise ImportError(f"{_INSTALL} ({e})") from e
        return torch, transformers

    def _load(self) -> None:
        torch, transformers = self._import()
        if self.device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        else:
            device = self.device
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device {self.device!r} was asked for but torch sees no CUDA GPU")
        if self.dtype == "auto":
            dtype: Any = "auto" if device != "cpu" else torch.float32
        else:
            dtype = getattr(torch, self.dtype)
        tok = transformers.AutoTokenizer.from_pretrained(self.model, padding_side="left",
                                                         trust_remote_code=self.trust_remote_code)
        tok.padding_side = "left"  # some tokenizers ignore the keyword
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if getattr(tok, "chat_template", None) is None:
            raise ValueError(f"model {self.model!r} has no chat template; the HF backend needs a chat (instruct) model")
        # transformers >= 4.56 calls the argument `dtype`; earlier versions `torch_dtype`
        major, minor = (int(x) for x in re.findall(r"\d+", transformers.__version__)[:2])
        dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
        lm = transformers.AutoModelForCausalLM.from_pretrained(self.model, trust_remote_code=self.trust_remote_code,
                                                               **{dtype_kw: dtype})
        lm.to(device)
        lm.eval()
        self._tokenizer, self._model, self._device = tok, lm, device
        logger.info("loaded %s on %s", self.model, device)

    # ---- generation ----------------------------------------------------------------------------
    def _generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        if self._model is None:
            self._load()
        groups: dict[tuple[float, int], list[int]] = {}
        batches: list[list[int]] = []
        for i, r in enumerate(requests):
            if r.temperature > 0 and r.seed is not None:
                batches.append([i])  # alone, so its sample does not depend on its batch-mates
            else:
                groups.setdefault((float(r.temperature), r.max_tokens), []).append(i)
        for idx in groups.values():
            batches.extend(idx[k:k + self.max_batch_size] for k in range(0, len(idx), self.max_batch_size))
        out: list[ChatResponse | None] = [None] * len(requests)
        for batch in batches:
            for i, resp in zip(batch, self._run([requests[i] for i in batch])):
                out[i] = resp
        return out  # type: ignore[return-value]

    def _run(self, reqs: list[ChatRequest]) -> list[ChatResponse]:
        """One ``generate`` call for requests sharing temperature and max_tokens."""
        import torch

        tok, lm = self._tokenizer, self._model
        first = reqs[0]
        convs = [[m.to_dict() for m in r.messages] for r in reqs]
        enc = tok.apply_chat_template(convs, add_generation_prompt=True, tokenize=True, return_dict=True,
                                      padding=True, return_tensors="pt")
        enc = {k: v.to(self._device) for k, v in enc.items()}
        kw: dict[str, Any] = {"max_new_tokens": first.max_tokens, "pad_token_id": tok.pad_token_id}
        if first.temperature > 0:
            kw.update(do_sample=True, temperature=float(first.temperature))
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        seeded = first.temperature > 0 and first.seed is not None
        devices = [torch.device(self._device).index or 0] if self._device.startswith("cuda") else []
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=devices, enabled=seeded), torch.inference_mode():
            if seeded:
                torch.manual_seed(first.seed)
            seqs = lm.generate(**enc, **kw)
        latency = time.perf_counter() - t0
        prompt_len = enc["input_ids"].shape[1]
        eos = lm.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        eos_ids.add(tok.eos_token_id)
        prompt_counts = enc["attention_mask"].sum(dim=1).tolist()
        out = []
        for row, n_prompt in zip(seqs[:, prompt_len:].tolist(), prompt_counts):
            # generation stops at the first end token; what follows it is padding
            n = next((k + 1 for k, t in enumerate(row) if t in eos_ids), len(row))
            text = tok.decode(row[:n], skip_special_tokens=True)
            out.append(ChatResponse(text=text, prompt_tokens=int(n_prompt), completion_tokens=n,
                                    meta={"latency_s": latency, "device": self._device, "batch_size": len(reqs)}))
        return out
