"""The LLM feedback judge: a chat model labels the user's message (DESIGN section 7).

Specs: ``llm:<backend spec>`` (any backend, e.g. ``llm:openai:meta-llama/Llama-3.1-8B-Instruct@http://node:8001/v1``)
and ``llm_local:<model>`` (the same judge on a local vLLM server, ``http://127.0.0.1:8000/v1`` unless
``$MSC_JUDGE_URL`` says otherwise). The judge answers JSON ``{"label": ..., "confidence": ...}``
(:data:`JUDGE_SCHEMA`), validated and repaired like every structured reply; messages of one env step
are judged in one batch. The scripted backend plays the judge with a documented error rate.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from personalization_env.feedback.classifiers import FeedbackClassifier
from personalization_env.feedback.labels import LABELS
from personalization_env.llm.base import ChatBackend, ChatRequest, make_backend
from personalization_env.llm.structured import generate_json
from personalization_env.types import Message

JUDGE_SYSTEM = (
    "Classify the user's latest message as feedback on the assistant's previous reply. Labels: "
    + ", ".join(LABELS) + '. Answer with JSON only: {"label": ..., "confidence": 0-1}.'
)

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": list(LABELS)}, "confidence": {"type": "number"}},
    "required": ["label"],
}

LOCAL_URL = "http://127.0.0.1:8000/v1"


def local_spec(model: str) -> str:
    """The backend spec of ``llm_local:<model>``: an OpenAI-compatible server at ``$MSC_JUDGE_URL``."""
    return f"openai:{model}@{os.environ.get('MSC_JUDGE_URL', LOCAL_URL)}"


def judge_request(previous_reply: str, message: str, seed: int | None = None) -> ChatRequest:
    """The judge's request for one user message."""
    return ChatRequest((Message("system", JUDGE_SYSTEM), Message("assistant", previous_reply or "(no reply)"),
                        Message("user", message)), purpose="judge", temperature=0.0, max_tokens=64, seed=seed)


class LLMJudgeClassifier(FeedbackClassifier):
    """Labels messages with a chat model (see module docstring).

    Args:
        model: a backend or spec.
        local: ``model`` is a bare model name served at ``$MSC_JUDGE_URL`` (default :data:`LOCAL_URL`).
        max_repairs: re-asks per malformed judgement.
        cache: a response-cache folder.
    """

    name = "llm"

    def __init__(self, model: str | ChatBackend = "scripted", local: bool = False, max_repairs: int = 2,
                 cache: str | None = None):
        if local and isinstance(model, str):
            model = local_spec(model)
        self.backend = make_backend(model, cache=cache)
        self.max_repairs = max_repairs
        self.confidences: list[float] = []

    def classify(self, message: str, context: Mapping[str, Any] | None = None) -> str:
        return self.classify_batch([message], [context])[0]

    def classify_batch(self, messages: Sequence[str], contexts: Sequence[Mapping[str, Any] | None] | None = None) -> list[str]:
        contexts = contexts if contexts is not None else [None] * len(messages)
        # one seed for every message: a judgement must not depend on the message's place in a batch
        reqs = [judge_request(str((c or {}).get("previous_reply", "")), m, seed=0) for m, c in zip(messages, contexts)]
        outs = generate_json(self.backend, reqs, JUDGE_SCHEMA, self.max_repairs)
        self.confidences += [float(o.get("confidence", 1.0)) for o in outs]
        return [str(o["label"]) for o in outs]
