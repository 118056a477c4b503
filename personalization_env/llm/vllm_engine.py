"""An in-process vLLM engine as a :class:`ChatBackend` (GPU only).

Most runs should talk to a ``vllm serve`` endpoint instead (``"openai:<model>@<url>"``): vLLM pins exact
torch and transformers versions, so it belongs in its own virtual environment on a GPU node, and the
agents and environment need only the OpenAI client. This backend is for a script that owns a GPU and
wants the engine in the same process (no server, no HTTP).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from personalization_env.llm.base import ChatBackend, ChatRequest, ChatResponse

logger = logging.getLogger(__name__)

_INSTALL = ("the in-process vLLM backend needs vllm: pip install 'multisessioncollab[vllm]' (vLLM pins exact torch "
            "and transformers versions, so install it in its own virtual environment on a GPU node; or run "
            "'vllm serve <model>' there and use 'openai:<model>@<url>')")
_NO_GPU = ("the in-process vLLM backend needs a CUDA GPU; on CPU use 'openai:<model>@<url>' against a vllm serve "
           "endpoint or 'hf:<path>'")


def structured_output_kwargs(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The ``SamplingParams`` keyword that asks vLLM to follow a JSON schema, for the installed version.

    Newer vLLM (since vllm-project/vllm#22772, autumn 2025) takes
    ``structured_outputs=StructuredOutputsParams(json=schema)``; earlier versions took
    ``guided_decoding=GuidedDecodingParams(json=schema)``, since removed. Both classes live in
    ``vllm.sampling_params``; the version is detected by which class exists, the newer preferred.
    """
    mod = importlib.import_module("vllm.sampling_params")
    new = getattr(mod, "StructuredOutputsParams", None)
    if new is not None:
        return {"structured_outputs": new(json=dict(schema))}
    old = getattr(mod, "GuidedDecodingParams", None)
    if old is not None:
        return {"guided_decoding": old(json=dict(schema))}
    raise RuntimeError("this vLLM version has neither StructuredOutputsParams nor GuidedDecodingParams in "
                       "vllm.sampling_params; cannot request JSON-schema output")


class VLLMBackend(ChatBackend):
    """Chat completions from an in-process ``vllm.LLM`` (``make_backend("vllm:<model>")``).

    The engine starts on first use (the constructor only stores its arguments); pickling drops it.
    Each :meth:`generate` call is one ``LLM.chat`` call with one ``SamplingParams`` per request
    (temperature, max_tokens and seed; ``temperature == 0`` is greedy in vLLM), so vLLM's own
    scheduler does the batching, and a seeded request's sample does not depend on its batch-mates.
    A request with ``response_format`` (a JSON schema) gets guided decoding
    (:func:`structured_output_kwargs`); its reply is still validated upstream.

    Args:
        model: a local directory or a hub name.
        tensor_parallel_size: GPUs to shard the model over.
        gpu_memory_utilization: fraction of each GPU's memory vLLM may take, in (0, 1].
        max_model_len: context length cap (``None``: the model's).
        dtype: weight dtype (``"auto"``, ``"float16"``, ``"bfloat16"``, ...), passed to vLLM.
        **engine_kwargs: any other ``vllm.LLM`` argument.

    Each response's ``meta`` holds ``latency_s`` (wall time of the ``LLM.chat`` call, shared by a
    batch) and ``finish_reason``.
    """

    name = "vllm"

    def __init__(self, model: str, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 max_model_len: int | None = None, dtype: str = "auto", **engine_kwargs: Any):
        super().__init__()
        if not isinstance(model, str) or not model:
            raise ValueError(f"the vLLM backend needs a model path or hub name: 'vllm:<model>', got {model!r}")
        if isinstance(tensor_parallel_size, bool) or not isinstance(tensor_parallel_size, int) \
                or tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be an integer >= 1, got {tensor_parallel_size!r}")
        if not isinstance(gpu_memory_utilization, (int, float)) or not 0 < gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization!r}")
        if max_model_len is not None and (isinstance(max_model_len, bool) or not isinstance(max_model_len, int)
                                          or max_model_len < 1):
            raise ValueError(f"max_model_len must be None or an integer >= 1, got {max_model_len!r}")
        if not isinstance(dtype, str) or not dtype:
            raise ValueError(f"dtype must be a non-empty string such as 'auto' or 'bfloat16', got {dtype!r}")
        self.model = model
        self.tensor_parallel_size = tensor_parallel_size
        self.gpu_memory_utilization = float(gpu_memory_utilization)
        self.max_model_len = max_model_len
        self.dtype = dtype
        self.engine_kwargs = dict(engine_kwargs)
        self._llm: Any = None
        self._sampling_params: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_llm"] = state["_sampling_params"] = None  # the engine restarts lazily after unpickling
        return state

    @property
    def loaded(self) -> bool:
        """Whether the engine is running."""
        return self._llm is not None

    def _load(self) -> None:
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise ImportError(f"{_INSTALL} ({e})") from e
        import torch  # a dependency of vllm

        if not torch.cuda.is_available():
            raise RuntimeError(_NO_GPU)
        kwargs: dict[str, Any] = {"tensor_parallel_size": self.tensor_parallel_size,
                                  "gpu_memory_utilization": self.gpu_memory_utilization, "dtype": self.dtype}
        if self.max_model_len is not None:
            kwargs["max_model_len"] = self.max_model_len
        kwargs.update(self.engine_kwargs)
        logger.info("starting vLLM engine for %s (%s)", self.model, kwargs)
        self._llm = LLM(model=self.model, **kwargs)
        self._sampling_params = SamplingParams

    def sampling_params(self, request: ChatRequest) -> Any:
        """The ``vllm.SamplingParams`` for one request (the engine must be loaded)."""
        kw: dict[str, Any] = {"temperature": float(request.temperature), "max_tokens": request.max_tokens,
                              "seed": request.seed}
        if request.response_format is not None:
            kw.update(structured_output_kwargs(request.response_format))
        return self._sampling_params(**kw)

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        if self._llm is None:
            self._load()
        convs = [[m.to_dict() for m in r.messages] for r in requests]
        params = [self.sampling_params(r) for r in requests]
        t0 = time.perf_counter()
        outputs = self._llm.chat(convs, sampling_params=params, use_tqdm=False)
        latency = time.perf_counter() - t0
        if len(outputs) != len(requests):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(requests)} conversations")
        out = []
        for o in outputs:
            first = o.outputs[0]
            out.append(ChatResponse(text=first.text, prompt_tokens=len(o.prompt_token_ids or ()),
                                    completion_tokens=len(first.token_ids),
                                    meta={"latency_s": latency, "finish_reason": first.finish_reason}))
        return out
